"""Events on the staff web: the list, an event's page, its form (new and edit), and its update and cancellation.

Staff and admins only (:attr:`~campaign.models.Permission.ACT_ON_CAMPAIGNS`, :func:`~campaign.web.auth.require`,
which checks every POST's CSRF token first); an analyst gets the 403 page, on GET and POST alike.

* **The list** (:data:`~campaign.rules.routes.EVENTS`): title, start in the organiser's zone, status, campaigns.
* **The form** (:data:`~campaign.rules.routes.EVENT_NEW`, :data:`~campaign.rules.routes.EVENT_EDIT`) has the
  fields of an event file, checked by the same rules as ``campaign events add``
  (:func:`campaign.services.event_form.check_event_fields`): nothing is validated here, each rule's error is only
  put beside the field it names (the DST gap or overlap at the start, a bad URL at its field, a speaker's at its
  row). On an error the form comes back (400) with what was typed. The zone is a text field with a
  ``<datalist>`` of every zone, its CLDR name and current offset (:mod:`campaign.services.zone_choices`): the
  browser's own search, no script. Speakers are rows of name and role, with blank rows to fill, and buttons
  (submit buttons: no script) to add rows and to move or remove one; these only redraw the form.
* **A new event** is added at once (:func:`~campaign.services.events.add_event`; a slug taken is an error at the
  slug), audited ``event-added``.
* **An edit** of a scheduled event goes to a confirmation first, saying what changes and who will be told
  (:mod:`campaign.services.event_audience`: each launched campaign and how many people its invitation reached;
  nobody when neither time nor place changes); the confirmation posts the same fields back with
  ``action=confirm``, which runs :func:`~campaign.services.events.update_event` (its update waves), audited
  ``event-updated`` with what it did, then 303 to the event's page.
* **Saved by someone else meanwhile** (two tabs, two people): the edit form carries the version of the event it
  was rendered from (a hidden ``version``, :func:`~campaign.services.events.event_version`), posted through the
  speaker buttons and the confirmation. A save from another version than the event's now is refused before the
  confirmation (which would say what changes against an event the form was not made from), and the update
  itself names the version (:func:`~campaign.services.events.update_event` compares it in the transaction that
  writes: two confirmations cannot both pass). Either answer is the form again (409) with
  :data:`CHANGED_MEANWHILE` at the top, what was typed kept, the value saved now beside each field that differs
  from it, and the version of now. A post without a version (a page from before versions) is refused so too.
* **A cancellation**: the confirmation page (GET) says who will be told and which drafts end; its POST runs
  :func:`~campaign.services.events.cancel_event`, audited ``event-cancelled``.
* A service's refusal (the event cancelled meanwhile, a campaign without the notice's template) is one line at
  the top of the page (409), never a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from campaign.config import Settings
from campaign.exceptions import AlreadyExistsError, EditConflictError, NotFoundError, ValidationError
from campaign.models import AuditAction, AuditEntry, Event, EventStatus, Permission
from campaign.rules.routes import EVENT_PAGE
from campaign.rules.timing import utc_offset_text
from campaign.services import audit
from campaign.services.event_audience import CampaignAudience, campaigns_by_event, event_audiences
from campaign.services.event_form import check_event_fields
from campaign.services.events import (
    RESCHEDULING_FIELDS,
    EventChange,
    add_event,
    cancel_event,
    changed_fields,
    event_version,
    get_event,
    list_events,
    update_event,
)
from campaign.services.sessions import Staff
from campaign.services.zone_choices import ZoneChoice, zone_choices
from campaign.store.engine import Database
from campaign.web.auth import require, staff_access
from campaign.web.dashboard import problem
from campaign.web.pages import NO_STORE

BLANK_SPEAKER_ROWS = 3
"""Blank speaker rows the form offers below the speakers it has (more with "Add a speaker row")."""
MAX_SPEAKER_ROWS = 100
"""The most speaker rows a form is read with: a posted ``rows`` beyond it is cut to it."""
TEXT_FIELDS = (
    "slug",
    "title",
    "description",
    "start",
    "end",
    "timezone",
    "registration_url",
    "join_url",
    "language",
    "organiser_name",
    "organiser_email",
)
"""The form's fields besides the speakers, named as in the page."""
LABELS = {
    "slug": "Slug (names the calendar entry; cannot change later)",
    "title": "Title",
    "description": "Description",
    "start": "Start",
    "end": "End",
    "timezone": "Organiser's time zone",
    "registration_url": "Registration URL",
    "join_url": "Join URL",
    "language": "Language",
    "organiser_name": "Organiser's name",
    "organiser_email": "Organiser's email",
}
"""Each field's label; a confirmation names the changed fields with these too."""
EVENT_ACTIONS = frozenset({AuditAction.EVENT_ADDED, AuditAction.EVENT_UPDATED, AuditAction.EVENT_CANCELLED})
"""What an event's history shows of the audit log."""
CHANGED_MEANWHILE = (
    "This event was changed by someone else since you opened this page, and your changes were not saved: "
    "review the current values shown beside your fields below and save again."
)
"""The line at the top of a form whose event was saved by someone else since the page was opened."""
_CHANGED_NAMES = {"starts_at": "start", "ends_at": "end", "speakers": "speakers"}
_SPEAKER_FIELD = re.compile(r"speakers\[(\d+)\](?:\.(name|role))?")
_LOCAL_FORM = "%Y-%m-%dT%H:%M"


