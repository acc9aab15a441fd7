"""The analyst dashboard: ``/dashboard`` (every campaign) and a campaign's page (its report, and the retry action).

The numbers are :mod:`campaign.services.reports`'s, the same as ``campaign report``'s; this module only lays them
out, through the templates ``dashboard.html`` and ``campaign.html``.

* ``/dashboard``: each campaign with its status, audience (its list's size), messages sent, the rates of opens by
  people and of registrations (over delivered), and its next wave; a link to its page.
* A campaign's page (:data:`~campaign.rules.routes.CAMPAIGN_PAGE`, the campaign's id in the path): the funnel,
  delivery and engagement per wave, activity per hour (a table; the chart goes above it), people's activity by
  their own zone and local hour of the day (when to send next time), clicks per link, the times to open and to
  register, and the latest recipients who did not get a message with the server's reply. Query parameters, all
  optional: ``wave`` (one wave's messages), ``zone`` (the IANA zone of the hourly table; default the
  organiser's) and ``who=machines`` (opens and clicks by machines, privacy proxies and link scanners, instead
  of by people), each reached by a link or a plain GET form: no script needed.
* The report is counted once per request at most, in a worker thread, and kept a few seconds
  (:mod:`campaign.web.report_cache`): the page says when its numbers are from ("as of").
* ``POST`` :data:`~campaign.rules.routes.CAMPAIGN_RETRY` (staff and admins; CSRF-checked by
  :func:`~campaign.web.auth.require`): ``what=failed`` queues the failed and expired messages again,
  ``what=deferred`` makes the deferred ones due now (:mod:`campaign.services.lifecycle`, as ``campaign retry``
  does), writes the audit log, and returns to the page (303) saying how many. Analysts see no button; their POST
  is the 403 page and changes nothing.
* Bad input (an unknown campaign or wave, a zone that is not one) is a page with one line saying what to fix
  (404 or 400), never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from campaign.config import Settings
from campaign.exceptions import NotFoundError, ValidationError
from campaign.models import AuditAction, Permission
from campaign.rules.access import may
from campaign.rules.routes import CAMPAIGN_PAGE
from campaign.services import audit
from campaign.services.campaigns import get_campaign
from campaign.services.lifecycle import retry_deferred, retry_failed
from campaign.services.mailbox import capture_mailbox
from campaign.services.overview import campaign_overviews
from campaign.services.reports import CampaignReport, ZoneHours, campaign_report
from campaign.services.sessions import Staff
from campaign.store.engine import Database
from campaign.web.auth import require, staff_access
from campaign.web.pages import NO_STORE
from campaign.web.report_cache import ReportCache

MACHINES = "machines"
"""``who=machines``: show opens and clicks by machines rather than by people."""
ZONES_SHOWN = 30
"""How many zones the local-hours table lists (those with the most opens); the rest are counted together."""
BUCKET_HOURS = 4
"""The local-hours table's columns: hours of the day, four at a time (00–04, 04–08 ...)."""

# What each retry does: the service, its audit action, and how the page reports it.
RETRIES: dict[str, tuple[Callable[[Database, str], int], AuditAction]] = {
    "failed": (retry_failed, AuditAction.RETRY_FAILED),
    "deferred": (retry_deferred, AuditAction.RETRY_DEFERRED),
}


class DashboardData:
    """What the dashboard's pages read (``app.state.dashboard``): the database, the settings, the report cache."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.cache = ReportCache()

    @property
    def mailbox_shown(self) -> bool:
        """Whether messages go to the capture server, whose mailbox the dashboard then shows."""
        return capture_mailbox(self.settings) is not None


def dashboard_data(request: Request) -> DashboardData:
    """The app's :class:`DashboardData`."""
    data: DashboardData = request.app.state.dashboard
    return data


@dataclass(frozen=True, slots=True)
class ZoneRow:
    """One line of the local-hours table: a zone (None: contacts without one; ``others``: the zones not listed,
    together), its totals, its peak hours, and its opens per :data:`BUCKET_HOURS` hours of the day."""

    zone: str | None
    opened: int
    registered: int
    peak_open_hour: int | None
    peak_registration_hour: int | None
    buckets: tuple[int, ...]
    others: int = 0


def zone_rows(lines: Sequence[ZoneHours]) -> tuple[list[ZoneRow], ZoneRow | None]:
    """The rows of the local-hours table (the :data:`ZONES_SHOWN` zones with the most opens, then the others as one
    row), and every zone together (the hours of the day people acted in, each in their own zone), or None."""
    if not lines:
        return [], None

    def row(zone: str | None, group: Sequence[ZoneHours], others: int = 0) -> ZoneRow:
        together = ZoneHours(
            zone,
            tuple(sum(hours) for hours in zip(*(z.opened for z in group), strict=True)),
            tuple(sum(hours) for hours in zip(*(z.registered for z in group), strict=True)),
        )
        buckets = tuple(sum(together.opened[h : h + BUCKET_HOURS]) for h in range(0, 24, BUCKET_HOURS))
        return ZoneRow(
            zone,
            sum(together.opened),
            sum(together.registered),
            together.peak_open_hour,
            together.peak_registration_hour,
            buckets,
            others,
        )

    rows = [row(z.zone, [z]) for z in lines[:ZONES_SHOWN]]
    rest = lines[ZONES_SHOWN:]
    if rest:
        rows.append(row(None, rest, others=len(rest)))
    return rows, row(None, lines)


@require(Permission.VIEW_REPORTS)
async def dashboard(request: Request, staff: Staff) -> Response:
    """``/dashboard``: every campaign, newest first (see the module doc)."""
    data = dashboard_data(request)
    cached = await data.cache.get(("overview",), partial(campaign_overviews, data.db))
    return staff_access(request).pages.page(
        "dashboard.html",
        staff=staff,
        overviews=cached.value,
        as_of=cached.at,
        mailbox_shown=data.mailbox_shown,
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
        cached = await data.cache.get(("campaign", ref, wave, zone), partial(_campaign, data.db, ref, wave, zone))
    except NotFoundError as exc:
        return problem(request, staff, 404, str(exc))
    except ValidationError as exc:
        return problem(request, staff, 400, str(exc))
    report, wave_names = cached.value
    rows, together = zone_rows(report.local_hours or ())
    return pages.page(
        "campaign.html",
        staff=staff,
        report=report,
        wave_names=wave_names,
        as_of=cached.at,
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
        can_act=may(staff.role, Permission.ACT_ON_CAMPAIGNS),
        retried=_retried(query.get("retried"), query.get("count")),
        mailbox_shown=data.mailbox_shown,
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
    data.cache.clear()  # the next page counts again, and shows what the retry did
    location = pages.url(CAMPAIGN_PAGE, campaign=str(campaign.id)) + "?" + urlencode({"retried": what, "count": count})
    return RedirectResponse(location, status_code=303, headers=NO_STORE)


def problem(request: Request, staff: Staff, status: int, message: str) -> Response:
    """A staff page saying, in one line, what went wrong and what to fix."""
    return staff_access(request).pages.page("problem.html", staff=staff, status=status, message=message)


def _campaign(db: Database, ref: str, wave: str | None, zone: str | None) -> tuple[CampaignReport, list[str]]:
    """The report of the page, with the names of every wave of the campaign (for the choice of one)."""
    report = campaign_report(db, ref, wave=wave, zone=zone, local_hours=True)
    return report, [w.name for w in get_campaign(db, str(report.campaign.id)).waves]


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
