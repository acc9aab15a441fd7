"""The analyst dashboard: ``/dashboard`` (every campaign) and a campaign's page (its report, and the retry action).

The numbers are :mod:`campaign.services.reports`'s, the same as ``campaign report``'s; this module only lays them
out, through the templates ``dashboard.html`` and ``campaign.html``.

* ``/dashboard``: each campaign with its status, audience (its list's size), messages sent, the rates of opens by
  people and of registrations (over delivered), and its next wave; a link to its page.
* A campaign's page (:data:`~campaign.rules.routes.CAMPAIGN_PAGE`, the campaign's id in the path): the funnel
  (ending in joined once the event's attendee report is imported), delivery and engagement per wave (and
  joined), activity per hour (a chart drawn by the vendored uPlot above the table of the same numbers: the
  table is what works without script; this page alone has
  :data:`~campaign.web.pages.SCRIPT_PAGE_POLICY`, which allows this site's scripts), people's activity by their own
  zone and local hour of the day (when to send next time; :mod:`campaign.services.local_hours`), clicks per link,
  the times to open and to register, and the latest recipients who did not get a message with the server's reply.
  Query parameters, all optional: ``wave`` (one wave's messages), ``zone`` (the IANA zone of the hourly series;
  default the organiser's) and ``who=machines`` (opens and clicks by machines, privacy proxies and link scanners,
  instead of by people; the hourly series stays people's), each reached by a link or a plain GET form: no script
  needed.
* The report is counted once per request at most, in a worker thread, and kept a few seconds
  (:mod:`campaign.web.report_cache`): the page says when its numbers are from ("as of"). Showing ``/dashboard``
  starts counting the pages of the campaigns under way (sending, paused) in the background, so that the page a
  person opens from there is ready: a campaign of a million messages takes seconds to count. Each campaign page's
  numbers are also kept in the database (:class:`KeptPages`), so the first page after a restart is answered from
  the last count while it is counted again.
* ``POST`` :data:`~campaign.rules.routes.CAMPAIGN_RETRY` (staff and admins; CSRF-checked by
  :func:`~campaign.web.auth.require`): ``what=failed`` queues the failed and expired messages again,
  ``what=deferred`` makes the deferred ones due now (:mod:`campaign.services.lifecycle`, as ``campaign retry``
  does), writes the audit log, and returns to the page (303) saying how many. Analysts see no button; their POST
  is the 403 page and changes nothing.
* Bad input (an unknown campaign or wave, a zone that is not one) is a page with one line saying what to fix
  (404 or 400), never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from campaign.config import Settings
from campaign.exceptions import NotFoundError, ValidationError
from campaign.models import AuditAction, CampaignStatus, Permission
from campaign.render import charts
from campaign.render.figures import FUNNEL_JOINED_NOTE, FUNNEL_REGISTERED_NOTES, funnel_elsewhere_note
from campaign.rules.access import may
from campaign.rules.routes import CAMPAIGN_PAGE
from campaign.services import audit
from campaign.services.campaigns import get_campaign
from campaign.services.lifecycle import retry_deferred, retry_failed
from campaign.services.local_hours import BUCKET_HOURS, zone_rows
from campaign.services.overview import CampaignOverview, campaign_overviews
from campaign.services.report_model import CampaignReport
from campaign.services.report_snapshots import Snapshots
from campaign.services.reports import campaign_report
from campaign.services.sessions import Staff
from campaign.store.engine import Database
from campaign.web.auth import require, staff_access
from campaign.web.pages import NO_STORE, SCRIPT_PAGE_POLICY
from campaign.web.report_cache import Cached, ReportCache

MACHINES = "machines"
"""``who=machines``: show opens and clicks by machines rather than by people."""
UNDER_WAY = (CampaignStatus.SENDING, CampaignStatus.PAUSED)
"""The campaigns whose pages ``/dashboard`` has counted in the background."""

# What each retry does: the service that does it, and the action the audit log records.
RETRIES: dict[str, tuple[Callable[[Database, str], int], AuditAction]] = {
    "failed": (retry_failed, AuditAction.RETRY_FAILED),
    "deferred": (retry_deferred, AuditAction.RETRY_DEFERRED),
}


@dataclass(frozen=True, slots=True)
class PageNumbers:
    """What a campaign page shows that takes counting: its report, and the names of every wave of the campaign
    (for the choice of one)."""

    report: CampaignReport
    wave_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Overview:
    """What ``/dashboard`` shows that takes counting: every campaign's line, newest first."""

    campaigns: tuple[CampaignOverview, ...]


