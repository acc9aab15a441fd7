"""Campaigns on the staff web: the new-campaign form, a campaign's staff page, its launch, pause, resume, cancel.

Staff and admins only (:attr:`~campaign.models.Permission.ACT_ON_CAMPAIGNS`, :func:`~campaign.web.auth.require`,
which checks every POST's CSRF token first); an analyst gets the 403 page, on GET and POST alike. Every change
goes through the service the command line uses and is written to the audit log, which the campaign's page shows.

* **New campaign** (:data:`~campaign.rules.routes.CAMPAIGN_NEW`): a name (optional: the command line's default
  ``EVENT-LIST``), the event and the list chosen from those there are; created as ``campaign create`` creates it,
  with the default waves (:func:`campaign.services.waves.create_with_waves`). A refusal is one line beside the
  field it is about (400), the form keeps what was typed; audited ``campaign-created``, then 303 to its page.
* **A campaign's page** (:data:`~campaign.rules.routes.CAMPAIGN_MANAGE`): its waves with their planned times
  (:func:`campaign.services.waves.list_waves`) on a time axis and in a table, with their live counts and the
  links to add, edit and remove them (:mod:`campaign.web.waves`), the launch checks inline (the same
  :func:`~campaign.services.rendering.check_campaign` a launch runs: template, line and contacts), the preview as
  any contact of the audience (``?email=``: subject, text part, and the HTML in an ``<iframe sandbox="">``
  loading :data:`~campaign.rules.routes.CAMPAIGN_PREVIEW_HTML`, served under the capture mailbox's
  :data:`~campaign.web.mailbox.CAPTURED_HTML_POLICY`: no script, nothing fetched), the session time in every zone
  of the audience (:func:`~campaign.services.rendering.preview_zones`), the actions its status allows, and the
  audit entries of the campaign.
* **Launch** (:data:`~campaign.rules.routes.CAMPAIGN_LAUNCH`): the GET confirmation states the audience size, how
  many are suppressed, and the first wave's time (:func:`campaign.services.campaign_pages.launch_summary`), with
  the checks; the POST launches (:func:`campaign.services.lifecycle.launch`), audited ``campaign-launched``.
* **Pause, resume, cancel** (:data:`~campaign.rules.routes.CAMPAIGN_MOVE`, ``to`` = ``pause``, ``resume`` or
  ``cancel``): a confirmation (GET), then the move (POST, :func:`campaign.services.lifecycle.move`), audited.
* **Test send** (:data:`~campaign.rules.routes.CAMPAIGN_TEST_SEND`, POST ``to`` and optional ``as``): one
  message rendered as a contact of the audience, marked [TEST], to a staff address, as ``campaign test-send``
  sends it (:func:`campaign.services.campaign_pages.send_test_message`); audited ``campaign-test-sent``. A bad
  address or a server's refusal is one line beside the field.
* A service's refusal (a launch whose checks fail, a move the status does not allow) is one line on the page
  (409), never a traceback; an unknown campaign is the 404 page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from campaign.config import Settings
from campaign.exceptions import AlreadyExistsError, DeliveryError, NotFoundError, ValidationError
from campaign.models import AuditAction, CampaignStatus, EventStatus, Permission
from campaign.rules.contact_fields import normalise_email
from campaign.rules.routes import CAMPAIGN_MANAGE
from campaign.services import audit
from campaign.services.campaign_pages import (
    PreviewParts,
    audience_sample,
    launch_summary,
    preview_parts,
    send_test_message,
)
from campaign.services.campaigns import CampaignDetails, get_campaign
from campaign.services.contacts import list_lists
from campaign.services.events import list_events
from campaign.services.lifecycle import CheckFailedError, launch, move
from campaign.services.rendering import check_campaign, preview_zones
from campaign.services.sessions import Staff
from campaign.services.waves import create_with_waves, list_waves
from campaign.store.engine import Database
from campaign.web.auth import require, staff_access
from campaign.web.dashboard import dashboard_data, problem
from campaign.web.mailbox import CAPTURED_HTML_POLICY, FRAMING_PAGE_POLICY
from campaign.web.pages import NO_STORE
from campaign.web.wave_views import POLL_SECONDS, wave_status, wave_timeline


@dataclass(frozen=True, slots=True)
class Move:
    """A status change a button asks for: the status it leads to, the audit action, and its words."""

    target: CampaignStatus
    action: AuditAction
    verb: str
    explanation: str


MOVES: dict[str, Move] = {
    "pause": Move(
        CampaignStatus.PAUSED,
        AuditAction.CAMPAIGN_PAUSED,
        "Pause",
        "Nothing more of it is sent until it is resumed; waves still to come wait too.",
    ),
    "resume": Move(
        CampaignStatus.SENDING,
        AuditAction.CAMPAIGN_RESUMED,
        "Resume",
        "Its queued messages go out again, and its waves fire at their times.",
    ),
    "cancel": Move(
        CampaignStatus.CANCELLED,
        AuditAction.CAMPAIGN_CANCELLED,
        "Cancel",
        "Its unsent messages and the waves still to come are cancelled. This cannot be undone.",
    ),
}
"""The ``to`` values of :data:`~campaign.rules.routes.CAMPAIGN_MOVE`."""
ALLOWED_MOVES: dict[CampaignStatus, tuple[str, ...]] = {
    CampaignStatus.DRAFT: ("cancel",),
    CampaignStatus.SENDING: ("pause", "cancel"),
    CampaignStatus.PAUSED: ("resume", "cancel"),
}
"""The buttons a campaign's page offers in each status (the services refuse the rest anyway)."""
CAMPAIGN_ACTIONS = frozenset(
    {
        AuditAction.CAMPAIGN_CREATED,
        AuditAction.CAMPAIGN_LAUNCHED,
        AuditAction.CAMPAIGN_PAUSED,
        AuditAction.CAMPAIGN_RESUMED,
        AuditAction.CAMPAIGN_CANCELLED,
        AuditAction.CAMPAIGN_TEST_SENT,
        AuditAction.CAMPAIGN_TEMPLATE_SAVED,
        AuditAction.CAMPAIGN_TEMPLATE_REVERTED,
        AuditAction.CAMPAIGN_WAVE_ADDED,
        AuditAction.CAMPAIGN_WAVE_EDITED,
        AuditAction.CAMPAIGN_WAVE_REMOVED,
        AuditAction.RETRY_FAILED,
        AuditAction.RETRY_DEFERRED,
    }
)
"""What a campaign's page shows of the audit log (entries whose target is its name)."""
LIVE_PAGE_POLICY = f"script-src 'self'; connect-src 'self'; {FRAMING_PAGE_POLICY}"
"""A campaign's page: the preview frame, and ``static/live.js`` fetching the waves' counts from this site (no
inline script, nothing from elsewhere)."""
FIELDS = ("name", "event", "list")
"""The new-campaign form's fields."""
MAX_FIELD = 500
"""The longest value a form field is read with (a longer one is cut, then refused by the rules)."""