@dataclass
class EventForm:
    """What the form shows: each field's text, the speaker rows (name, role), and each field's error."""

    values: dict[str, str]
    speakers: list[tuple[str, str]]
    errors: dict[str, str] = field(default_factory=dict)
    problem: str | None = None
    """A refusal of the whole form (not of one field), shown at the top."""
    version: str = ""
    """The version of the event the form was rendered from (an edit's), posted back with it."""
    saved: dict[str, str] = field(default_factory=dict)
    """After someone else saved the event: its value now, for each field (``speakers``: all) where it differs."""

    @classmethod
    def blank(cls) -> EventForm:
        """A new event's form: empty, the language English."""
        values = dict.fromkeys(TEXT_FIELDS, "")
        values["language"] = "en"
        return cls(values, [("", "")] * BLANK_SPEAKER_ROWS)

    @classmethod
    def of_event(cls, event: Event) -> EventForm:
        """An event's form: its fields as they are, times on the organiser's wall clock."""
        values = {
            "slug": event.slug,
            "title": event.title,
            "description": event.description,
            "start": local_text(event.starts_at, event.timezone),
            "end": local_text(event.ends_at, event.timezone),
            "timezone": event.timezone,
            "registration_url": event.registration_url or "",
            "join_url": event.join_url or "",
            "language": event.language,
            "organiser_name": event.organiser_name or "",
            "organiser_email": event.organiser_email or "",
        }
        speakers = [(s.name, s.role or "") for s in event.speakers]
        return cls(values, speakers + [("", "")] * BLANK_SPEAKER_ROWS, version=event_version(event))

    @classmethod
    def posted(cls, form: FormData) -> EventForm:
        """The form as posted: every field as typed (nothing trimmed: the rules decide)."""
        values = {name: _text(form, name) for name in TEXT_FIELDS}
        try:
            rows = min(max(int(_text(form, "rows") or "0"), 0), MAX_SPEAKER_ROWS)
        except ValueError:
            rows = 0
        speakers = [(_text(form, f"speaker-{n}-name"), _text(form, f"speaker-{n}-role")) for n in range(1, rows + 1)]
        return cls(values, speakers, version=_text(form, "version"))

    def rearrange(self, action: str) -> bool:
        """Do a button's ``action`` other than saving (``add-row``, ``up-N``, ``down-N``, ``remove-N``, ``back``);
        False for none: the form is to be saved."""
        if action == "back":  # from a confirmation: the form again, as it was
            return True
        if action == "add-row":
            if len(self.speakers) < MAX_SPEAKER_ROWS:
                self.speakers.append(("", ""))
            return True
        verb, _, number = action.partition("-")
        if verb not in ("up", "down", "remove") or not number.isdigit():
            return False
        index = int(number) - 1
        if not 0 <= index < len(self.speakers):
            return True
        if verb == "remove":
            del self.speakers[index]
        else:
            other = index - 1 if verb == "up" else index + 1
            if 0 <= other < len(self.speakers):
                self.speakers[index], self.speakers[other] = self.speakers[other], self.speakers[index]
        return True

    def filled_rows(self) -> list[int]:
        """The 1-based numbers of the speaker rows with anything typed in them (blank rows are no speakers)."""
        return [n for n, (name, role) in enumerate(self.speakers, 1) if name.strip() or role.strip()]

    def document(self, slug: str | None) -> dict[str, Any]:
        """The form as the mapping an event file holds; ``slug`` fixed (an edit) or None (as typed)."""
        v = self.values
        doc: dict[str, Any] = {
            "slug": v["slug"] if slug is None else slug,
            "title": v["title"],
            "description": v["description"],
            "start": v["start"],
            "end": v["end"],
            "timezone": v["timezone"],
            "registration_url": v["registration_url"],
            "join_url": v["join_url"],
            "language": v["language"],
            "organiser": {"name": v["organiser_name"], "email": v["organiser_email"]},
            "speakers": [
                {"name": self.speakers[n - 1][0], "role": self.speakers[n - 1][1]} for n in self.filled_rows()
            ],
        }
        return doc

    def place_errors(self, errors: Mapping[str, str]) -> None:
        """Put each rule's error (its field as the rules name it) beside the form's field."""
        rows = self.filled_rows()
        for name, reason in errors.items():
            self.errors.setdefault(self._field_of(name, rows), reason)

    @staticmethod
    def _field_of(name: str, rows: list[int]) -> str:
        if name.startswith("organiser"):
            return "organiser_email" if name == "organiser.email" else "organiser_name"
        if (speaker := _SPEAKER_FIELD.fullmatch(name)) is not None:
            index = int(speaker.group(1)) - 1
            if 0 <= index < len(rows):
                return f"speaker-{rows[index]}-{speaker.group(2) or 'name'}"
            return "speakers"
        return name if name in TEXT_FIELDS or name == "speakers" else "form"

    def compare_with(self, event: Event) -> None:
        """Note in :attr:`saved` the event's value now beside each field where what was typed differs (the slug
        cannot change; the speakers are compared as one list, blank rows left out)."""
        now = EventForm.of_event(event)
        self.saved = {
            name: now.values[name] or "(empty)"
            for name in TEXT_FIELDS
            if name != "slug" and self.values[name] != now.values[name]
        }
        typed = [self.speakers[n - 1] for n in self.filled_rows()]
        listed = [now.speakers[n - 1] for n in now.filled_rows()]
        if typed != listed:
            self.saved["speakers"] = "; ".join(f"{name} ({role})" if role else name for name, role in listed) or "none"

    def hidden_fields(self) -> list[tuple[str, str]]:
        """The form as hidden fields (a confirmation posts it again): the version it was made from, the fields,
        then the filled speaker rows."""
        fields = [("version", self.version)]
        fields += [(name, self.values[name]) for name in TEXT_FIELDS]
        filled = [self.speakers[n - 1] for n in self.filled_rows()]
        fields.append(("rows", str(len(filled))))
        for number, (name, role) in enumerate(filled, 1):
            fields += [(f"speaker-{number}-name", name), (f"speaker-{number}-role", role)]
        return fields


