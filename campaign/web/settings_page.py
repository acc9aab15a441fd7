"""``/settings``: the settings a staff member may see, read-only (staff and admins: acting on campaigns permission).

What is shown is :func:`campaign.services.settings_view.settings_view`'s, which reads no secret: the sender, the
delivery mode (capture, or relay with each relay's host and port), the public URL, the database's backend,
whether the scheduler service (``campaign serve``: scheduler and delivery worker) runs on this database, which
process leads the scheduler and the delivery workers alive with their heartbeats' age (the ``workers`` registry,
judged as ``campaign status`` and ``campaign workers`` judge it), asked afresh on every request (a lock-file probe
and one read of the registry: cheap, in a worker thread). Settings change in ``config.toml`` and
the environment, never here. An analyst gets the 403 page (:func:`~campaign.web.auth.require`).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from campaign.config import Settings
from campaign.models import Permission
from campaign.services.sessions import Staff
from campaign.services.settings_view import settings_view
from campaign.store.engine import Database
from campaign.web.auth import require, staff_access


@dataclass(frozen=True, slots=True)
class AdminData:
    """What the settings and users pages read (``app.state.admin``): the database and the settings."""

    db: Database
    settings: Settings


def admin_data(request: Request) -> AdminData:
    """The app's :class:`AdminData`."""
    data: AdminData = request.app.state.admin
    return data


@require(Permission.ACT_ON_CAMPAIGNS)
async def settings_page(request: Request, staff: Staff) -> Response:
    """``GET /settings`` (see the module doc)."""
    data = admin_data(request)
    view = await run_in_threadpool(settings_view, data.settings, data.db)
    return staff_access(request).pages.page("settings.html", staff=staff, view=view)