class CampaignsData:
    """What the campaign pages read (``app.state.campaigns``): the database, the settings, the signing key."""

    def __init__(self, db: Database, settings: Settings, key: bytes) -> None:
        self.db = db
        self.settings = settings
        self.key = key


def campaigns_data(request: Request) -> CampaignsData:
    """The app's :class:`CampaignsData`."""
    data: CampaignsData = request.app.state.campaigns
    return data


@dataclass
class CampaignForm:
    """The new-campaign form: what was typed, and each field's error (``form``: one of the whole form)."""

    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)


@require(Permission.ACT_ON_CAMPAIGNS)
async def new_campaign(request: Request, staff: Staff) -> Response:
    """The new-campaign form (GET) and the creation (POST); see the module doc."""
    data = campaigns_data(request)
    if request.method != "POST":
        return await _form_page(request, staff, CampaignForm(dict.fromkeys(FIELDS, "")))
    posted = await request.form()
    values = {name: _text(posted.get(name)) for name in FIELDS}
    form = CampaignForm(values)
    if not values["event"]:
        form.errors["event"] = "Choose the event the campaign invites to."
    if not values["list"]:
        form.errors["list"] = "Choose the list of contacts to invite."
    if form.errors:
        return await _form_page(request, staff, form, status=400)
    try:
        details = await run_in_threadpool(_create, data, values)
    except (NotFoundError, AlreadyExistsError, ValidationError) as exc:
        form.errors[exc.field if exc.field in FIELDS else "form"] = str(exc)
        return await _form_page(request, staff, form, status=400)
    await _audit(request, data, staff, AuditAction.CAMPAIGN_CREATED, details.campaign.name, {
        "event": details.event.slug, "list": details.campaign.list_name,
        "waves": [wave.name for wave in details.waves],
    })  # fmt: skip
    return _to_page(request, details.campaign.id)