OVERVIEW_KEY = ("overview",)
"""The report cache's key of ``/dashboard``'s numbers."""


class KeptPages:
    """The report cache's :class:`~campaign.web.report_cache.Tier`: the numbers of ``/dashboard`` and of each
    campaign page kept in the database (:mod:`campaign.services.report_snapshots`), under ``dashboard`` and
    ``campaign-page/ID/WAVE/ZONE``."""

    _MAX_KEY = 300

    def __init__(self, db: Database) -> None:
        self.pages = Snapshots(db, PageNumbers)
        self.overview = Snapshots(db, Overview)

    def load(self, key: Hashable) -> Cached[Any] | None:
        """The numbers kept for a page's key, or None."""
        found: tuple[Any, datetime] | None = None
        if key == OVERVIEW_KEY:
            found = self.overview.load("dashboard")
        elif (name := self._name(key)) is not None:
            found = self.pages.load(name)
        return None if found is None else Cached(*found)

    def save(self, key: Hashable, cached: Cached[Any]) -> None:
        """Keep a page's numbers."""
        if key == OVERVIEW_KEY and isinstance(cached.value, Overview):
            self.overview.save("dashboard", cached.value, cached.at)
        elif (name := self._name(key)) is not None and isinstance(cached.value, PageNumbers):
            self.pages.save(name, cached.value, cached.at)

    def clear(self) -> None:
        """Forget every kept page (one table holds them all)."""
        self.pages.clear()

    def _name(self, key: Hashable) -> str | None:
        """``campaign-page/ID/WAVE/ZONE`` for a campaign page's key (see :func:`_campaign_computation`)."""
        if not (isinstance(key, tuple) and len(key) == 4 and key[0] == "campaign"):
            return None
        name = "campaign-page/" + "/".join(str(part or "") for part in key[1:])
        return name if len(name) <= self._MAX_KEY else None


class DashboardData:
    """What the dashboard's pages read (``app.state.dashboard``): the database, the settings, the report cache."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.cache = ReportCache(tier=KeptPages(db))


def dashboard_data(request: Request) -> DashboardData:
    """The app's :class:`DashboardData`."""
    data: DashboardData = request.app.state.dashboard
    return data


@require(Permission.VIEW_REPORTS)
async def dashboard(request: Request, staff: Staff) -> Response:
    """``/dashboard``: every campaign, newest first (see the module doc)."""
    data = dashboard_data(request)
    cached = await data.cache.get(OVERVIEW_KEY, partial(_overview, data.db))
    for overview in cached.value.campaigns:
        campaign = overview.line.campaign
        if campaign.status in UNDER_WAY:
            data.cache.warm(*_campaign_computation(data.db, str(campaign.id), None, None))
    return staff_access(request).pages.page(
        "dashboard.html",
        staff=staff,
        overviews=cached.value.campaigns,
        **_counted(data.cache, cached),
    )


@require(Permission.VIEW_REPORTS)
async def campaign_page(request: Request, staff: Staff) -> Response:
    """A campaign's report page (see the module doc)."""
    data = dashboard_data(request)
    pages = staff_access(request).pages
    ref = request.path_params["campaign"]
    query = request.query_params
    wave = query.get("wave") or None
    zone = (query.get("zone") or "").strip() or None
    who = MACHINES if query.get("who") == MACHINES else "people"
    try:
        cached = await data.cache.get(*_campaign_computation(data.db, ref, wave, zone))
    except NotFoundError as exc:
        return problem(request, staff, 404, str(exc))
    except ValidationError as exc:
        return problem(request, staff, 400, str(exc))
    report, wave_names = cached.value.report, cached.value.wave_names
    rows, together = zone_rows(report.local_hours or ())
    hourly = report.hourly
    chart = charts.time_series(
        report.filters.zone,
        [h.start for h in hourly],
        {
            "Opened": [h.opened for h in hourly],
            "Clicked": [h.clicked for h in hourly],
            "Registered": [h.registered for h in hourly],
        },
    )
    return pages.page(
        "campaign.html",
        staff=staff,
        headers={"Content-Security-Policy": SCRIPT_PAGE_POLICY},
        hourly_chart=chart,
        report=report,
        wave_names=wave_names,
        **_counted(data.cache, cached),
        who=who,
        zone_asked=zone or "",
        page_url=partial(
            _page_url,
            pages.url(CAMPAIGN_PAGE, campaign=str(report.campaign.id)),
            {"wave": wave, "zone": zone, "who": who if who == MACHINES else None},
        ),
        zone_rows=rows,
        zones_together=together,
        bucket_hours=BUCKET_HOURS,
        funnel_notes=FUNNEL_REGISTERED_NOTES,
        funnel_elsewhere_note=funnel_elsewhere_note,
        joined_note=FUNNEL_JOINED_NOTE,
        can_act=may(staff.role, Permission.ACT_ON_CAMPAIGNS),
        retried=_retried(query.get("retried"), query.get("count")),
    )


