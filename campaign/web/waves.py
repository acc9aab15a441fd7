"""A campaign's waves on the staff web: add, edit, remove (as ``campaign waves``), and their live counts.

Staff and admins only (:attr:`~campaign.models.Permission.ACT_ON_CAMPAIGNS`; :func:`~campaign.web.auth.require`
checks every POST's CSRF token first); an analyst gets the 403 page. Each change goes through the service the
command line uses (:mod:`campaign.services.waves`) and is audited with the campaign as its target, so the
campaign's page shows it in its history.

* **The form** (:data:`~campaign.rules.routes.CAMPAIGN_WAVE_NEW`, :data:`~campaign.rules.routes.CAMPAIGN_WAVE_EDIT`):
  the options of ``campaign waves add``. The timing is one of three: an offset from the event start (``-7d``),
  a date and time on the event's wall clock (turned into an instant here, a time the clocks skip or repeat
  refused beside the field), or at launch. An empty send window is none; an empty template is the kind's.
  A refusal is one line beside the field it is about: the service says which
  (:class:`~campaign.rules.wave_specs.WaveOptionError`'s ``option``; a name taken is an AlreadyExistsError),
  the form keeps what was typed (400), nothing changes.
* A wave that fired, was missed or cancelled is history: its form is not offered, and the service's refusal of a
  change is the 409 page (as a wave the scheduler fires while its form is open).
* **Saved by someone else meanwhile** (two tabs, two people): the edit form carries the version of the wave it
  was rendered from (a hidden ``version``, :attr:`~campaign.services.waves.WaveLine.version`), and the service
  writes nothing when the wave is another version by then (:class:`~campaign.exceptions.EditConflictError`,
  checked in the transaction that writes). The answer is the form again (409) with :data:`CHANGED_MEANWHILE` at
  the top, what was typed kept, the value saved now beside each field that differs from it, and the version of
  now: saving it again is then a decision made seeing what it overwrites. A post without a version (a page from
  before versions) is refused so too.
* **Remove** (:data:`~campaign.rules.routes.CAMPAIGN_WAVE_REMOVE`): a confirmation (GET), then the removal.
* **Live counts** (:data:`~campaign.rules.routes.CAMPAIGN_WAVES_STATUS`): the fragment ``_wave_status.html``
  (:func:`campaign.web.wave_views.wave_status`), which the page includes at load and ``static/live.js`` fetches
  again every few seconds while the campaign is sending.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from campaign.exceptions import AlreadyExistsError, CampaignError, EditConflictError, NotFoundError, ValidationError
from campaign.models import Audience, AuditAction, Event, Permission, WaveKind, WaveStatus
from campaign.rules.contact_fields import FieldError
from campaign.rules.event_fields import local_to_utc, wall_clock
from campaign.rules.routes import CAMPAIGN_MANAGE
from campaign.rules.timing import parse_window
from campaign.rules.wave_specs import EVENT_NOTICES, HAND_KINDS, LAUNCH, WaveOptionError, parse_instant_or_offset
from campaign.services import audit
from campaign.services.sessions import Staff
from campaign.services.waves import (
    DEFAULT_EXPIRY,
    MAX_SUBJECT_LENGTH,
    NO_WINDOW,
    WaveLine,
    WaveOptions,
    WavePlan,
    add_wave,
    edit_wave,
    list_waves,
    remove_wave,
)
from campaign.web.auth import require, staff_access
from campaign.web.campaigns import campaigns_data
from campaign.web.dashboard import problem
from campaign.web.pages import NO_STORE
from campaign.web.wave_views import wave_status

FIELDS = ("name", "kind", "template", "subject", "timing", "offset", "local", "audience", "window", "expires")
"""The form's inputs; an error is keyed by a :class:`WaveOptions` field (``at``: the timing), ``name`` or ``form``."""
TIMINGS = ("offset", "local", "launch")
"""The ``timing`` choices: an offset from the event start, a wall-clock time in the event's zone, at launch."""
MAX_FIELD = 2 * MAX_SUBJECT_LENGTH
"""The longest value a field is read with: longer than any rule lets a field be (the subject's is the longest), so
a longer value is refused by its rule, never cut to one the rule takes (a 1,015-character subject was cut to 500
and saved so: its end lost without a word)."""
_OPTIONS = frozenset({"name", "kind", "at", "audience", "window", "subject", "expires", "template"})
CHANGED_MEANWHILE = (
    "This wave was changed by someone else since you opened this page, and your changes were not saved: "
    "review the current values shown beside your fields below and save again."
)
"""The line at the top of a form whose wave was saved by someone else since the page was opened."""