def local_text(instant: datetime, zone: str) -> str:
    """An instant as the form's start or end: ``2020-06-26T13:30`` on ``zone``'s wall clock; with its offset
    (``2026-10-25T02:30+02:00``) when that wall-clock time happens twice there, so it reads back as the same."""
    local = instant.astimezone(ZoneInfo(zone))
    other = local.replace(fold=1 - local.fold)
    text = local.strftime(_LOCAL_FORM)
    if other.utcoffset() != local.utcoffset():
        text += utc_offset_text(local.utcoffset())
    return text


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


class EventsData:
    """What the event pages use (``app.state.events``): the database, and the settings the notices need."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings


def _data(request: Request) -> EventsData:
    data: EventsData = request.app.state.events
    return data


def _db(request: Request) -> Database:
    return _data(request).db


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


# ---------------------------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------------------------


@require(Permission.ACT_ON_CAMPAIGNS)
async def events_page(request: Request, staff: Staff) -> Response:
    """``/events``: every event, soonest first, with its campaigns."""
    db = _db(request)
    events = await run_in_threadpool(list_events, db)
    campaigns = await run_in_threadpool(campaigns_by_event, db)
    return staff_access(request).pages.page("events.html", staff=staff, events=events, campaigns=campaigns)


@require(Permission.ACT_ON_CAMPAIGNS)
async def event_page(request: Request, staff: Staff) -> Response:
    """An event's page: its details, campaigns (with who a notice would reach) and history; edit and cancel."""
    db = _db(request)
    event = await _path_event(request, staff)
    if isinstance(event, Response):
        return event
    audiences = await run_in_threadpool(event_audiences, db, event)
    history = await run_in_threadpool(_history, db, event)
    done = request.query_params.get("done")
    return staff_access(request).pages.page(
        "event.html",
        staff=staff,
        event=event,
        audiences=audiences,
        history=history,
        done=done if done in ("added", "updated", "cancelled", "unchanged") else None,
    )


