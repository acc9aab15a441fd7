"""Validation of the cells of a webinar platform's attendee report: attended, join time, minutes, role.

Pure functions; the zone a join time without offset is read in is passed in (the platform writes the account's
local time).

* :func:`attended`: ``Yes`` (Zoom), ``true``, ``1``, ``y`` and an empty cell (a list of attendees) say the person
  attended; ``No``, ``false``, ``0``, ``n`` that they did not (Zoom lists registrants who never joined); anything
  else is a :class:`FieldError`.
* :func:`parse_join_time` reads the spellings :func:`campaign.rules.registrant_fields.parse_platform_time` does;
  Zoom's ``--`` (no join) is no time.
* :func:`parse_minutes`: whole or decimal minutes (``65``, ``65.5``, ``65 min``), or a duration ``h:mm:ss`` /
  ``mm:ss`` (Webex), rounded to the nearest minute; ``--`` is none; anything else (a negative number, a word) is
  a :class:`FieldError`.
* :func:`staff_role`: the role cell of a host, co-host, alternative host, panelist, presenter or interpreter,
  lower-case: they run the webinar and are no invitees; None for an attendee (or no role).
"""

from __future__ import annotations

import re
from datetime import datetime

from campaign.rules.contact_fields import FieldError
from campaign.rules.registrant_fields import parse_platform_time

_YES = frozenset(("", "yes", "y", "true", "1", "attended"))
_NO = frozenset(("no", "n", "false", "0", "absent", "did not attend"))
_NONE = frozenset(("", "-", "--", "n/a"))
_STAFF = frozenset(
    (
        "host",
        "co-host",
        "cohost",
        "alternative host",
        "alternate host",
        "panelist",
        "panellist",
        "presenter",
        "interpreter",
        "organizer",
        "organiser",
    )
)
_MINUTES = re.compile(r"(?P<number>\d+(?:[.,]\d+)?)\s*(?:m|min|mins|minute|minutes)?\.?")
_CLOCK = re.compile(r"(?:(?P<hours>\d+):)?(?P<minutes>\d{1,2}):(?P<seconds>\d{2})")


def attended(raw: str) -> bool:
    """Whether the ``Attended`` cell says the person attended; see the module doc."""
    value = " ".join(raw.split()).lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise FieldError("attended", f"{raw.strip()!r} is neither Yes nor No")


def parse_join_time(raw: str, zone: str) -> datetime | None:
    """The UTC instant a join time names (read in ``zone`` when it has no offset), None for ``--``."""
    if raw.strip().lower() in _NONE:
        return None
    return parse_platform_time(raw, zone, "join time")


def parse_minutes(raw: str) -> int | None:
    """Minutes in session, rounded; None for ``--``; see the module doc."""
    value = " ".join(raw.split()).lower()
    if value in _NONE:
        return None
    if (clock := _CLOCK.fullmatch(value)) is not None:
        seconds = int(clock["hours"] or 0) * 3600 + int(clock["minutes"]) * 60 + int(clock["seconds"])
        return (seconds + 30) // 60
    if (number := _MINUTES.fullmatch(value)) is not None:
        return int(float(number["number"].replace(",", ".")) + 0.5)  # half up, as the clock form
    raise FieldError("minutes", f"{raw.strip()!r} is not a number of minutes like 45 or a duration like 0:45:00")


def staff_role(raw: str) -> str | None:
    """The role, lower-case, when it is one of those who run the webinar; None otherwise."""
    role = " ".join(raw.replace("_", " ").split()).lower()
    return role if role in _STAFF else None
