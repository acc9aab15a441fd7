"""Local times: what each recipient reads for the sample webinar (Friday 26 June 2020, 13:30-15:00 in Geneva,
11:30-13:00 UTC), in their zone and language, and CLDR zone names for every zone there is.

Golden lines are compared through ``line_plain`` (Babel's thin and narrow no-break spaces made plain) so that
they stay readable; a separate test checks ``line`` only differs from it in those spaces.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from babel import Locale
from babel.core import get_global
from babel.dates import get_timezone_gmt, get_timezone_name

from campaign.render.localtime import SessionTimes, plain, session_times, zone_name

START = datetime(2020, 6, 26, 11, 30, tzinfo=UTC)
END = datetime(2020, 6, 26, 13, 0, tzinfo=UTC)
ORGANISER = "Europe/Zurich"
SPECIAL_SPACES = ("\u202f", "\u2009", "\u00a0")
GMT_FORMAT = re.compile(r"(GMT|UTC)\s*[+\-−]\s*\d")


def times(zone: str | None, locale: str | None = "en", start: datetime = START, end: datetime = END) -> SessionTimes:
    return session_times(start, end, zone, ORGANISER, locale)


# --- golden lines, English -----------------------------------------------------------------------------------

GOLDEN_EN = {
    "Asia/Manila": "Philippine Standard Time: Friday, June 26, 2020, 7:30 – 9:00 PM",
    "Europe/Lisbon": "Western European Summer Time: Friday, June 26, 2020, 12:30 – 2:00 PM",
    "America/Bogota": "Colombia Standard Time: Friday, June 26, 2020, 6:30 – 8:00 AM",
    "Europe/London": "British Summer Time: Friday, June 26, 2020, 12:30 – 2:00 PM",
    "Africa/Cairo": "Eastern European Standard Time: Friday, June 26, 2020, 1:30 – 3:00 PM",
    "Asia/Kuala_Lumpur": "Malaysia Time: Friday, June 26, 2020, 7:30 – 9:00 PM",
    "Asia/Kolkata": "India Standard Time: Friday, June 26, 2020, 5:00 – 6:30 PM",
    "Asia/Calcutta": "India Standard Time: Friday, June 26, 2020, 5:00 – 6:30 PM",
    "Asia/Kathmandu": "Nepal Time: Friday, June 26, 2020, 5:15 – 6:45 PM",
    "Europe/Kyiv": "Eastern European Summer Time: Friday, June 26, 2020, 2:30 – 4:00 PM",
    "Pacific/Kiritimati": "Line Islands Time: Saturday, June 27, 2020, 1:30 – 3:00 AM",
    "America/St_Johns": "Newfoundland Daylight Time: Friday, June 26, 2020, 9:00 – 10:30 AM",
    "Australia/Adelaide": "Australian Central Standard Time: Friday, June 26, 2020, 9:00 – 10:30 PM",
    "Pacific/Chatham": "Chatham Standard Time: Saturday, June 27, 2020, 12:15 – 1:45 AM",
    "Europe/Zurich": "Central European Summer Time: Friday, June 26, 2020, 1:30 – 3:00 PM",
}


@pytest.mark.parametrize(("zone", "expected"), GOLDEN_EN.items())
def test_golden_line_in_english(zone: str, expected: str) -> None:
    t = times(zone)
    assert t.line_plain == expected
    assert t.zone == zone
    assert t.is_fallback is False
    assert t.line == f"{t.zone_name}: {t.when}"
    assert t.line_plain.startswith(t.zone_name + ": ")


# Names CLDR itself changed between the releases pyproject.toml allows: the rule, not one release's wording.
# CLDR 47 (Babel 2.18) says "Hawaii-Aleutian Standard Time", CLDR 48 (Babel 2.19) "Hawaii Time".
VARYING_EN = {"Pacific/Honolulu": ("Hawaii", "Friday, June 26, 2020, 1:30 – 3:00 AM")}


@pytest.mark.parametrize(("zone", "expected"), VARYING_EN.items())
def test_line_in_english_uses_the_installed_cldr_long_name(zone: str, expected: tuple[str, str]) -> None:
    """The zone reads as CLDR's long name for that instant (whatever the installed CLDR calls it), never as a
    raw GMT offset, and the date and times are exact."""
    place, when = expected
    t = times(zone)
    local = START.astimezone(ZoneInfo(zone))
    cldr_name = get_timezone_name(local, width="long", locale="en")
    assert t.line_plain == f"{cldr_name}: {when}"
    assert place in t.zone_name
    assert not GMT_FORMAT.search(t.zone_name)


@pytest.mark.parametrize(
    ("zone", "wall_start", "wall_end", "offset"),
    [
        ("Asia/Manila", datetime(2020, 6, 26, 19, 30), datetime(2020, 6, 26, 21, 0), timedelta(hours=8)),
        (
            "Asia/Kathmandu",
            datetime(2020, 6, 26, 17, 15),
            datetime(2020, 6, 26, 18, 45),
            timedelta(hours=5, minutes=45),
        ),
        ("Pacific/Kiritimati", datetime(2020, 6, 27, 1, 30), datetime(2020, 6, 27, 3, 0), timedelta(hours=14)),
        (
            "America/St_Johns",
            datetime(2020, 6, 26, 9, 0),
            datetime(2020, 6, 26, 10, 30),
            -timedelta(hours=2, minutes=30),
        ),
        (
            "Pacific/Chatham",
            datetime(2020, 6, 27, 0, 15),
            datetime(2020, 6, 27, 1, 45),
            timedelta(hours=12, minutes=45),
        ),
        ("Pacific/Honolulu", datetime(2020, 6, 26, 1, 30), datetime(2020, 6, 26, 3, 0), -timedelta(hours=10)),
    ],
)
def test_start_and_end_are_the_local_wall_clock(
    zone: str, wall_start: datetime, wall_end: datetime, offset: timedelta
) -> None:
    t = times(zone)
    assert t.start.replace(tzinfo=None) == wall_start
    assert t.end.replace(tzinfo=None) == wall_end
    assert t.start.utcoffset() == offset
    # Still the same instants.
    assert t.start == START
    assert t.end == END


def test_kiritimati_is_a_day_ahead_of_the_organiser() -> None:
    local, organiser = times("Pacific/Kiritimati"), times(ORGANISER)
    assert "Saturday, June 27" in local.when
    assert "Friday" not in local.when
    assert "Friday, June 26" in organiser.when
    assert local.start.date() != organiser.start.date()


def test_india_never_reads_as_a_gmt_offset() -> None:
    """Babel 2.18 canonicalises Asia/Calcutta to Asia/Kolkata but keys the name by the old id
    (python-babel/babel#1260), so a naive lookup gives "GMT+05:30"."""
    for zone in ("Asia/Kolkata", "Asia/Calcutta"):
        name = zone_name(START, zone, "en")
        assert name == "India Standard Time"
        assert "GMT" not in times(zone).line


def test_zurich_standard_time_in_december() -> None:
    start = datetime(2020, 12, 10, 12, 30, tzinfo=UTC)  # 13:30 in Geneva, on CET
    end = datetime(2020, 12, 10, 14, 0, tzinfo=UTC)
    t = times(ORGANISER, start=start, end=end)
    assert t.zone_name == "Central European Standard Time"
    assert t.line_plain == "Central European Standard Time: Thursday, December 10, 2020, 1:30 – 3:00 PM"
    assert zone_name(start, ORGANISER, "en") == "Central European Standard Time"
    assert zone_name(START, ORGANISER, "en") == "Central European Summer Time"


def test_session_crossing_local_midnight_shows_both_dates() -> None:
    start = datetime(2020, 6, 26, 9, 0, tzinfo=UTC)  # 23:00 on Friday in Kiritimati (UTC+14)
    end = datetime(2020, 6, 26, 11, 0, tzinfo=UTC)  # 01:00 on Saturday
    t = times("Pacific/Kiritimati", start=start, end=end)
    assert t.line_plain == "Line Islands Time: Friday, June 26, 2020, 11:00 PM – Saturday, June 27, 2020, 1:00 AM"
    # In the organiser's zone the same session stays on one day and shows it once.
    organiser = times(ORGANISER, start=start, end=end)
    assert organiser.when.count("2020") == 1


def test_session_crossing_midnight_in_another_locale() -> None:
    start = datetime(2020, 6, 26, 21, 0, tzinfo=UTC)  # 23:00-01:00 in Geneva
    end = datetime(2020, 6, 26, 23, 0, tzinfo=UTC)
    t = times(ORGANISER, "fr-CH", start=start, end=end)
    assert "vendredi" in t.when
    assert "samedi" in t.when
    assert "26 juin 2020" in t.when
    assert "27 juin 2020" in t.when
    assert "23:00" in t.when
    assert "01:00" in t.when


# --- other languages -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "locale", "fragments"),
    [
        ("America/Bogota", "es-CO", ("hora estándar de Colombia", "viernes", "26 de junio de 2020", "6:30", "8:00")),
        ("Asia/Manila", "es-CO", ("hora estándar de Filipinas", "viernes", "junio", "7:30", "9:00")),
        (
            "Europe/Lisbon",
            "pt-PT",
            ("Hora de verão da Europa Ocidental", "sexta-feira", "26 de junho de 2020", "12:30"),
        ),
        ("Europe/Lisbon", "pt-PT", ("14:00",)),
        ("Europe/Zurich", "fr-CH", ("heure d’été d’Europe centrale", "vendredi", "26 juin 2020", "13:30", "15:00")),
        ("Asia/Manila", "fr-CH", ("heure normale des Philippines", "19:30", "21:00")),
        ("Africa/Cairo", "ar-EG", ("توقيت شرق أوروبا", "الجمعة", "يونيو", "2020")),
        ("Europe/Zurich", "ar-EG", ("توقيت وسط أوروبا الصيفي", "الجمعة")),
    ],
)
def test_localised_zone_names_and_dates(zone: str, locale: str, fragments: tuple[str, ...]) -> None:
    t = times(zone, locale)
    for fragment in fragments:
        assert fragment in t.line_plain
    assert "Time" not in t.zone_name
    assert "Friday" not in t.line
    assert not GMT_FORMAT.search(t.line)