@dataclass
class WaveForm:
    """The wave form: what was typed, and each field's error (``form``: one of the whole form)."""

    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    version: str = ""
    """The version of the wave the form was rendered from (an edit's), posted back with it."""
    saved: dict[str, str] = field(default_factory=dict)
    """After someone else saved the wave: its value now, for each field (``at``: the timing) where it differs."""


@require(Permission.ACT_ON_CAMPAIGNS)
async def new_wave(request: Request, staff: Staff) -> Response:
    """The new-wave form (GET) and the adding (POST); see the module doc."""
    data = campaigns_data(request)
    plan = await _plan(request)
    if plan is None:
        return problem(request, staff, 404, f"no campaign {request.path_params['campaign']!r}")
    if request.method != "POST":
        defaults = {"kind": WaveKind.REMINDER.value, "timing": "offset", "offset": "-1d", "audience": "all"}
        values = {**dict.fromkeys(FIELDS, ""), **defaults, "window": data.settings.waves.window}
        return _form(request, staff, plan, WaveForm({**values, "expires": DEFAULT_EXPIRY}), None)
    form = WaveForm(await _posted(request))
    name = form.values["name"]
    options = _options(form, plan.event)
    if not name:
        form.errors["name"] = "Give the wave a name (a-z, 0-9 and '-'), e.g. reminder-2h."
    if form.errors or options is None:
        return _form(request, staff, plan, form, None, status=400)
    campaign_id = str(plan.campaign.id)
    try:
        await run_in_threadpool(add_wave, data.db, data.settings, campaign_id, name, options)
    except (ValidationError, AlreadyExistsError) as exc:
        form.errors[_field_of(exc)] = _form_message(exc)
        return _form(request, staff, plan, form, None, status=400)
    except NotFoundError as exc:
        return problem(request, staff, 404, str(exc))
    await _audit(request, staff, AuditAction.CAMPAIGN_WAVE_ADDED, plan, name, options)
    return _to_page(request, plan.campaign.id, "wave-added")


@require(Permission.ACT_ON_CAMPAIGNS)
async def edit_wave_page(request: Request, staff: Staff) -> Response:
    """A pending wave's form (GET) and its change (POST); see the module doc."""
    data = campaigns_data(request)
    found = await _pending_wave(request, staff)
    if isinstance(found, Response):
        return found
    plan, line = found
    if request.method != "POST":
        return _form(request, staff, plan, WaveForm(_values_of(line, plan.event), version=line.version), line)
    # The version posted, not the wave's now: a form sent back to fix a field stays the one it was opened as.
    version = _text((await request.form()).get("version"))
    form = WaveForm({**await _posted(request), "name": line.name}, version=version)
    options = _options(form, plan.event)
    if form.errors or options is None:
        return _form(request, staff, plan, form, line, status=400)
    campaign_id = str(plan.campaign.id)
    try:
        await run_in_threadpool(
            edit_wave, data.db, data.settings, campaign_id, line.name, options, version=form.version
        )
    except EditConflictError:
        return await _changed_meanwhile(request, staff, form)
    except WaveOptionError as exc:
        form.errors[_field_of(exc)] = _form_message(exc)
        return _form(request, staff, plan, form, line, status=400)
    except (ValidationError, NotFoundError) as exc:  # it fired meanwhile, or is gone
        return problem(request, staff, 409, str(exc))
    await _audit(request, staff, AuditAction.CAMPAIGN_WAVE_EDITED, plan, line.name, options)
    return _to_page(request, plan.campaign.id, "wave-edited")


@require(Permission.ACT_ON_CAMPAIGNS)
async def remove_wave_page(request: Request, staff: Staff) -> Response:
    """The confirmation of a wave's removal (GET), and the removal (POST); see the module doc."""
    data = campaigns_data(request)
    found = await _pending_wave(request, staff)
    if isinstance(found, Response):
        return found
    plan, line = found
    if request.method != "POST":
        return staff_access(request).pages.page("wave_remove.html", staff=staff, plan=plan, line=line)
    try:
        await run_in_threadpool(remove_wave, data.db, str(plan.campaign.id), line.name)
    except (ValidationError, NotFoundError) as exc:
        return problem(request, staff, 409, str(exc))
    await _audit(request, staff, AuditAction.CAMPAIGN_WAVE_REMOVED, plan, line.name, None)
    return _to_page(request, plan.campaign.id, "wave-removed")