@require(Permission.ACT_ON_CAMPAIGNS)
async def manage_page(request: Request, staff: Staff) -> Response:
    """A campaign's staff page; see the module doc."""
    return await _page(request, staff, request.path_params["campaign"])


async def _page(
    request: Request,
    staff: Staff,
    ref: str | int,
    *,
    test_error: str | None = None,
    test_as_error: str | None = None,
    test_problem: str | None = None,
    test_to: str = "",
    test_as: str = "",
) -> Response:
    """A campaign's page (``ref``: its id, or the path's value); with a test send's error (the staff address's,
    the contact's to render as, or the send's), 400."""
    data = campaigns_data(request)
    address = request.query_params.get("email", "").strip()
    try:
        checks = request.query_params.get("checks") == "1"
        values = await run_in_threadpool(_page_values, data, str(ref), checks)
    except NotFoundError as exc:
        return problem(request, staff, 404, str(exc))
    preview: PreviewParts | None = None
    preview_error: str | None = None
    if address:
        try:
            preview = await run_in_threadpool(
                preview_parts, data.db, data.settings, data.key, str(values["details"].campaign.id), address
            )
        except (NotFoundError, ValidationError) as exc:
            preview_error = str(exc)
    details: CampaignDetails = values["details"]
    entries = await run_in_threadpool(audit.recent_actions, data.db, 50, details.campaign.name, CAMPAIGN_ACTIONS)
    return staff_access(request).pages.page(
        "campaign_manage.html",
        staff=staff,
        status=400 if preview_error or test_error or test_as_error or test_problem else 200,
        headers={"Content-Security-Policy": LIVE_PAGE_POLICY},
        **values,
        email=address,
        preview=preview,
        preview_error=preview_error,
        moves=[(name, MOVES[name]) for name in ALLOWED_MOVES.get(details.campaign.status, ())],
        entries=entries,
        done=request.query_params.get("done", ""),
        test_error=test_error,
        test_as_error=test_as_error,
        test_problem=test_problem,
        test_to=test_to,
        test_as=test_as,
    )


@require(Permission.ACT_ON_CAMPAIGNS)
async def preview_html(request: Request, staff: Staff) -> Response:
    """A contact's invitation HTML for the preview frame (see the module doc); the 404 page for anyone else."""
    data = campaigns_data(request)
    try:
        parts = await run_in_threadpool(
            preview_parts,
            data.db,
            data.settings,
            data.key,
            request.path_params["campaign"],
            request.query_params.get("email", "").strip(),
        )
    except (NotFoundError, ValidationError) as exc:
        return problem(request, staff, 404, str(exc))
    headers = {**NO_STORE, "Content-Security-Policy": CAPTURED_HTML_POLICY, "X-Frame-Options": "SAMEORIGIN"}
    return Response(parts.html, media_type="text/html; charset=utf-8", headers=headers)


def _back(request: Request, campaign_id: int) -> tuple[str, str]:
    """The link of a refusal's page back to the campaign the action was on."""
    return "Back to the campaign", staff_access(request).pages.url(CAMPAIGN_MANAGE, campaign=str(campaign_id))