@pytest.mark.parametrize(
    ("zone", "locale", "when"),
    [
        # A recipient's review: the date and its times were always joined by an English comma.
        ("Asia/Tokyo", "ja", "2020年6月26日金曜日 20時30分～22時00分"),
        ("Asia/Shanghai", "zh", "2020年6月26日星期五 19:30–21:00"),
        ("Africa/Cairo", "ar-EG", "الجمعة، 26 يونيو 2020، 1:30–3:00 م"),
        ("America/Sao_Paulo", "pt-BR", "sexta-feira, 26 de junho de 2020 08:30 – 10:00"),
        ("America/New_York", "en", "Friday, June 26, 2020, 7:30 – 9:00 AM"),
        # fr-CA writes 24-hour times ("HH 'h' mm"): its quoted "h" made them "7 h 30 – 9 h 00 a.m.".
        ("America/Toronto", "fr-CA", "vendredi 26 juin 2020, 7 h 30 – 9 h 00"),
    ],
)
def test_the_date_and_its_times_are_joined_as_the_language_joins_them(zone: str, locale: str, when: str) -> None:
    assert plain(times(zone, locale).when) == when


@pytest.mark.parametrize("locale", ["zh-Hant", "zh-Hant-TW", "zh-Hant-HK", "zh-Hant-MO"])
def test_traditional_chinese_reads_its_times_though_babel_cannot_format_their_interval(locale: str) -> None:
    # A review: Babel's format_interval raises NotImplementedError for these locales' day periods ("B"); the
    # session was a template error for every zh-Hant contact.
    t = times("Asia/Taipei", locale)
    assert "2020年6月26日" in t.when
    assert "7:30" in t.when
    assert "9:00" in t.when


