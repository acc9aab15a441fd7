"""Validation of the cells of a webinar platform's registrant export: the registration time and the status.

Pure functions; the zone a time without offset is read in is passed in (the platform writes the account's
local time).

* :func:`parse_registration_time` reads the spellings Zoom and Webex write: ``2030-06-10 09:15:22`` (ISO, with
  ``T``, an offset or ``Z`` too), ``Jun 10, 2030 09:15:22``, ``10 Jun 2030 09:15``, ``06/10/2030 9:15 AM``
  (month first, as both write dates in English), seconds and AM/PM optional; a date alone is midnight. English
  month names are matched by this module, never by the process's locale. Anything else is a
  :class:`FieldError` naming the value.
* :func:`registration_status` says whether a status cell lets the registration stand: ``approved`` (Zoom),
  ``registered`` and an empty cell do; any other (``pending``, ``denied``, ``rejected``, ``cancelled`` ...)
  does not, and is returned lower-case for the report.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from campaign.rules.contact_fields import FieldError
from campaign.rules.timing import out_of_years

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        1,
    )
    for name in names
}
_TIME = r"(?:,? (?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?(?: ?(?P<half>[ap])\.?m\.?)?)?"
_FORMATS = tuple(
    re.compile(date + _TIME)
    for date in (
        r"(?P<month>[a-z]{3,9})\.? (?P<day>\d{1,2}),? (?P<year>\d{4})",  # Jun 10, 2030
        r"(?P<day>\d{1,2})[ -](?P<month>[a-z]{3,9})\.?[ -](?P<year>\d{4})",  # 10 Jun 2030, 10-Jun-2030
        r"(?P<month>\d{1,2})/(?P<day>\d{1,2})/(?P<year>\d{4})",  # 06/10/2030
    )
)
_APPROVED = frozenset(("", "approved", "registered"))


def parse_registration_time(raw: str, zone: str) -> datetime:
    """The UTC instant a registration time names, read in ``zone`` when it has no offset; see the module doc."""
    return parse_platform_time(raw, zone, "registration time")


PLATFORM_CLOCK_SLACK = timedelta(minutes=10)
"""How far after the import a time in a platform's export may be (the two clocks differ a little) before it is
taken for a wrong time zone (``--timezone``) and refused."""


def not_after_import(instant: datetime, now: datetime, raw: str, zone: str, what: str) -> datetime:
    """``instant``, or :class:`FieldError` when it is later than the import at ``now`` (beyond
    :data:`PLATFORM_CLOCK_SLACK`): nobody registered, or joined, in the future; the export's times were read in
    the wrong zone. Refused, not recorded: a registration's first time stands, and a re-import with the right
    ``--timezone`` could not correct it afterwards."""
    if instant > now + PLATFORM_CLOCK_SLACK:
        raise FieldError(
            what,
            f"{raw.strip()!r} (read in {zone}) is after this import, {now:%Y-%m-%d %H:%M} UTC: is the export's time "
            "zone right? (--timezone)",
        )
    return instant


def parse_platform_time(raw: str, zone: str, what: str) -> datetime:
    """The UTC instant a time in a platform's export names (as :func:`parse_registration_time` reads them: a
    join time too), read in ``zone`` when it has no offset; a :class:`FieldError` names it ``what``."""
    text = " ".join(raw.split())
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = _english(text.lower(), raw, what)
    if (why := out_of_years(value)) is not None:
        # Near the ends of what a datetime holds, the conversion to UTC overflows: the whole import stopped.
        raise FieldError(what, f"{raw.strip()!r} {why}")
    if value.tzinfo is None:
        # The platform writes wall-clock times; in a DST change's repeated hour the first is taken: the time is
        # for the record, and an hour either way misleads nobody.
        value = value.replace(tzinfo=ZoneInfo(zone))
    return value.astimezone(UTC)


def _english(text: str, raw: str, what: str) -> datetime:
    for pattern in _FORMATS:
        if (match := pattern.fullmatch(text)) is not None:
            break
    else:
        raise FieldError(
            what,
            f"{raw.strip()!r} is not a date and time like 2030-06-10 09:15:22 or Jun 10, 2030 09:15",
        )
    parts = match.groupdict()
    month = parts["month"]
    # 0 for a word that is no month, 24 for an hour AM/PM cannot name: datetime refuses both below.
    month_number = int(month) if month.isdigit() else _MONTHS.get(month, 0)
    hour = int(parts["hour"] or 0)
    if (half := parts["half"]) is not None:
        hour = hour % 12 + (12 if half == "p" else 0) if 1 <= hour <= 12 else 24
    try:
        return datetime(
            int(parts["year"]),
            month_number,
            int(parts["day"]),
            hour,
            int(parts["minute"] or 0),
            int(parts["second"] or 0),
        )
    except ValueError:
        # Day first (13/10/2030) is the likely mistake: say which order is read.
        order = " (dates with slashes are month/day/year)" if "/" in text else ""
        raise FieldError(what, f"{raw.strip()!r} is not a real date and time{order}") from None


def registration_status(raw: str) -> str | None:
    """None when the status lets the registration stand, else the status (lower-case); see the module doc."""
    status = " ".join(raw.split()).lower()
    if status in _APPROVED:
        return None
    return "cancelled" if status == "canceled" else status