@require(Permission.ACT_ON_CAMPAIGNS)
async def launch_page(request: Request, staff: Staff) -> Response:
    """The launch confirmation (GET) and the launch (POST); see the module doc."""
    data = campaigns_data(request)
    ref = request.path_params["campaign"]
    try:
        details = await run_in_threadpool(get_campaign, data.db, ref)
    except NotFoundError as exc:
        return problem(request, staff, 404, str(exc))
    ref = str(details.campaign.id)
    refusal: str | None = None
    if request.method == "POST":
        try:
            result = await run_in_threadpool(launch, data.db, data.settings, data.key, ref)
        except CheckFailedError as exc:
            refusal = str(exc)
        except ValidationError as exc:
            return problem(request, staff, 409, str(exc), _back(request, details.campaign.id))
        else:
            details_of = {"queued": result.queued, "suppressed": result.suppressed, "pending": list(result.pending)}
            await _audit(request, data, staff, AuditAction.CAMPAIGN_LAUNCHED, details.campaign.name, details_of)
            return _to_page(request, details.campaign.id, done="launched")
    if details.campaign.status is not CampaignStatus.DRAFT:
        return problem(request, staff, 409, f"only a draft can be launched; {details.campaign.name} is "
                       f"{details.campaign.status}", _back(request, details.campaign.id))  # fmt: skip
    summary = await run_in_threadpool(launch_summary, data.db, data.settings, data.key, ref)
    return staff_access(request).pages.page(
        "campaign_launch.html",
        staff=staff,
        status=409 if refusal else 200,
        details=details,
        summary=summary,
        refusal=refusal,
    )


@require(Permission.ACT_ON_CAMPAIGNS)
async def move_page(request: Request, staff: Staff) -> Response:
    """The confirmation of a pause, resume or cancel (GET), and the move (POST); see the module doc."""
    data = campaigns_data(request)
    posted = await request.form() if request.method == "POST" else None
    wanted = request.query_params.get("to", "") if posted is None else _text(posted.get("to"))
    chosen = MOVES.get(wanted)
    if chosen is None:
        return problem(request, staff, 400, "say what to do: pause, resume, or cancel")
    try:
        details = await run_in_threadpool(get_campaign, data.db, request.path_params["campaign"])
    except NotFoundError as exc:
        return problem(request, staff, 404, str(exc))
    if request.method != "POST":
        if wanted not in ALLOWED_MOVES.get(details.campaign.status, ()):
            return problem(request, staff, 409, f"{details.campaign.name} is {details.campaign.status}: it "
                           f"cannot be {chosen.target}", _back(request, details.campaign.id))  # fmt: skip
        return staff_access(request).pages.page(
            "campaign_move.html", staff=staff, details=details, to=wanted, move=chosen
        )
    try:
        await run_in_threadpool(move, data.db, str(details.campaign.id), chosen.target, f"by {staff.name} (web)")
    except ValidationError as exc:
        return problem(request, staff, 409, str(exc), _back(request, details.campaign.id))
    await _audit(request, data, staff, chosen.action, details.campaign.name, {"from": details.campaign.status.value})
    return _to_page(request, details.campaign.id, done=wanted)


