"""Every display of an event time goes through here: zoneinfo for the instant, Babel/CLDR for the words.

Contract: :func:`session_times` returns what one recipient sees, for their zone and locale: the zone's CLDR
name ("Philippine Standard Time", "hora estándar de Filipinas"), the date with its weekday, and the times,
DST-correct for the event date. Both dates are shown when the session crosses local midnight. A recipient
without a zone sees the organiser's time and UTC. Results are cached: a wave computes each (zone, locale)
once, not once per recipient.

Babel 2.18 looks zone names up by the CLDR zone id, which for renamed zones is still the old name
(Asia/Calcutta, Asia/Katmandu, Europe/Kiev...), while it canonicalises the IANA name to the new one first;
so those zones come out as "GMT+05:30" (python-babel/babel#1260). :func:`zone_name` tries the new and
every old id, so India still reads "India Standard Time".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.core import get_global
from babel.dates import format_date, format_interval, format_time, get_timezone_gmt

DEFAULT_LOCALE = "en"
_NO_INHERITANCE = "∅∅∅"
# Babel separates times with narrow and thin no-break spaces; plain text wants plain spaces.
_PLAIN = str.maketrans({"\u202f": " ", "\u2009": " ", "\u00a0": " "})


@dataclass(frozen=True, slots=True)
class SessionTimes:
    """A session as one recipient sees it."""

    zone: str
    zone_name: str
    start: datetime
    end: datetime
    when: str
    line: str
    is_fallback: bool = False
    utc_line: str = ""
    """For a recipient without a zone (:attr:`is_fallback`), the session in UTC ("Coordinated Universal Time:
    ..."), which :attr:`line` ends with in brackets; empty otherwise."""

    @property
    def line_plain(self) -> str:
        """:attr:`line` with plain spaces, for the text part."""
        return plain(self.line)

    @property
    def utc_line_plain(self) -> str:
        """:attr:`utc_line` with plain spaces, for the text part."""
        return plain(self.utc_line)


def plain(text: str) -> str:
    """Replace the no-break and thin spaces Babel emits with plain spaces."""
    return text.translate(_PLAIN)


@cache
def locale_of(tag: str | None) -> Locale:
    """A Babel locale for a BCP 47 tag (``es-CO``); the default for None or an unknown tag."""
    if tag:
        try:
            return Locale.parse(tag.replace("-", "_"))
        except (UnknownLocaleError, ValueError, TypeError):
            pass
    return Locale.parse(DEFAULT_LOCALE)


def wall_clock(moment: datetime, zone: str, form: str = "%Y-%m-%d %H:%M %Z") -> str:
    """``moment`` on the wall clock of ``zone`` (an IANA name) in the strftime ``form``, whose ``%Z`` is the zone's
    CLDR name then: ``2026-06-19 09:00 Central European Summer Time`` (not strftime's abbreviation: Manila's and
    the Pacific's are both "PST", India's and Israel's "IST")."""
    local = moment.astimezone(ZoneInfo(zone))
    if "%Z" in form:
        form = form.replace("%Z", zone_name(local, zone).replace("%", "%%"))
    return local.strftime(form)


def organiser_clock(moment: datetime, zone: str) -> str:
    """``moment`` as staff read a wave's times (on the organiser's clock, with its CLDR name) and in UTC beside it:
    ``2030-06-06 14:00 Central European Summer Time (12:00 UTC)``; the UTC date too when it differs; in a UTC
    organiser's zone just ``2030-06-06 12:00 UTC``."""
    utc = moment.astimezone(UTC)
    if zone == "UTC":
        return f"{utc:%Y-%m-%d %H:%M} UTC"
    local = moment.astimezone(ZoneInfo(zone))
    beside = f"{utc:%H:%M}" if utc.date() == local.date() else f"{utc:%Y-%m-%d %H:%M}"
    return f"{wall_clock(moment, zone)} ({beside} UTC)"


def language_of(tag: str) -> str:
    """The language of a BCP 47 tag: ``es`` of ``es-CO`` (and of ``es_CO``)."""
    return tag.replace("_", "-").split("-", 1)[0].lower()


@cache
def text_direction(tag: str | None) -> str:
    """``rtl`` for a language written right to left (Arabic, Hebrew, Persian, Urdu), else ``ltr``: the HTML
    ``dir`` of a message written in ``tag``."""
    return "rtl" if locale_of(tag).character_order == "right-to-left" else "ltr"


@cache
def _cldr_ids(zone: str) -> tuple[str, ...]:
    """The zone's canonical IANA name and every alias CLDR may key its names by."""
    aliases: Mapping[str, str] = get_global("zone_aliases")
    canonical = aliases.get(zone, zone)
    old = sorted(alias for alias, target in aliases.items() if target == canonical)
    return tuple(dict.fromkeys((canonical, zone, *old)))


def zone_name(instant: datetime, zone: str, locale: str | None = None) -> str:
    """The CLDR long name of ``zone`` at ``instant`` (summer or standard) in ``locale``; GMT±hh:mm only when
    CLDR has no name at all for the zone."""
    return _zone_name(instant.astimezone(ZoneInfo(zone)), zone, locale_of(locale))


@cache
def generic_zone_name(zone: str, locale: str | None = None) -> str:
    """The CLDR name of ``zone`` whatever the season ("Central European Time", "Philippine Time"), for a heading
    over times of both seasons; the standard name where CLDR has no generic one ("Coordinated Universal Time")."""
    loc = locale_of(locale)
    local = datetime(2000, 1, 15, 12, tzinfo=ZoneInfo(zone))
    return _zone_name(local, zone, loc, "generic") or _zone_name(local, zone, loc, "standard") or ""


def _zone_name(local: datetime, zone: str, loc: Locale, variant: str | None = None) -> str:
    """The zone's long name of ``variant`` (default: summer or standard at ``local``), or the location or GMT
    format; "" when a ``variant`` asked for is not in CLDR."""
    asked = variant is not None
    variant = variant or ("daylight" if local.dst() else "standard")
    ids = _cldr_ids(zone)
    for cldr_id in ids:
        name = loc.time_zones.get(cldr_id, {}).get("long", {}).get(variant)
        if name and name != _NO_INHERITANCE:
            return str(name)
    meta_zones: Mapping[str, str] = get_global("meta_zones")
    for cldr_id in ids:
        metazone = meta_zones.get(cldr_id)
        if metazone:
            name = loc.meta_zones.get(metazone, {}).get("long", {}).get(variant)
            if name and name != _NO_INHERITANCE:
                return str(name)
    if asked and variant != "standard":
        return ""
    return _location_name(ids, loc) or str(get_timezone_gmt(local, width="long", locale=loc))


def _location_name(ids: tuple[str, ...], loc: Locale) -> str | None:
    """CLDR's location format ("Türkiye Time", "Dawson Time") for a zone without a metazone name; None for
    zones of no place (Etc/GMT+5 is filed under "ZZ"), which only have the GMT format."""
    zone_territories: Mapping[str, str] = get_global("zone_territories")
    territory = next((zone_territories[i] for i in ids if i in zone_territories), None)
    if territory is None or territory == "ZZ":
        return None
    # The language's own region format: Babel's data for some regional locales (es-CO) holds the
    # summer-time variant ("hora de verano de %s") under the generic key.
    region_format = locale_of(loc.language).zone_formats["region"]
    if territory in loc.territories and len(get_global("territory_zones").get(territory, ())) == 1:
        return str(region_format % loc.territories[territory])
    city = next((loc.time_zones[i]["city"] for i in ids if "city" in loc.time_zones.get(i, {})), None)
    return str(region_format % (city or ids[0].rsplit("/", 1)[-1].replace("_", " ")))


def _hour_skeleton(loc: Locale) -> str:
    """'hm' where the locale writes 12-hour times (en-US, es-CO), else 'Hm'. Read from its short time pattern
    without the pattern's quoted text: fr-CA's "HH 'h' mm" is 24-hour (its quoted "h" made it "9 h 00 a.m.")."""
    pattern = _QUOTED.sub("", loc.time_formats["short"].pattern)
    return "hm" if "h" in pattern or "K" in pattern else "Hm"


_QUOTED = re.compile(r"'[^']*'")


def _cldr_join(pattern: str, first: str, second: str) -> str:
    """A CLDR pattern of two parts (``{0}`` and ``{1}``) filled: the locale's way to join a date and its time
    ("{1}, {0}"; Japanese "{1} {0}", Arabic "{1}، {0}") or two instants ("{0} – {1}", Japanese "{0}～{1}"). A
    quoted literal is unquoted ("{1} 'at' {0}")."""
    text = _QUOTED.sub(lambda found: found.group(0)[1:-1] or "'", pattern)
    return text.replace("{0}", "\x00").replace("{1}", second).replace("\x00", first)


@cache
def session_times(starts_at: datetime, ends_at: datetime, zone: str | None, organiser_zone: str,
                  locale: str | None = None) -> SessionTimes:  # fmt: skip
    """What a recipient in ``zone`` (None: unknown) with ``locale`` sees of a session; see the module doc."""
    loc = locale_of(locale)
    shown_zone = zone or organiser_zone
    tz = ZoneInfo(shown_zone)
    start, end = starts_at.astimezone(tz), ends_at.astimezone(tz)
    name = _zone_name(start, shown_zone, loc)
    when = _when(start, end, tz, loc)
    line = utc_line = f"{name}: {when}"
    if zone is None:
        utc = ZoneInfo("UTC")
        start_utc = starts_at.astimezone(utc)
        utc_line = f"{_zone_name(start_utc, 'UTC', loc)}: {_when(start_utc, ends_at.astimezone(utc), utc, loc)}"
        line += f" ({utc_line})"
    return SessionTimes(
        shown_zone, name, start, end, when, line, is_fallback=zone is None, utc_line=utc_line if zone is None else ""
    )


def _when(start: datetime, end: datetime, tz: ZoneInfo, loc: Locale) -> str:
    """ "Friday, June 26, 2020, 7:30 – 9:00 PM"; both dates when the session crosses local midnight. The date and
    its times are joined as the locale joins them (its date-time pattern: Japanese "2027年6月25日金曜日 20:30～22:00",
    not an English comma), and so are the two ends of a session across midnight (its interval pattern)."""
    date_time = loc.datetime_formats["full"]
    if start.date() == end.date():
        try:
            times = format_interval(start, end, skeleton=_hour_skeleton(loc), tzinfo=tz, locale=loc)
        except NotImplementedError:  # Babel cannot format some locales' skeletons (zh-Hant's day periods, "B")
            short = [format_time(at, "short", tzinfo=tz, locale=loc) for at in (start, end)]
            times = _cldr_join(loc.interval_formats.get(None) or "{0} – {1}", *short)
        return _cldr_join(date_time, times, format_date(start, "full", locale=loc))
    ends = [
        _cldr_join(date_time, format_time(at, "short", tzinfo=tz, locale=loc), format_date(at, "full", locale=loc))
        for at in (start, end)
    ]
    return _cldr_join(loc.interval_formats.get(None) or "{0} – {1}", *ends)
