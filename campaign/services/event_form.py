"""An event described field by field (a web form) checked by the rules of the event file, every error kept.

Contract:

* :func:`check_event_fields` takes the mapping an event file holds (``title``, ``start``, ``timezone``,
  ``organiser = {name, email}``, ``speakers = [{name, role}]``...) and returns the event's values exactly as
  :func:`campaign.services.events.read_event_file` would (:func:`~campaign.rules.event_fields.parse_event_fields`:
  one rule for the command line and the web), or every error with the field it names (``start``,
  ``registration_url``, ``speakers[2].name``, ``organiser.email``).
* The rules stop at the first error; to find the others the faulty field is set aside (an optional one dropped, a
  required one given a value the rules accept) and the document checked again, so a person fixes a form once, not
  once per field. Setting aside never hides an error of another field; an error that depends on a field set aside
  (the end before a start that was itself wrong) may show only once that field is fixed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from campaign.rules.contact_fields import FieldError
from campaign.rules.event_fields import parse_event_fields

# Values the rules accept for a required field set aside. The start and end are instants with an offset, far
# apart, so that either is after the other field's real value whatever it is: no error of their own making.
_STAND_INS: dict[str, str] = {
    "slug": "event",
    "title": "-",
    "timezone": "UTC",
    "start": "1970-01-01T00:00+00:00",
    "end": "2998-12-31T00:00+00:00",  # within the years the rules take (1900 to 2999)
}
_SPEAKER = re.compile(r"speakers\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class EventCheck:
    """The event's values when the fields are valid (``errors`` empty), else None and each field's reason."""

    values: dict[str, Any] | None
    errors: dict[str, str] = field(default_factory=dict)


def check_event_fields(doc: Mapping[str, Any], default_slug: str | None = None) -> EventCheck:
    """Check ``doc`` (an event file's mapping) with the event rules; see the module doc."""
    work = _copy(doc)
    errors: dict[str, str] = {}
    # Each round sets one field aside, so the rounds are bounded by the fields (and speakers) there are.
    for _ in range(len(_STAND_INS) + len(work) + len(work.get("speakers") or ()) + 2):
        try:
            values = parse_event_fields(work, default_slug)
        except FieldError as exc:
            if exc.field in errors or not _set_aside(work, exc.field):
                errors.setdefault(exc.field, exc.reason)
                break
            errors[exc.field] = exc.reason
            continue
        return EventCheck(None if errors else values, errors)
    return EventCheck(None, errors)


def _copy(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A copy deep enough to set fields aside in (the organiser table and the speakers' list are copied too)."""
    work = dict(doc)
    if isinstance(organiser := work.get("organiser"), Mapping):
        work["organiser"] = dict(organiser)
    if isinstance(speakers := work.get("speakers"), list):
        work["speakers"] = list(speakers)
    return work


def _set_aside(work: dict[str, Any], name: str) -> bool:
    """Put the field ``name`` out of the way of the next check; False when it cannot be (a bug to stop at)."""
    if name in _STAND_INS:
        work[name] = _STAND_INS[name]
        return True
    if (speaker := _SPEAKER.match(name)) is not None and isinstance(work.get("speakers"), list):
        index = int(speaker.group(1)) - 1
        if 0 <= index < len(work["speakers"]):
            work["speakers"][index] = {"name": "-"}
            return True
        return False
    if name.startswith("organiser.") and isinstance(work.get("organiser"), dict):
        return work["organiser"].pop(name.removeprefix("organiser."), None) is not None
    return work.pop(name, None) is not None