@require(Permission.ACT_ON_CAMPAIGNS)
async def waves_status(request: Request, staff: Staff) -> Response:
    """The live counts fragment (see the module doc); the 404 page for an unknown campaign."""
    data = campaigns_data(request)
    try:
        status = await run_in_threadpool(wave_status, data.db, request.path_params["campaign"])
    except NotFoundError as exc:
        return problem(request, staff, 404, str(exc))
    return staff_access(request).pages.page("_wave_status.html", staff=staff, wave_status=status)


async def _plan(request: Request) -> WavePlan | None:
    """The waves of the campaign the path names; None when there is no such campaign."""
    try:
        return await run_in_threadpool(list_waves, campaigns_data(request).db, request.path_params["campaign"])
    except NotFoundError:
        return None


async def _pending_wave(request: Request, staff: Staff) -> tuple[WavePlan, WaveLine] | Response:
    """The campaign's plan and the wave the path names, if it may still change; else the page saying why (404:
    no such campaign or wave; 409: the wave is history)."""
    plan = await _plan(request)
    name = request.path_params["wave"]
    line = next((line for line in plan.waves if line.name == name), None) if plan else None
    if plan is None or line is None:
        return problem(request, staff, 404, f"no wave {name!r} in this campaign")
    if line.status is not WaveStatus.PENDING:
        return problem(request, staff, 409, _history(line))
    return plan, line


async def _changed_meanwhile(request: Request, staff: Staff, form: WaveForm) -> Response:
    """The form again (409) after someone else saved the wave since it was opened; see the module doc.

    What was typed is kept, not replaced by the values saved now: those are a reload away, what this person typed
    is nowhere else. Beside each field where it differs is the value saved now (the other person's change, or
    this person's own, or both), and the form takes the version of now, so that saving again overwrites only
    what its author has seen."""
    found = await _pending_wave(request, staff)  # read again: it may have fired or gone meanwhile too
    if isinstance(found, Response):
        return found
    plan, line = found
    now = _values_of(line, plan.event)
    typed = form.values
    form.saved = {name: now[name] or "(empty)" for name in _COMPARED if typed[name] != now[name]}
    if _timing_of(typed) != _timing_of(now):
        form.saved["at"] = _timing_text(now, plan.event)
    if (typed["expires"] or DEFAULT_EXPIRY) == now["expires"]:
        form.saved.pop("expires", None)  # empty is the default
    form.version = line.version
    form.errors["form"] = CHANGED_MEANWHILE
    return _form(request, staff, plan, form, line, status=409)


_COMPARED = ("kind", "audience", "window", "expires", "template", "subject")
"""The fields compared one by one with the values saved now (the timing is compared as one: :func:`_timing_of`)."""


def _timing_of(values: dict[str, str]) -> tuple[str, str]:
    """The timing a form's values say: the choice, and the offset or wall-clock time it goes with."""
    timing = values["timing"]
    return timing, values.get(timing, "") if timing in ("offset", "local") else ""


def _timing_text(values: dict[str, str], event: Event) -> str:
    timing, when = _timing_of(values)
    if timing == "local":
        return f"{when.replace('T', ' ')} ({event.timezone})"
    return when if timing == "offset" else "when the campaign is launched"


def _history(line: WaveLine) -> str:
    return f"wave {line.name} is {line.status}: it can no longer be changed; add a new wave instead"


async def _posted(request: Request) -> dict[str, str]:
    posted = await request.form()
    return {name: _text(posted.get(name)) for name in FIELDS}


def _options(form: WaveForm, event: Event) -> WaveOptions | None:
    """The service's options for what was posted; None (with the error beside its field) when the timing cannot
    be read. The service checks every option itself."""
    values = form.values
    timing = values["timing"]
    at: str | None = None
    if timing == "launch":
        at = LAUNCH
    elif timing == "offset":
        at = values["offset"]
        if not at:
            form.errors["at"] = "Give the offset from the event start, like -7d, -1h or +1d."
    elif timing == "local" and not values["local"]:
        form.errors["at"] = f"Give the date and time, on the event's clock ({event.timezone})."
    elif timing == "local":
        try:
            at = local_to_utc(values["local"], event.timezone, "time").isoformat()
        except FieldError as exc:  # not a time, or one the clocks skip or repeat there
            form.errors["at"] = f"{exc.reason}."
    else:
        form.errors["at"] = "Choose when the wave goes out."
    # What the rules read field by field is checked here too, so that a form with several mistakes says them all
    # at once (a review met them one save at a time): the service, which checks everything again, stops at its
    # first. The same rules, the same words.
    name = values["name"] or "new"
    if timing == "offset" and at:
        _check_field(form, "at", lambda: parse_instant_or_offset(str(at), f"wave {name}: --at"))
    if values["window"] and values["window"].strip().lower() != NO_WINDOW:
        _check_field(form, "window", lambda: parse_window(values["window"]))
    if values["expires"] and values["expires"].strip().lower() != DEFAULT_EXPIRY:
        expiry = f"wave {name}: --expires"
        _check_field(form, "expires", lambda: parse_instant_or_offset(values["expires"], expiry))
    if at is None or form.errors:
        return None
    return WaveOptions(
        kind=values["kind"],
        at=at,
        audience=values["audience"],
        window=values["window"],  # empty: none
        subject=values["subject"],
        expires=values["expires"] or DEFAULT_EXPIRY,
        template=values["template"] or values["kind"],  # empty: the kind's
    )