def test_a_session_across_midnight_joins_its_ends_as_the_language_does() -> None:
    start = datetime(2020, 6, 26, 14, 0, tzinfo=UTC)  # 23:00 in Tokyo, to 01:00 the next day
    t = times("Asia/Tokyo", "ja", start=start, end=start + timedelta(hours=2))
    assert plain(t.when) == "2020年6月26日金曜日 23:00～2020年6月27日土曜日 1:00"


def test_zone_name_follows_the_locale() -> None:
    names = {locale: zone_name(START, "Asia/Manila", locale) for locale in ("en", "es-CO", "pt-PT", "fr-CH", "ar-EG")}
    assert names["en"] == "Philippine Standard Time"
    assert len(set(names.values())) == len(names)


def test_unknown_or_missing_locale_falls_back_to_english() -> None:
    assert times("Asia/Manila", None).line_plain == GOLDEN_EN["Asia/Manila"]
    assert times("Asia/Manila", "xx-Nowhere").line_plain == GOLDEN_EN["Asia/Manila"]


# --- no zone ---------------------------------------------------------------------------------------------------


def test_contact_without_zone_sees_organiser_time_and_utc() -> None:
    t = times(None)
    assert t.is_fallback is True
    assert t.zone == ORGANISER
    assert t.zone_name == "Central European Summer Time"
    assert t.line_plain == (
        "Central European Summer Time: Friday, June 26, 2020, 1:30 – 3:00 PM"
        " (Coordinated Universal Time: Friday, June 26, 2020, 11:30 AM – 1:00 PM)"
    )
    assert t.start == START
    assert t.start.utcoffset() == timedelta(hours=2)


