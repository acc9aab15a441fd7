"""Validation of an event description (as read from an event TOML file).

:func:`parse_event_document` turns a mapping into the canonical values of an event, or raises
:class:`ValidationError` naming the source and the field. Wall-clock times are interpreted in the
organiser's IANA zone; a time that does not exist (skipped by a DST change) or exists twice (repeated by
one) is refused rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from campaign.exceptions import ValidationError
from campaign.rules import paths
from campaign.rules.contact_fields import FieldError, clean_text, normalise_email, parse_locale, parse_timezone
from campaign.rules.timing import out_of_years
from campaign.rules.urls import parse_http_url

_KEYS = {
    "slug", "title", "description", "start", "end", "timezone", "registration_url", "join_url", "language",
    "organiser", "speakers",
}  # fmt: skip
_ORGANISER_KEYS = ("name", "email")
_SPEAKER_KEYS = ("name", "role")
MAX_SLUG_LENGTH = 100
"""The longest event slug, in characters (ASCII, so bytes too)."""
MAX_TITLE_LENGTH = 500
"""The longest event title, in characters (the database's column)."""
MAX_NAME_LENGTH = 300
"""The longest organiser's name, in characters (the database's column)."""


def parse_event_document(doc: Mapping[str, Any], source: str, default_slug: str | None = None) -> dict[str, Any]:
    """Validate an event document; returns the values of an events row (without id and timestamps)."""
    try:
        return _parse(doc, default_slug)
    except FieldError as exc:
        raise ValidationError(f"{source}: {exc.field}: {exc.reason}") from None


def parse_event_fields(doc: Mapping[str, Any], default_slug: str | None = None) -> dict[str, Any]:
    """As :func:`parse_event_document`, but raising the :class:`FieldError` itself: a form shows its reason beside
    the field it names (``start``, ``registration_url``, ``speakers[2].name``, ``organiser.email``...)."""
    return _parse(doc, default_slug)


def _parse(doc: Mapping[str, Any], default_slug: str | None) -> dict[str, Any]:
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        raise FieldError(unknown[0], f"unknown key (known: {', '.join(sorted(_KEYS))})")
    # Slugs name URLs (/events/<slug>.ics): the URL-safe form of paths.slug. One given by hand must already be in
    # that form, so the URL is what its author wrote; one made from the file name is that name's slug.
    given = _text(doc, "slug", required=False)
    slug = paths.slug(given or default_slug or "", max_bytes=MAX_SLUG_LENGTH, url_safe=True)
    if given is not None and given != slug:
        like = f" (like {slug!r})" if slug else ""
        raise FieldError(
            "slug", f"{given!r} must be lower-case letters, digits and single hyphens, at most {MAX_SLUG_LENGTH}{like}"
        )
    if not slug:
        raise FieldError("slug", f"the file name {default_slug or ''!r} has no letter or digit to make one: set slug")
    zone = parse_timezone(_text(doc, "timezone", required=True) or "")
    starts_at = local_to_utc(doc.get("start"), zone, "start")
    ends_at = local_to_utc(doc.get("end"), zone, "end")
    if ends_at <= starts_at:
        raise FieldError("end", "must be after start")
    organiser = _table(doc.get("organiser", {}), "organiser", _ORGANISER_KEYS)
    organiser_email = _text(organiser, "email", required=False, where="organiser.")
    return {
        "slug": slug,
        "title": _limited(_text(doc, "title", required=True), "title", MAX_TITLE_LENGTH),
        "description": _description(doc.get("description", "")),
        "starts_at": starts_at,
        "ends_at": ends_at,
        "timezone": zone,
        "registration_url": _url(doc, "registration_url"),
        "join_url": _url(doc, "join_url"),
        "organiser_name": _limited(
            _text(organiser, "name", required=False, where="organiser."), "organiser.name", MAX_NAME_LENGTH
        ),
        "organiser_email": _email(organiser_email, "organiser.email") if organiser_email else None,
        "language": _language(_text(doc, "language", required=False) or "en"),
        "speakers": _speakers(doc.get("speakers", [])),
    }


def local_to_utc(value: Any, zone: str, field: str) -> datetime:
    """Interpret a wall-clock time in ``zone`` (or an instant with an offset) and return it in UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise FieldError(field, f"{value!r} is not a date and time like 2020-06-26T13:30") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        raise FieldError(field, "needs a time of day, not only a date")
    if not isinstance(value, datetime):
        raise FieldError(field, "is required (a date and time like 2020-06-26T13:30)")
    if (why := out_of_years(value)) is not None:
        # Near the ends of what a datetime holds, a conversion to UTC, or a reminder's offset, overflows.
        raise FieldError(field, f"{value.date().isoformat()} {why}")
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    tz = ZoneInfo(zone)
    first, second = value.replace(tzinfo=tz, fold=0), value.replace(tzinfo=tz, fold=1)
    # In a gap both folds differ in offset too, so test for the gap first: there, no offset round-trips.
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != value:
        raise FieldError(
            field, f"{value:%Y-%m-%d %H:%M} does not exist in {zone} (clocks go forward): give another time"
        )
    if first.utcoffset() != second.utcoffset():
        raise FieldError(field, f"{value:%Y-%m-%d %H:%M} happens twice in {zone} (clocks go back): give an offset")
    return first.astimezone(UTC)


def wall_clock(instant: datetime, zone: str) -> datetime:
    """The naive local date and time of a UTC ``instant`` in ``zone``."""
    return instant.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def move_to_date(starts_at: datetime, ends_at: datetime, zone: str, day: date) -> tuple[datetime, datetime]:
    """The same session (same wall-clock start, same length) moved to ``day`` in ``zone``; UTC results."""
    start_local = wall_clock(starts_at, zone)
    new_start = local_to_utc(datetime.combine(day, time(start_local.hour, start_local.minute)), zone, "start")
    return new_start, new_start + (ends_at - starts_at)


def _text(doc: Mapping[str, Any], key: str, *, required: bool, where: str = "") -> str | None:
    """The cleaned text of ``key`` (see :func:`clean_text`); ``where`` prefixes the key in errors."""
    value = doc.get(key)
    if value is None or value == "":
        if required:
            raise FieldError(f"{where}{key}", "is required")
        return None
    if not isinstance(value, str):
        raise FieldError(f"{where}{key}", "must be text")
    cleaned = clean_text(value)
    if required and not cleaned:  # blanks only: nothing a person could read
        raise FieldError(f"{where}{key}", "is required")
    return cleaned


def _table(value: Any, field: str, keys: tuple[str, ...]) -> Mapping[str, Any]:
    """A nested table (``[organiser]``, a ``[[speakers]]`` entry) with no key but ``keys``."""
    if not isinstance(value, Mapping):
        raise FieldError(field, f"must be a table with {' and '.join(keys)}")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise FieldError(field, f"unknown key {unknown[0]!r} (known: {', '.join(sorted(keys))})")
    return value


def _email(value: str, field: str) -> str:
    try:
        return normalise_email(value)
    except FieldError as exc:
        raise FieldError(field, exc.reason) from None


def _limited(value: str | None, field: str, most: int) -> str | None:
    """``value`` when it has at most ``most`` characters (what the database keeps), else a :class:`FieldError`."""
    if value is not None and len(value) > most:
        raise FieldError(field, f"is {len(value)} characters long: at most {most}")
    return value


def _language(value: str) -> str:
    try:
        return parse_locale(value)
    except FieldError as exc:  # the locale rule names its field "locale": here it is the event's language
        raise FieldError("language", exc.reason) from None


def _description(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError("description", "must be text")
    # Paragraphs are kept (blank lines); within a paragraph, text is cleaned as every other text field is
    # (line breaks and controls become single spaces, bidirectional and other format characters go).
    paragraphs = [clean_text(p) for p in re.split(r"\n\s*\n", value.strip())]
    return "\n\n".join(p for p in paragraphs if p)


def _url(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise FieldError(key, "must be text")
    # Not cleaned like text: a URL with a control or format character in it is refused, not repaired.
    return parse_http_url(value, key)


def _speakers(value: Any) -> list[dict[str, str | None]]:
    if not isinstance(value, list):
        raise FieldError("speakers", "must be a list of [[speakers]] tables")
    speakers: list[dict[str, str | None]] = []
    for number, item in enumerate(value, 1):
        where = f"speakers[{number}]"
        speaker = _table(item, where, _SPEAKER_KEYS)
        speakers.append(
            {
                # Limited as the organiser's name is: a speaker's name goes into every message and calendar entry.
                "name": _limited(
                    _text(speaker, "name", required=True, where=f"{where}."), f"{where}.name", MAX_NAME_LENGTH
                ),
                "role": _limited(
                    _text(speaker, "role", required=False, where=f"{where}."), f"{where}.role", MAX_NAME_LENGTH
                ),
            }
        )
    return speakers