@require(Permission.ACT_ON_CAMPAIGNS)
async def new_event(request: Request, staff: Staff) -> Response:
    """``/events/new``: the blank form (GET); a speaker button, or the event added (POST)."""
    if request.method != "POST":
        return _form_page(request, staff, EventForm.blank(), None)
    form = await request.form()
    posted = EventForm.posted(form)
    action = _text(form, "action") or "save"
    if posted.rearrange(action):
        return _form_page(request, staff, posted, None)
    check = check_event_fields(posted.document(None), default_slug=posted.values["title"])
    if check.values is None:
        errors = dict(check.errors)
        if "title" in errors and not posted.values.get("slug"):
            # The slug is made from the title: the title's own error says what to fix.
            errors.pop("slug", None)
        posted.place_errors(errors)
        return _form_page(request, staff, posted, None, status=400)
    db = _db(request)
    try:
        event = await run_in_threadpool(add_event, db, check.values)
    except (AlreadyExistsError, ValidationError) as exc:
        # The only refusals left are about the slug (taken, or all digits).
        posted.errors["slug"] = str(exc)
        return _form_page(request, staff, posted, None, status=400)
    await run_in_threadpool(
        audit.record,
        db,
        AuditAction.EVENT_ADDED,
        user_id=staff.user_id,
        target=event.slug,
        details={"event": event.id, "address": _address(request)},
    )
    return _to_event(request, event, "added")


async def _path_event(request: Request, staff: Staff) -> Event | Response:
    """The event the path names, or the 404 page saying there is none."""
    try:
        return await run_in_threadpool(get_event, _db(request), request.path_params["event"])
    except NotFoundError as exc:
        return problem(request, staff, 404, str(exc))


@require(Permission.ACT_ON_CAMPAIGNS)
async def edit_event(request: Request, staff: Staff) -> Response:
    """An event's form (GET); a speaker button, the confirmation, or (``action=confirm``) the update (POST)."""
    db = _db(request)
    event = await _path_event(request, staff)
    if isinstance(event, Response):
        return event
    if event.status is EventStatus.CANCELLED:
        return problem(request, staff, 409, f"event {event.slug} is cancelled: it can no longer be edited")
    if request.method != "POST":
        return _form_page(request, staff, EventForm.of_event(event), event)
    form = await request.form()
    posted = EventForm.posted(form)
    posted.values["slug"] = event.slug  # the slug names the calendar entry: never changed by a form
    action = _text(form, "action") or "save"
    if posted.rearrange(action):
        return _form_page(request, staff, posted, event)
    check = check_event_fields(posted.document(event.slug))
    if check.values is None:
        posted.place_errors(check.errors)
        return _form_page(request, staff, posted, event, status=400)
    if posted.version != event_version(event):
        # Before the confirmation too: it would say what changes against an event the form was not made from.
        return _changed_meanwhile(request, staff, posted, event)
    if action != "confirm":
        return await _confirm_update(request, staff, event, posted, check.values)
    settings = _data(request).settings
    try:
        change = await run_in_threadpool(update_event, db, settings, event.slug, check.values, version=posted.version)
    except EditConflictError:  # saved by someone else between the check above and the write
        current = await _path_event(request, staff)
        if isinstance(current, Response):
            return current
        return _changed_meanwhile(request, staff, posted, current)
    except ValidationError as exc:
        posted.problem = str(exc)
        return _form_page(request, staff, posted, event, status=409)
    if not change.changed:
        return _to_event(request, change.event, "unchanged")
    await run_in_threadpool(
        audit.record,
        db,
        AuditAction.EVENT_UPDATED,
        user_id=staff.user_id,
        target=event.slug,
        details={**_change_details(change), "address": _address(request)},
    )
    return _to_event(request, change.event, "updated")