def test_contact_without_zone_in_spanish() -> None:
    t = times(None, "es-CO")
    assert t.is_fallback is True
    assert "hora de verano de Europa central" in t.line_plain
    assert "1:30" in t.line_plain
    assert "11:30" in t.line_plain
    assert "junio" in t.line_plain


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        (
            None,
            "Central European Summer Time: Friday, July 2, 2021, 1:30 – 3:00 PM"
            " (Coordinated Universal Time: Friday, July 2, 2021, 11:30 AM – 1:00 PM)",
        ),
        ("Asia/Manila", "Philippine Standard Time: Friday, July 2, 2021, 7:30 – 9:00 PM"),
        ("Pacific/Chatham", "Chatham Standard Time: Saturday, July 3, 2021, 12:15 – 1:45 AM"),
    ],
)
def test_the_same_instants_given_in_another_offset_read_the_same(zone: str | None, expected: str) -> None:
    """The line depends on the instants, not on the offset they happen to carry (here, Geneva's summer time).

    Instants used by no other test, and the cache cleared: session_times caches by argument, and an aware
    datetime compares (and hashes) equal to the same instant in UTC, so a cached UTC result would hide this.
    """
    session_times.cache_clear()
    geneva = ZoneInfo(ORGANISER)
    start = datetime(2021, 7, 2, 11, 30, tzinfo=UTC).astimezone(geneva)
    end = datetime(2021, 7, 2, 13, 0, tzinfo=UTC).astimezone(geneva)
    assert times(zone, start=start, end=end).line_plain == expected


# --- plain text ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["en", "es-CO", "pt-PT", "fr-CH", "ar-EG", "de", "ja"])
@pytest.mark.parametrize("zone", [None, "Asia/Manila", "Europe/Zurich", "Pacific/Kiritimati", "America/St_Johns"])
def test_line_plain_has_only_plain_spaces(zone: str | None, locale: str) -> None:
    t = times(zone, locale)
    for ch in SPECIAL_SPACES:
        assert ch not in t.line_plain
    assert t.line_plain == t.line.replace("\u202f", " ").replace("\u2009", " ").replace("\u00a0", " ")
    assert plain(t.when) in t.line_plain


def test_line_uses_babel_spaces_so_the_plain_variant_matters() -> None:
    assert any(ch in times("Asia/Manila").line for ch in SPECIAL_SPACES)


# --- daylight saving out of step between the US and Europe ---------------------------------------------------


@pytest.mark.parametrize(
    "day",
    [
        datetime(2026, 3, 16, 15, 0, tzinfo=UTC),  # New York on EDT since 8 March, London on GMT until 29 March
        datetime(2026, 3, 20, 15, 0, tzinfo=UTC),
        datetime(2026, 3, 27, 15, 0, tzinfo=UTC),
        datetime(2026, 10, 28, 15, 0, tzinfo=UTC),  # London back on GMT since 25 October, New York on EDT until 1 Nov
    ],
)
def test_offsets_when_us_and_eu_daylight_saving_differ(day: datetime) -> None:
    end = day + timedelta(hours=1)
    new_york = session_times(day, end, "America/New_York", "Europe/London", "en")
    london = session_times(day, end, "Europe/London", "Europe/London", "en")
    zurich = session_times(day, end, "Europe/Zurich", "Europe/London", "en")
    assert (new_york.start.hour, new_york.start.minute) == (11, 0)
    assert (london.start.hour, london.start.minute) == (15, 0)
    assert (zurich.start.hour, zurich.start.minute) == (16, 0)
    assert new_york.zone_name == "Eastern Daylight Time"
    assert london.zone_name == "Greenwich Mean Time"
    assert zurich.zone_name == "Central European Standard Time"
    assert "11:00 AM – 12:00 PM" in new_york.line_plain
    assert "3:00 – 4:00 PM" in london.line_plain
    assert "4:00 – 5:00 PM" in zurich.line_plain
    # Four hours apart these weeks, not the usual five.
    assert london.start.utcoffset() - new_york.start.utcoffset() == timedelta(hours=4)  # type: ignore[operator]


def test_offsets_once_both_sides_are_on_summer_time() -> None:
    day = datetime(2026, 4, 1, 15, 0, tzinfo=UTC)
    end = day + timedelta(hours=1)
    new_york = session_times(day, end, "America/New_York", "Europe/London", "en")
    london = session_times(day, end, "Europe/London", "Europe/London", "en")
    assert new_york.start.hour == 11
    assert london.start.hour == 16
    assert london.zone_name == "British Summer Time"


