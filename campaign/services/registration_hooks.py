"""Registrations a webinar platform pushes to ``POST /hooks/registration``: what a signed JSON body means, and
recording it. The web layer (:mod:`campaign.web.hooks`) has checked the signature; this module reads the body.

Two formats, told apart by a ``payload`` key (Zoom's envelope has one, the generic format none):

* **Zoom** (``{"event": ..., "event_ts": ms, "payload": {"object": {...}}}``):

  - ``webinar.registration_created`` and ``webinar.registration_approved`` are registrations; any other event is
    ignored (a subscription may carry more events than this needs). A ``registration_created`` whose
    ``registrant.status`` is there and is not ``approved`` (``pending`` under manual approval) is not recorded:
    its ``registration_approved`` comes when the host approves it. No status counts as approved (the rule of the
    registrants import, :func:`campaign.rules.registrant_fields.registration_status`).
  - The webinar is ``payload.object.id`` (its number). It is the event whose ``join_url`` or ``registration_url``
    has that number as a path segment (``https://us02web.zoom.us/j/89967603066?pwd=…``, ``…/w/89967603066``), any
    host; every such event when several share the webinar. None: the delivery is ignored (Zoom reports the
    webinars of the whole account, most of them none of ours). A ``registration_url`` of the ``/webinar/register/
    WN_…`` form names no number: set the event's ``join_url`` then.
  - The registrant is ``payload.object.registrant.email``, registered at ``event_ts`` (milliseconds; now without).

* **Generic**: ``{"event": "<slug or id>", "email": "...", "registered_at": "<ISO 8601 with offset>"}``, or
  ``{"event": ..., "registrants": [{"email": ..., "registered_at": ...}, ...]}``; ``registered_at`` is optional
  (now). An unknown event is an error here: the sender named it.

Registrants are recorded with source ``webhook`` by :func:`campaign.services.registrations.record_registrants`
(a delivery repeated changes nothing; registrants who are not contacts are returned, never added). A body that
does not fit its format is a :class:`ValidationError` (an unknown generic event a :class:`NotFoundError`), one
line naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from campaign.exceptions import NotFoundError, ValidationError
from campaign.models import Event, RegistrationSource
from campaign.rules.contact_fields import FieldError, normalise_email
from campaign.rules.registrant_fields import registration_status
from campaign.rules.timing import out_of_years
from campaign.services.registrations import Registrant, record_registrants
from campaign.store import events as event_store
from campaign.store.engine import Database

URL_VALIDATION = "endpoint.url_validation"
"""Zoom's challenge of the endpoint, answered with :func:`campaign.rules.webhook_signatures.url_validation_answer`."""
ZOOM_REGISTRATIONS = frozenset({"webinar.registration_created", "webinar.registration_approved"})
"""The Zoom events that are registrations."""
_LONGEST_ADDRESS = 254  # RFC 5321's limit on a path, so on an address
_SHOWN = 60  # characters of a sender's value quoted in a reply: enough to recognise it, never the whole body


@dataclass(frozen=True, slots=True)
class HookOutcome:
    """What became of a delivery: ``ignored`` says why nothing was recorded; otherwise the ``events`` (slugs) it
    was recorded for, how many registrations were ``added`` and already ``known``, and the addresses that are
    not contacts."""

    ignored: str | None = None
    events: tuple[str, ...] = ()
    added: int = 0
    known: int = 0
    not_contacts: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The reply's JSON object."""
        if self.ignored is not None:
            return {"result": "ignored", "reason": self.ignored}
        return {
            "result": "recorded",
            "events": list(self.events),
            "added": self.added,
            "known": self.known,
            "not_contacts": list(self.not_contacts),
        }


def plain_token(document: Any) -> str | None:
    """The ``payload.plainToken`` of Zoom's ``endpoint.url_validation``; None when ``document`` is another body."""
    if not isinstance(document, dict) or document.get("event") != URL_VALIDATION:
        return None
    token = _object(document, "payload").get("plainToken")
    if not isinstance(token, str) or not token:
        raise ValidationError("payload.plainToken: missing")
    return token


def receive(db: Database, document: Any, now: datetime) -> HookOutcome:
    """Record the registrations of a delivery's parsed JSON body (see the module doc)."""
    if not isinstance(document, dict):
        raise ValidationError("the body must be a JSON object")
    if "payload" in document:
        return _zoom(db, document, now)
    return _generic(db, document, now)


def has_webinar(event: Event, webinar_id: str) -> bool:
    """Whether the event's join or registration URL has the Zoom webinar number as a path segment."""
    urls = (event.join_url, event.registration_url)
    return any(webinar_id in urlsplit(url).path.split("/") for url in urls if url)