@require(Permission.ACT_ON_CAMPAIGNS)
async def retry(request: Request, staff: Staff) -> Response:
    """``POST`` a campaign's retry (see the module doc)."""
    data = dashboard_data(request)
    pages = staff_access(request).pages
    form = await request.form()  # read already by the CSRF check: Starlette keeps it
    what = form.get("what")
    if not isinstance(what, str) or what not in RETRIES:
        return problem(request, staff, 400, "say what to retry: failed, or deferred")
    action, audited = RETRIES[what]
    ref = request.path_params["campaign"]
    try:
        campaign = (await run_in_threadpool(get_campaign, data.db, ref)).campaign
        count = await run_in_threadpool(action, data.db, str(campaign.id))
    except NotFoundError as exc:
        return problem(request, staff, 404, str(exc))
    except ValidationError as exc:
        return problem(request, staff, 409, str(exc))
    address = request.client.host if request.client else None
    details = {"messages": count, "address": address}
    await run_in_threadpool(
        audit.record, data.db, audited, user_id=staff.user_id, target=campaign.name, details=details
    )
    await data.cache.clear()  # the next page counts again, and shows what the retry did
    location = pages.url(CAMPAIGN_PAGE, campaign=str(campaign.id)) + "?" + urlencode({"retried": what, "count": count})
    return RedirectResponse(location, status_code=303, headers=NO_STORE)


def problem(request: Request, staff: Staff, status: int, message: str, back: tuple[str, str] | None = None) -> Response:
    """A staff page saying, in one line, what went wrong and what to fix (:meth:`StaffPages.problem`)."""
    return staff_access(request).pages.problem(staff, status, message, back)


def _counted(cache: ReportCache, cached: Cached[Any]) -> dict[str, Any]:
    """What ``_as_of.html`` says of a page's numbers: when they were counted, how long ago, when recounted."""
    ago = int((datetime.now(UTC) - cached.at).total_seconds())
    return {"as_of": cached.at, "counted_ago": ago, "fresh_seconds": int(cache.fresh)}


def _overview(db: Database) -> Overview:
    """``/dashboard``'s numbers."""
    return Overview(tuple(campaign_overviews(db)))


def _campaign_computation(
    db: Database, ref: str, wave: str | None, zone: str | None
) -> tuple[Hashable, Callable[[], PageNumbers]]:
    """The cache key of a campaign page's numbers, and how they are computed."""
    return ("campaign", ref, wave, zone), partial(_campaign, db, ref, wave, zone)


def _campaign(db: Database, ref: str, wave: str | None, zone: str | None) -> PageNumbers:
    """The report of the page, with the names of every wave of the campaign."""
    report = campaign_report(db, ref, wave=wave, zone=zone, local_hours=True)
    return PageNumbers(report, tuple(w.name for w in get_campaign(db, str(report.campaign.id)).waves))


def _page_url(base: str, current: Mapping[str, str | None], **changes: str | None) -> str:
    """The campaign page's address with its ``current`` parameters (``changes`` replace some; None drops one)."""
    values = {**current, **changes}
    query = urlencode({name: value for name, value in values.items() if value})
    return f"{base}?{query}" if query else base


def _retried(what: str | None, count: str | None) -> tuple[str, int] | None:
    """What the retry that led here did, from the page's query (only what the retry itself puts there)."""
    if what not in RETRIES or count is None or not (count.isascii() and count.isdigit()):
        return None
    return what, int(count)