@require(Permission.ACT_ON_CAMPAIGNS)
async def test_send_action(request: Request, staff: Staff) -> Response:
    """``POST`` a test send (see the module doc): the page again, saying where it went or why it did not (400)."""
    data = campaigns_data(request)
    posted = await request.form()
    to, as_contact = _text(posted.get("to")), _text(posted.get("as"))
    try:
        details = await run_in_threadpool(get_campaign, data.db, request.path_params["campaign"])
    except NotFoundError as exc:
        return problem(request, staff, 404, str(exc))
    # Each error beside its field: the staff address checked here first, so what the send refuses after is the
    # contact to render as (unknown, or no contact to pick), or neither field's (the relay's reply).
    form = {"test_to": to, "test_as": as_contact}
    if not to:
        missing = "Give the staff address to send the test to."
        return await _page(request, staff, details.campaign.id, test_error=missing)
    try:
        normalise_email(to)
    except ValidationError as exc:
        return await _page(request, staff, details.campaign.id, test_error=str(exc), **form)
    try:
        result = await run_in_threadpool(
            send_test_message, data.db, data.settings, data.key, str(details.campaign.id), to, as_contact
        )
    except (NotFoundError, ValidationError) as exc:
        if exc.field == "to":  # a suppressed address
            return await _page(request, staff, details.campaign.id, test_error=str(exc), **form)
        return await _page(request, staff, details.campaign.id, test_as_error=str(exc), **form)
    except DeliveryError as exc:
        return await _page(request, staff, details.campaign.id, test_problem=f"not sent: {exc}", **form)
    await _audit(request, data, staff, AuditAction.CAMPAIGN_TEST_SENT, details.campaign.name, {
        "to": result.to, "as": result.rendered_as, "reply": result.reply,
    })  # fmt: skip
    return _to_page(request, details.campaign.id, done="test-sent")


async def _form_page(request: Request, staff: Staff, form: CampaignForm, status: int = 200) -> Response:
    data = campaigns_data(request)
    events = await run_in_threadpool(list_events, data.db)
    lists = await run_in_threadpool(list_lists, data.db)
    return staff_access(request).pages.page(
        "campaign_new.html",
        staff=staff,
        status=status,
        form=form,
        # Events to come, not cancelled: a campaign for one that is not happening is refused.
        events=[e for e in events if e.starts_at > datetime.now(UTC) and e.status is EventStatus.SCHEDULED] or events,
        lists=lists,
        waves=[spec.name for spec in data.settings.waves.specs],
    )


def _create(data: CampaignsData, values: dict[str, str]) -> CampaignDetails:
    # The command line's create: the default waves, each checked as `campaign waves add` checks one.
    return create_with_waves(
        data.db, data.settings, event_ref=values["event"], list_name=values["list"], name=values["name"] or None
    )


def _page_values(data: CampaignsData, ref: str, checks: bool) -> dict[str, Any]:
    """What a campaign's page shows besides the preview (worker thread: each is a query or a render). The launch
    checks only when asked (``?checks=1``): they render every wave for every contact of the list, seconds for a
    large one, and the launch confirmation runs them anyway."""
    details = get_campaign(data.db, ref)
    campaign_id = str(details.campaign.id)
    plan = list_waves(data.db, campaign_id)
    return {
        "details": details,
        "plan": plan,
        "timeline": wave_timeline(plan),
        "wave_status": wave_status(data.db, campaign_id),
        "poll_seconds": POLL_SECONDS,
        "zones": preview_zones(data.db, data.settings, campaign_id),
        "check": check_campaign(data.db, data.settings, data.key, campaign_id) if checks else None,
        "audience": audience_sample(data.db, campaign_id),
    }


def _text(value: object) -> str:
    return value.strip()[:MAX_FIELD] if isinstance(value, str) else ""


async def _audit(
    request: Request, data: CampaignsData, staff: Staff, action: AuditAction, target: str, details: dict[str, Any]
) -> None:
    address = request.client.host if request.client else None
    await run_in_threadpool(
        audit.record, data.db, action, user_id=staff.user_id, target=target, details={**details, "address": address}
    )
    # An action on a campaign (created, launched, paused ...) changes what the dashboard shows: its kept numbers go,
    # as after a retry (the dashboard showed "sending" after a pause, "draft" after the launch: a web review).
    await dashboard_data(request).cache.clear()


def _to_page(request: Request, campaign_id: int, done: str | None = None) -> Response:
    location = staff_access(request).pages.url(CAMPAIGN_MANAGE, campaign=str(campaign_id))
    return RedirectResponse(location + (f"?done={done}" if done else ""), status_code=303, headers=NO_STORE)