def _zoom(db: Database, document: Mapping[str, Any], now: datetime) -> HookOutcome:
    kind = document.get("event")
    if not isinstance(kind, str):
        raise ValidationError("event: missing")
    if kind not in ZOOM_REGISTRATIONS:
        return HookOutcome(ignored=f"Zoom event {_shown(kind)} is not a registration")
    webinar = _object(_object(document, "payload"), "object", "payload.")
    webinar_id = webinar.get("id")
    # A number in Zoom's JSON, a string in some of its payloads; bool is an int too, and never an id.
    if isinstance(webinar_id, int) and not isinstance(webinar_id, bool):
        webinar_id = str(webinar_id)
    if not isinstance(webinar_id, str) or not (webinar_id.isascii() and webinar_id.isdigit()) or len(webinar_id) > 20:
        raise ValidationError("payload.object.id: the webinar's number is missing")
    registrant = _object(webinar, "registrant", "payload.object.")
    # The rule of the registrants import: approved (or no status) stands; pending, denied... do not.
    status = registrant.get("status", "")
    pending = not isinstance(status, str) or registration_status(status) is not None
    if kind == "webinar.registration_created" and pending:
        return HookOutcome(ignored=f"registration status {_shown(status)}: recorded once approved")
    email = _email(registrant.get("email"), "payload.object.registrant.email")
    registered_at = _zoom_time(document.get("event_ts"), now)
    with db.read() as conn:
        events = [e for e in event_store.all_events(conn) if has_webinar(e, webinar_id)]
    if not events:
        return HookOutcome(ignored=f"no event has Zoom webinar {webinar_id} in its join_url or registration_url")
    return _record(db, events, [Registrant(email, registered_at)], now)


def _generic(db: Database, document: Mapping[str, Any], now: datetime) -> HookOutcome:
    ref = document.get("event")
    if not isinstance(ref, str) or not ref:
        raise ValidationError("event: the event's slug is missing")
    if "registrants" in document:
        if "email" in document:
            raise ValidationError("give either email or registrants, not both")
        items = document["registrants"]
        if not isinstance(items, list):
            raise ValidationError("registrants: must be a list of objects")
        fields = [f"registrants[{i}]." for i in range(len(items))]
    else:
        items, fields = [document], [""]
    registrants = []
    for item, field in zip(items, fields, strict=True):
        if not isinstance(item, dict):
            raise ValidationError(f"{field.removesuffix('.')}: must be an object")
        email = _email(item.get("email"), f"{field}email")
        registrants.append(Registrant(email, _iso_time(item.get("registered_at"), f"{field}registered_at", now)))
    with db.read() as conn:
        event = event_store.find(conn, ref)
    if event is None:
        raise NotFoundError(f"event: no event {_shown(ref)}")
    return _record(db, [event], registrants, now)


def _record(db: Database, events: Sequence[Event], registrants: Sequence[Registrant], now: datetime) -> HookOutcome:
    added = known = 0
    not_contacts: list[Registrant] = []
    for event in events:
        recorded = record_registrants(db, event, registrants, RegistrationSource.WEBHOOK, now)
        added, known = added + recorded.added, known + recorded.known
        # Contacts are the same whatever the event: those who are not are the same for each.
        not_contacts = recorded.not_contacts
    return HookOutcome(
        events=tuple(e.slug for e in events),
        added=added,
        known=known,
        not_contacts=tuple(dict.fromkeys(r.email for r in not_contacts)),
    )


def _object(document: Mapping[str, Any], key: str, prefix: str = "") -> Mapping[str, Any]:
    value = document.get(key)
    if not isinstance(value, dict):
        raise ValidationError(f"{prefix}{key}: must be an object")
    return value


def _email(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{field}: missing")
    if len(value) > _LONGEST_ADDRESS:
        raise ValidationError(f"{field}: longer than any address ({_shown(value)})")
    try:
        return normalise_email(value)
    except FieldError as exc:
        raise ValidationError(f"{field}: {exc.reason}") from None


def _zoom_time(value: Any, now: datetime) -> datetime:
    """``event_ts``: milliseconds since the epoch; now when absent."""
    if value is None:
        return now
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            moment = datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, ValueError, OSError):
            pass
        else:
            # As an ISO time's: a year 9999 stored made every report of the event fail (its local hours overflow).
            if (why := out_of_years(moment)) is not None:
                raise ValidationError(f"event_ts: {value} ({moment.date().isoformat()}) {why}")
            return moment
    raise ValidationError(f"event_ts: must be a time in milliseconds since 1970, not {_shown(value)}")


def _iso_time(value: Any, field: str, now: datetime) -> datetime:
    """An ISO 8601 time with its UTC offset (``2030-06-01T09:30:00+02:00``, ``…Z``), in UTC; now when absent."""
    if value is None:
        return now
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValidationError(
            f"{field}: must be an ISO 8601 time such as 2030-06-01T09:30:00+02:00, not {_shown(value)}"
        )
    if parsed.tzinfo is None:
        raise ValidationError(f"{field}: {_shown(value)} needs its UTC offset (+02:00, Z)")
    if (why := out_of_years(parsed)) is not None:  # near a datetime's ends the conversion overflows
        raise ValidationError(f"{field}: {_shown(value)} {why}")
    return parsed.astimezone(UTC)


def _shown(value: Any) -> str:
    """A value from the body as quoted in a one-line reply: its repr (controls escaped), cut short."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