def _check_field(form: WaveForm, field: str, check: Callable[[], object]) -> None:
    """Put ``check``'s refusal (a rule's ValidationError) beside ``field``, in the form's words."""
    try:
        check()
    except ValidationError as exc:
        form.errors.setdefault(field, _form_message(exc))


def _values_of(line: WaveLine, event: Event) -> dict[str, str]:
    """The form's values for a wave as it is."""
    timing = line.timing
    values = {
        **dict.fromkeys(FIELDS, ""),
        "name": line.name,
        "kind": line.kind.value,
        "template": "" if line.template == line.kind.value else line.template,
        "subject": line.subject or "",
        "audience": line.audience,
        "window": line.window or "",
        "expires": line.expires_written,
    }
    if timing == LAUNCH:
        return {**values, "timing": "launch"}
    if timing[:1] in "+-":
        return {**values, "timing": "offset", "offset": timing}
    instant = datetime.fromisoformat(timing.replace("Z", "+00:00"))
    return {**values, "timing": "local", "local": f"{wall_clock(instant, event.timezone):%Y-%m-%dT%H:%M}"}


def _form(
    request: Request, staff: Staff, plan: WavePlan, form: WaveForm, line: WaveLine | None, status: int = 200
) -> Response:
    return staff_access(request).pages.page(
        "wave_form.html",
        staff=staff,
        status=status,
        plan=plan,
        form=form,
        line=line,
        # A wave of the event's own notices (updates, the cancellation) is edited as what it is; none is added.
        kinds=[kind.value for kind in HAND_KINDS] + ([line.kind.value] if line and line.kind in EVENT_NOTICES else []),
        audiences=[audience.value for audience in Audience],
    )


# The command line's options that the services' refusals name, as this form labels its fields: a staff member in
# the browser never typed "--expires".
_FORM_WORDS = {
    "--expires": "'Not sent after'",
    "--at": "the time",
    "--kind": "the kind",
    "--audience": "the audience",
    "--window": "the send window",
    "--template": "the template",
    "--subject": "the subject",
}
_OPTION = re.compile("|".join(re.escape(option) + r"\b" for option in _FORM_WORDS))


def _form_message(exc: CampaignError) -> str:
    """A service's refusal as the form words it: its fields' labels, not the command line's options."""
    return _OPTION.sub(lambda found: _FORM_WORDS[found.group(0)], str(exc))


def _field_of(exc: CampaignError) -> str:
    """The field a service's refusal is about: the option it names, the name for one taken, else the form."""
    if exc.field in _OPTIONS:
        return exc.field
    if isinstance(exc, AlreadyExistsError):
        return "name"
    return "form"


def _text(value: object) -> str:
    return value.strip()[:MAX_FIELD] if isinstance(value, str) else ""


async def _audit(
    request: Request, staff: Staff, action: AuditAction, plan: WavePlan, wave: str, options: WaveOptions | None
) -> None:
    details: dict[str, Any] = {"wave": wave}
    if options is not None:
        details.update({name: value for name, value in asdict(options).items() if value})
    details["address"] = request.client.host if request.client else None
    await run_in_threadpool(
        audit.record,
        campaigns_data(request).db,
        action,
        user_id=staff.user_id,
        target=plan.campaign.name,
        details=details,
    )


def _to_page(request: Request, campaign_id: int, done: str) -> Response:
    location = staff_access(request).pages.url(CAMPAIGN_MANAGE, campaign=str(campaign_id))
    return RedirectResponse(f"{location}?done={done}#waves", status_code=303, headers=NO_STORE)