@require(Permission.ACT_ON_CAMPAIGNS)
async def cancel_event_page(request: Request, staff: Staff) -> Response:
    """An event's cancellation: the confirmation saying who will be told (GET), the cancellation (POST)."""
    db = _db(request)
    event = await _path_event(request, staff)
    if isinstance(event, Response):
        return event
    if event.status is EventStatus.CANCELLED:
        return problem(request, staff, 409, f"event {event.slug} is already cancelled")
    audiences = await run_in_threadpool(event_audiences, db, event)
    pages = staff_access(request).pages
    if request.method != "POST":
        return pages.page("event_cancel.html", staff=staff, event=event, audiences=audiences, problem=None)
    try:
        change = await run_in_threadpool(cancel_event, db, _data(request).settings, event.slug)
    except ValidationError as exc:
        return pages.page(
            "event_cancel.html", staff=staff, event=event, audiences=audiences, problem=str(exc), status=409
        )
    await run_in_threadpool(
        audit.record,
        db,
        AuditAction.EVENT_CANCELLED,
        user_id=staff.user_id,
        target=event.slug,
        details={
            **_change_details(change),
            "cancelled_waves": change.cancelled_waves,
            "cancelled_messages": change.cancelled_messages,
            "address": _address(request),
        },
    )
    return _to_event(request, change.event, "cancelled")


# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------


async def _confirm_update(
    request: Request, staff: Staff, event: Event, posted: EventForm, values: dict[str, Any]
) -> Response:
    """The page before an update: what changes, who will be told (nobody when neither time nor place changes)."""
    changed = changed_fields(event, values)
    rescheduling = any(name in RESCHEDULING_FIELDS for name in changed)
    audiences: list[CampaignAudience] = await run_in_threadpool(event_audiences, _db(request), event)
    told = [a for a in audiences if a.launched] if rescheduling else []
    return staff_access(request).pages.page(
        "event_confirm.html",
        staff=staff,
        event=event,
        changed=[LABELS.get(_CHANGED_NAMES.get(name, name), name.replace("_", " ")) for name in changed],
        rescheduling=rescheduling,
        told=told,
        drafts=[a for a in audiences if not a.launched],
        people=sum(a.invited for a in told),
        hidden=posted.hidden_fields(),
    )


def _changed_meanwhile(request: Request, staff: Staff, posted: EventForm, event: Event) -> Response:
    """The form again (409) after someone else saved the event since it was opened; see the module doc.

    What was typed is kept, not replaced by the values saved now: those are a reload away, what this person typed
    is nowhere else. Beside each field where it differs is the value saved now (the other person's change, or
    this person's own, or both), and the form takes the version of now, so that saving again overwrites only
    what its author has seen."""
    if event.status is EventStatus.CANCELLED:
        return problem(request, staff, 409, f"event {event.slug} is cancelled: it can no longer be edited")
    posted.compare_with(event)
    posted.version = event_version(event)
    posted.problem = CHANGED_MEANWHILE
    return _form_page(request, staff, posted, event, status=409)


def _form_page(request: Request, staff: Staff, form: EventForm, event: Event | None, *, status: int = 200) -> Response:
    return staff_access(request).pages.page(
        "event_form.html",
        staff=staff,
        status=status,
        form=form,
        event=event,
        labels=LABELS,
        zones=_zones(),
    )


def _zones() -> list[ZoneChoice]:
    """The picker's zones, their names and offsets as of this hour: offsets change on the hour (or half)."""
    now = datetime.now(UTC)
    return _zones_at(now.replace(minute=now.minute // 15 * 15, second=0, microsecond=0))


@lru_cache(maxsize=1)
def _zones_at(moment: datetime) -> list[ZoneChoice]:
    return zone_choices(moment)


def _history(db: Database, event: Event) -> list[AuditEntry]:
    """The event's entries of the audit log (a campaign may share its name with the slug: not its entries)."""
    return audit.recent_actions(db, 20, target=event.slug, actions=EVENT_ACTIONS)


def _change_details(change: EventChange) -> dict[str, Any]:
    """What an update or cancellation did, for the audit log: the fields, and each campaign's notice."""
    return {
        "event": change.event.id,
        "sequence": change.event.sequence,
        "changed": list(change.changed),
        "campaigns": [
            {"campaign": n.campaign, "wave": n.wave, "queued": n.queued, "suppressed": n.suppressed, "note": n.note}
            for n in change.campaigns
        ],
    }


def _to_event(request: Request, event: Event, done: str) -> Response:
    location = staff_access(request).pages.url(EVENT_PAGE, event=str(event.id)) + "?" + urlencode({"done": done})
    return RedirectResponse(location, status_code=303, headers=NO_STORE)