# --- every zone there is -------------------------------------------------------------------------------------

_ALIASES: dict[str, str] = dict(get_global("zone_aliases"))
_META_ZONES: dict[str, str] = dict(get_global("meta_zones"))
_TERRITORIES: dict[str, str] = dict(get_global("zone_territories"))
_EN = Locale("en")
ALL_ZONES = sorted(zoneinfo.available_timezones())
INSTANTS = (datetime(2020, 1, 15, 12, 0, tzinfo=UTC), datetime(2020, 7, 15, 12, 0, tzinfo=UTC))


def _all_ids(zone: str) -> set[str]:
    """The zone, its canonical CLDR id and every alias of that id (Babel 2.17-style, independent of the code)."""
    canonical = _ALIASES.get(zone, zone)
    return {zone, canonical} | {alias for alias, target in _ALIASES.items() if target in (zone, canonical)}


def cldr_has_name(zone: str) -> bool:
    """Whether CLDR has any name for ``zone`` other than the GMT format: a metazone, an explicit long name, or
    a territory (the location format "Türkiye Time"). "001" (world) and "ZZ" (unknown region) name no place."""
    ids = _all_ids(zone)
    if any(i in _META_ZONES for i in ids):
        return True
    if any(_EN.time_zones.get(i, {}).get("long") for i in ids):
        return True
    return any(_TERRITORIES.get(i) not in (None, "001", "ZZ") for i in ids)


def test_definition_of_cldr_has_name() -> None:
    assert cldr_has_name("Asia/Kolkata")
    assert cldr_has_name("Asia/Calcutta")
    assert cldr_has_name("Europe/Kyiv")
    assert cldr_has_name("Europe/Istanbul")
    assert not cldr_has_name("Etc/GMT+5")
    assert sum(map(cldr_has_name, ALL_ZONES)) > 400


def _offenders(zones: list[str], locale: str) -> list[tuple[str, str, str]]:
    offenders = []
    for zone in zones:
        if zone.startswith("Etc/") or not cldr_has_name(zone):
            continue
        for instant in INSTANTS:
            name = zone_name(instant, zone, locale)
            gmt = get_timezone_gmt(
                instant.astimezone(ZoneInfo(zone)), width="long", locale=Locale.parse(locale, sep="-")
            )
            if name == gmt or GMT_FORMAT.search(name):
                offenders.append((zone, instant.date().isoformat(), name))
    return offenders


def test_zone_name_never_raises_and_is_never_empty_for_any_zone() -> None:
    for zone in ALL_ZONES:
        for instant in INSTANTS:
            name = zone_name(instant, zone, "en")
            assert name.strip(), zone
            assert "∅" not in name, zone


def test_every_named_zone_reads_as_a_name_not_a_gmt_offset() -> None:
    assert _offenders(ALL_ZONES, "en") == []


@pytest.mark.parametrize("locale", ["es-CO", "pt-PT", "fr-CH", "ar-EG", "de"])
def test_named_zones_read_as_names_in_other_locales(locale: str) -> None:
    subset = [*ALL_ZONES[::7], "Asia/Kolkata", "Asia/Calcutta", "Europe/Kyiv", "Asia/Kathmandu", "America/Nuuk"]
    for zone in subset:
        for instant in INSTANTS:
            zone_name(instant, zone, locale)  # never raises
    assert _offenders(subset, locale) == []


@pytest.mark.parametrize("zone", ["Etc/GMT+5", "Etc/GMT-14", "Etc/GMT+12", "Etc/GMT-3"])
def test_etc_offset_zones_read_as_their_real_offset(zone: str) -> None:
    """Etc/GMT+5 is five hours *behind* UTC (POSIX signs); it has no name, so it must read "GMT-05:00" and never
    as anything that shows the inverted sign, such as "GMT+5 Time"."""
    local = INSTANTS[1].astimezone(ZoneInfo(zone))
    assert zone_name(INSTANTS[1], zone, "en") == get_timezone_gmt(local, width="long", locale="en")


def test_utc_and_gmt_zones_have_their_names() -> None:
    assert zone_name(START, "UTC", "en") == "Coordinated Universal Time"
    assert zone_name(START, "Etc/UTC", "en") == "Coordinated Universal Time"
    assert zone_name(START, "Etc/GMT", "en") == "Greenwich Mean Time"
