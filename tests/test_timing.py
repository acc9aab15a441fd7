"""Timing rules: offsets, send windows, nominal instants, default expiry, and each zone's send instant
(property-tested against a slow minute-by-minute reference, across DST changes in awkward zones)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign.exceptions import ValidationError
from campaign.models import WaveKind
from campaign.rules.timing import (
    END_OF_DAY,
    FOLLOW_UP_LIFETIME,
    MAX_OFFSET,
    SendWindow,
    default_expiry,
    format_offset,
    format_window,
    local_send_instant,
    nominal_instant,
    own_instant,
    parse_offset,
    parse_window,
)

ZONES = (
    "Asia/Manila",
    "Pacific/Kiritimati",
    "Pacific/Chatham",
    "America/St_Johns",
    "Europe/London",
    "America/New_York",
    "Australia/Lord_Howe",  # DST of 30 minutes
    "Asia/Kathmandu",
    "UTC",
    "America/Santiago",  # changes at midnight
    "Africa/Casablanca",  # changes around Ramadan, twice a year
)
WEEKDAYS = frozenset(range(5))
OFFICE = SendWindow(WEEKDAYS, time(9), time(17))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------------------
# Offsets
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-7d", timedelta(days=-7)),
        ("-1d", timedelta(days=-1)),
        ("-1h", timedelta(hours=-1)),
        ("+0", timedelta(0)),
        ("0", timedelta(0)),
        ("-0", timedelta(0)),
        ("+1d", timedelta(days=1)),
        ("-1d12h", -timedelta(days=1, hours=12)),
        ("-90m", timedelta(minutes=-90)),
        ("-2w", timedelta(weeks=-2)),
        ("+1w2d3h4m", timedelta(weeks=1, days=2, hours=3, minutes=4)),
        (" -1D ", timedelta(days=-1)),
        ("+366d", MAX_OFFSET),
    ],
)
def test_parse_offset(text: str, expected: timedelta) -> None:
    assert parse_offset(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"offset '' must be an offset like -7d, -1h, \+1d or \+0"),
        ("-", "must be an offset like"),
        ("soon", "must be an offset like"),
        ("-1x", "must be an offset like"),
        ("-1h1d", "must be an offset like"),  # units largest first
        ("-1d-1h", "must be an offset like"),
        ("- 1d", "must be an offset like"),
        ("-1.5h", "must be an offset like"),
        ("-1s", "must be an offset like"),
        ("+-1d", "must be an offset like"),
        ("7d", r"offset '7d' needs a sign: -7d \(before the event start\) or \+7d \(after\)"),
        ("-367d", "offset '-367d' is more than 366 days from the event start"),
        ("-9999999d", "more than 366 days"),
        # Digits of other scripts were taken as numbers (-٣d stored as -3d): ASCII digits only.
        ("-\u0663d", "must be an offset like"),
        ("-\uff11d", "must be an offset like"),
    ],
)
def test_parse_offset_refuses(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_offset(text)


def test_offset_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="offset"):
        parse_offset("tomorrow")


@pytest.mark.parametrize(
    ("offset", "text"),
    [
        (timedelta(days=-7), "-7d"),
        (timedelta(weeks=-2), "-14d"),
        (timedelta(hours=-1), "-1h"),
        (timedelta(0), "+0"),
        (timedelta(days=1), "+1d"),
        (-timedelta(days=1, hours=12), "-1d12h"),
        (timedelta(minutes=-90), "-1h30m"),
        (timedelta(days=2, minutes=5), "+2d5m"),
    ],
)
def test_format_offset(offset: timedelta, text: str) -> None:
    assert format_offset(offset) == text


def test_format_offset_refuses_part_of_a_minute() -> None:
    with pytest.raises(ValidationError, match="not a whole number of minutes"):
        format_offset(timedelta(seconds=-30))


whole_minute_offsets = st.integers(-MAX_OFFSET // timedelta(minutes=1), MAX_OFFSET // timedelta(minutes=1)).map(
    lambda m: timedelta(minutes=m)
)


@given(whole_minute_offsets)
def test_offset_round_trip(offset: timedelta) -> None:
    text = format_offset(offset)
    assert parse_offset(text) == offset
    assert format_offset(parse_offset(text)) == text  # the written form is canonical


# ---------------------------------------------------------------------------------------------------------
# Send windows
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "canonical"),
    [
        ("mon-fri 09:00-17:00", OFFICE, "mon-fri 09:00-17:00"),
        ("09:00-17:00", SendWindow(frozenset(range(7)), time(9), time(17)), "09:00-17:00"),
        ("sat,sun 10:00-12:00", SendWindow(frozenset({5, 6}), time(10), time(12)), "sat,sun 10:00-12:00"),
        ("mon,wed-fri 08:30-12:00", SendWindow(frozenset({0, 2, 3, 4}), time(8, 30), time(12)), None),
        ("fri-mon 8:00-9:05", SendWindow(frozenset({4, 5, 6, 0}), time(8), time(9, 5)), "mon,fri-sun 08:00-09:05"),
        ("MON-SUN 00:00-24:00", SendWindow(frozenset(range(7)), time(0), END_OF_DAY), "00:00-24:00"),
        ("  tue  22:00-24:00 ", SendWindow(frozenset({1}), time(22), END_OF_DAY), "tue 22:00-24:00"),
        ("mon,mon-tue 09:00-09:01", SendWindow(frozenset({0, 1}), time(9), time(9, 1)), "mon,tue 09:00-09:01"),
        ("sun-sat 09:00-10:00", SendWindow(frozenset(range(7)), time(9), time(10)), "09:00-10:00"),
    ],
)
def test_parse_window(text: str, expected: SendWindow, canonical: str | None) -> None:
    assert parse_window(text) == expected
    assert format_window(expected) == (canonical or text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must look like 'mon-fri 09:00-17:00' or '09:00-17:00' \\(every day\\)"),
        ("mon fri 09:00-17:00", "must look like"),
        ("mon-fri", "must look like"),
        ("mon-fri 09:00", "must look like"),
        ("mon-fri 09:00-17:00-18:00", "must look like"),
        ("17:00-09:00", "the end 09:00 must be after the start 17:00 \\(a window lies within one day"),
        ("09:00-09:00", "must be after the start"),
        ("22:00-02:00", "within one day"),
        (
            "mon-fry 09:00-17:00",
            "unknown day 'fry' \\(use mon, tue, wed, thu, fri, sat, sun, or a range like mon-fri\\)",
        ),
        ("monday 09:00-17:00", "unknown day 'monday'"),
        ("mon,,fri 09:00-17:00", "unknown day ''"),
        ("mon-wed-fri 09:00-17:00", "'mon-wed-fri' is not a day or a range of days"),
        ("24:00-24:00", "'24:00' is not a time HH:MM from 00:00 to 23:59"),
        ("09:00-24:01", "'24:01' is not a time HH:MM from 00:00 to 24:00"),
        ("9-17", "'9' is not a time"),
        ("09:60-17:00", "'09:60' is not a time"),
        ("09:00-1700", "'1700' is not a time"),
        ("\uff10\uff19:\uff10\uff10-17:00", "is not a time"),  # full-width digits
    ],
)
def test_parse_window_refuses(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_window(text)


@pytest.mark.parametrize(
    ("days", "start", "end", "message"),
    [
        (frozenset(), time(9), time(10), "non-empty set"),
        (frozenset({7}), time(9), time(10), "non-empty set"),
        (WEEKDAYS, time(10), time(9), "end 09:00 must be after its start 10:00"),
        (WEEKDAYS, time(9, 0, 30), time(10), "start must be a whole minute"),
        (WEEKDAYS, time(9), time(10, 0, 0, 1), "end must be a whole minute"),
    ],
)
def test_send_window_checks_itself(days: frozenset[int], start: time, end: time, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SendWindow(days, start, end)


minutes_of_day = st.one_of(
    st.sampled_from([0, 30, 60, 90, 120, 150, 180, 23 * 60]),  # around the usual DST changes, and midnight
    st.integers(0, 1439),
)


@st.composite
def windows(draw: st.DrawFn) -> SendWindow:
    start = draw(minutes_of_day)
    end = draw(st.one_of(st.just(1440), st.integers(start + 1, 1440)))
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    return SendWindow(days, as_time(start), as_time(end))


def as_time(minute: int) -> time:
    """A minute of the day as a window bound; 1440 is midnight at the end."""
    return END_OF_DAY if minute == 1440 else time(minute // 60, minute % 60)


@given(windows())
def test_window_round_trip(window: SendWindow) -> None:
    text = format_window(window)
    assert parse_window(text) == window
    assert len(text) <= 100  # the waves.window column


# ---------------------------------------------------------------------------------------------------------
# Nominal instant and default expiry
# ---------------------------------------------------------------------------------------------------------

START = utc(2026, 6, 19, 7)
END = utc(2026, 6, 19, 8, 30)
LAUNCH = utc(2026, 6, 1, 12)


def test_nominal_instant() -> None:
    assert nominal_instant(START, timedelta(days=-1), None, LAUNCH) == utc(2026, 6, 18, 7)
    assert nominal_instant(START, timedelta(days=1), None, LAUNCH) == utc(2026, 6, 20, 7)
    assert nominal_instant(START, None, None, LAUNCH) == LAUNCH  # at launch
    send_at = datetime.fromisoformat("2026-06-10T09:00+02:00")
    assert nominal_instant(START, None, send_at, LAUNCH) == utc(2026, 6, 10, 7)
    assert nominal_instant(START, None, send_at, LAUNCH).tzinfo is UTC


def test_own_instant_is_the_waves_time_whatever_the_launch() -> None:
    # What scheduling compares with the launch (a wave whose own time had passed by then is skipped), and what
    # nominal_instant starts from: one rule.
    assert own_instant(START, timedelta(days=-30), None) == utc(2026, 5, 20, 7)
    send_at = datetime.fromisoformat("2026-05-01T09:00+02:00")
    assert own_instant(START, timedelta(days=-1), send_at) == utc(2026, 5, 1, 7)  # an instant wins
    assert own_instant(START, timedelta(days=-1), send_at).tzinfo is UTC  # type: ignore[union-attr]
    assert own_instant(START, None, None) is None  # at launch: no time of its own
    for offset, at in ((timedelta(hours=-1), None), (None, send_at), (None, None)):
        own = own_instant(START, offset, at)
        assert nominal_instant(START, offset, at, LAUNCH) == max(own or LAUNCH, LAUNCH)


def test_nominal_instant_is_never_before_the_launch() -> None:
    assert nominal_instant(START, timedelta(days=-30), None, LAUNCH) == LAUNCH
    assert nominal_instant(START, None, utc(2026, 5, 1), LAUNCH) == LAUNCH
    late_launch = utc(2026, 6, 19, 6, 30)  # launched half an hour before the start: the -1h reminder fires now
    assert nominal_instant(START, timedelta(hours=-1), None, late_launch) == late_launch


def test_nominal_instant_refuses_naive_datetimes() -> None:
    with pytest.raises(ValidationError, match="the event start 2026-06-19T07:00:00 must carry a UTC offset"):
        nominal_instant(datetime(2026, 6, 19, 7), None, None, LAUNCH)
    with pytest.raises(ValidationError, match="send_at"):
        nominal_instant(START, None, datetime(2026, 6, 10), LAUNCH)


@pytest.mark.parametrize("kind", [k for k in WaveKind if k is not WaveKind.FOLLOW_UP])
def test_every_wave_but_a_follow_up_expires_at_the_start(kind: WaveKind) -> None:
    assert default_expiry(kind, START, END) == START


def test_a_follow_up_expires_after_the_end() -> None:
    assert default_expiry(WaveKind.FOLLOW_UP, START, END) == END + FOLLOW_UP_LIFETIME
    # The +1d follow-up fires well before it expires.
    assert nominal_instant(START, timedelta(days=1), None, LAUNCH) < default_expiry(WaveKind.FOLLOW_UP, START, END)


# ---------------------------------------------------------------------------------------------------------
# local_send_instant: examples
# ---------------------------------------------------------------------------------------------------------


def send(nominal: datetime, zone: str, window: str | None, expires_at: datetime | None = None) -> datetime | None:
    return local_send_instant(nominal, ZoneInfo(zone), parse_window(window) if window else None, expires_at)


def test_without_a_window_the_nominal_instant_until_expiry() -> None:
    nominal = datetime.fromisoformat("2026-06-18T09:00+02:00")
    assert send(nominal, "Asia/Manila", None) == utc(2026, 6, 18, 7)
    assert send(nominal, "Asia/Manila", None, utc(2026, 6, 18, 7, 1)) == utc(2026, 6, 18, 7)
    assert send(nominal, "Asia/Manila", None, utc(2026, 6, 18, 7)) is None  # at expiry: too late
    assert send(nominal, "Asia/Manila", None).tzinfo is UTC  # type: ignore[union-attr]


def test_inside_the_window_the_nominal_instant() -> None:
    assert send(utc(2026, 6, 17, 1, 2, 3), "Asia/Manila", "mon-fri 09:00-17:00") == utc(2026, 6, 17, 1, 2, 3)


def test_a_window_waits_for_the_next_opening() -> None:
    # Wednesday 18:00 in Manila: Thursday 09:00.
    assert send(utc(2026, 6, 17, 10), "Asia/Manila", "mon-fri 09:00-17:00") == utc(2026, 6, 18, 1)
    # Friday 17:00 in Manila (the end is excluded): Monday 09:00.
    assert send(utc(2026, 6, 19, 9), "Asia/Manila", "mon-fri 09:00-17:00") == utc(2026, 6, 22, 1)
    # Half-hour zone, early: the same day.
    assert send(utc(2026, 6, 17, 0), "Asia/Kathmandu", "mon-fri 09:00-17:00") == utc(2026, 6, 17, 3, 15)


def test_europe_london_dst_weekends() -> None:
    # Spring forward, Sunday 29 March 2026: 01:00 GMT → 02:00 BST.
    friday_evening = utc(2026, 3, 27, 18)
    assert send(friday_evening, "Europe/London", "mon-fri 09:00-17:00") == utc(2026, 3, 30, 8)  # 09:00 BST
    # A window opening in the gap opens at the first instant after it, 02:00 BST.
    assert send(friday_evening, "Europe/London", "sun 01:30-03:00") == utc(2026, 3, 29, 1)
    # A window lying wholly in the gap does not exist that day: a week later.
    assert send(friday_evening, "Europe/London", "sun 01:00-01:59") == utc(2026, 4, 5, 0)
    # Fall back, Sunday 25 October 2026: 02:00 BST → 01:00 GMT; 01:00-02:00 happens twice.
    assert send(utc(2026, 10, 24, 12), "Europe/London", "sun 01:30-03:00") == utc(2026, 10, 25, 0, 30)  # 1st
    # 01:10 GMT (second pass): the first 01:30 has gone, the second is the next.
    assert send(utc(2026, 10, 25, 1, 10), "Europe/London", "sun 01:30-03:00") == utc(2026, 10, 25, 1, 30)
    # Inside the window at its second pass too.
    assert send(utc(2026, 10, 25, 1, 40), "Europe/London", "sun 01:30-03:00") == utc(2026, 10, 25, 1, 40)
    assert send(utc(2026, 10, 23, 18), "Europe/London", "mon-fri 09:00-17:00") == utc(2026, 10, 26, 9)  # GMT


def test_america_new_york_dst_weekends() -> None:
    # Spring forward, Sunday 8 March 2026: 02:00 EST → 03:00 EDT (07:00 UTC).
    friday_evening = utc(2026, 3, 6, 23)  # 18:00 EST
    assert send(friday_evening, "America/New_York", "mon-fri 09:00-17:00") == utc(2026, 3, 9, 13)  # 09:00 EDT
    assert send(friday_evening, "America/New_York", "sun 02:30-04:00") == utc(2026, 3, 8, 7)  # 03:00 EDT
    assert send(friday_evening, "America/New_York", "sun 02:00-02:30") == utc(2026, 3, 15, 6)  # next week
    assert send(friday_evening, "America/New_York", "sun 00:00-24:00") == utc(2026, 3, 8, 5)
    # Fall back, Sunday 1 November 2026: 02:00 EDT → 01:00 EST (06:00 UTC).
    assert send(utc(2026, 10, 31, 12), "America/New_York", "sun 01:00-01:30") == utc(2026, 11, 1, 5)  # EDT
    assert send(utc(2026, 11, 1, 5, 45), "America/New_York", "sun 01:00-01:30") == utc(2026, 11, 1, 6)  # EST
    assert send(utc(2026, 11, 1, 6, 45), "America/New_York", "sun 01:00-01:30") == utc(2026, 11, 8, 6)
    assert send(utc(2026, 10, 30, 22), "America/New_York", "mon-fri 09:00-17:00") == utc(2026, 11, 2, 14)  # EST


def test_kiritimati_is_a_day_ahead() -> None:
    # UTC+14: Monday 09:00 there is Sunday 19:00 UTC.
    assert send(utc(2026, 6, 14, 12), "Pacific/Kiritimati", "mon 09:00-17:00") == utc(2026, 6, 14, 19)
    assert send(utc(2026, 6, 14, 20), "Pacific/Kiritimati", "mon 09:00-17:00") == utc(2026, 6, 14, 20)
    # Monday 17:00 there has passed by Sunday 03:00 UTC... of the next day: a week later.
    assert send(utc(2026, 6, 15, 3), "Pacific/Kiritimati", "mon 09:00-17:00") == utc(2026, 6, 21, 19)
    assert send(utc(2026, 6, 14, 12), "Pacific/Kiritimati", "mon 09:00-17:00", utc(2026, 6, 14, 18)) is None


def test_chatham_and_st_johns() -> None:
    # Chatham is UTC+12:45 in winter (June); St John's UTC-2:30 in summer.
    assert send(utc(2026, 6, 16, 0), "Pacific/Chatham", "mon-fri 09:00-17:00") == utc(2026, 6, 16, 0)  # 12:45
    assert send(utc(2026, 6, 16, 6), "Pacific/Chatham", "mon-fri 09:00-17:00") == utc(2026, 6, 16, 20, 15)
    assert send(utc(2026, 6, 16, 0), "America/St_Johns", "mon-fri 09:00-17:00") == utc(2026, 6, 16, 11, 30)


def test_lord_howe_half_hour_fall_back() -> None:
    # Sunday 5 April 2026, 02:00 +11 → 01:30 +10:30 (15:00 UTC): 01:30-02:00 happens twice.
    assert send(utc(2026, 4, 4, 0), "Australia/Lord_Howe", "sun 01:40-01:50") == utc(2026, 4, 4, 14, 40)
    assert send(utc(2026, 4, 4, 14, 55), "Australia/Lord_Howe", "sun 01:40-01:50") == utc(2026, 4, 4, 15, 10)


def test_samoa_skipped_a_friday() -> None:
    # Pacific/Apia went from Thursday 29 to Saturday 31 December 2011: the next Friday is 6 January 2012.
    thursday = datetime(2011, 12, 29, 12, tzinfo=ZoneInfo("Pacific/Apia"))
    expected = datetime(2012, 1, 6, 9, tzinfo=ZoneInfo("Pacific/Apia"))
    assert send(thursday, "Pacific/Apia", "fri 09:00-17:00") == expected


def test_a_reminder_whose_window_opens_after_the_start_is_not_sent() -> None:
    start = utc(2026, 6, 15, 8)  # Monday 16:00 in Manila
    nominal = nominal_instant(start, parse_offset("-1h"), None, LAUNCH)
    expires = default_expiry(WaveKind.REMINDER, start, start + timedelta(hours=1))
    assert send(nominal, "Asia/Manila", "mon-fri 18:00-20:00", expires) is None
    assert send(nominal, "Asia/Manila", "mon-fri 09:00-20:00", expires) == nominal


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValidationError, match="nominal instant"):
        local_send_instant(datetime(2026, 6, 1), ZoneInfo("UTC"), OFFICE, None)
    with pytest.raises(ValidationError, match="expiry"):
        local_send_instant(utc(2026, 6, 1), ZoneInfo("UTC"), OFFICE, datetime(2026, 6, 2))


# ---------------------------------------------------------------------------------------------------------
# local_send_instant: properties, against a slow reference
# ---------------------------------------------------------------------------------------------------------

MINUTE = timedelta(minutes=1)
MICRO = timedelta(microseconds=1)
HORIZON = timedelta(days=9)  # a week and then some: far enough for any window


@cache
def transitions(zone: str) -> tuple[datetime, ...]:
    """The instants ``zone`` changed its UTC offset in 2025-2027 (sampled every 6 hours, then bisected)."""
    tz = ZoneInfo(zone)
    found: list[datetime] = []
    at = utc(2025, 1, 1)
    while at < utc(2028, 1, 1):
        following = at + timedelta(hours=6)
        if at.astimezone(tz).utcoffset() != following.astimezone(tz).utcoffset():
            lo, hi = at, following
            while hi - lo > MINUTE:
                middle = lo + (hi - lo) // 2
                lo, hi = (
                    (lo, middle)
                    if middle.astimezone(tz).utcoffset() == following.astimezone(tz).utcoffset()
                    else (middle, hi)
                )
            found.append(hi)
        at = following
    return tuple(found)


def reference(nominal: datetime, zone: ZoneInfo, window: SendWindow, until: datetime) -> datetime | None:
    """Minute by minute: the first instant of [nominal, until) inside the window. Nominal, or a whole minute:
    windows open at whole minutes of local time and (since 1970) zones are whole minutes from UTC."""
    candidates = _minutes_from(nominal)
    for at in candidates:
        if at >= until:
            return None
        if window.contains(at.astimezone(zone)):
            return at
    raise AssertionError("unreachable")


def _minutes_from(nominal: datetime) -> Iterator[datetime]:
    yield nominal
    at = nominal.replace(second=0, microsecond=0) + MINUTE
    while True:
        yield at
        at += MINUTE


@st.composite
def cases(draw: st.DrawFn) -> tuple[datetime, str, SendWindow, datetime | None]:
    """A zone, a nominal instant and a window; half the time both around one of the zone's offset changes (the
    nominal within four days of it, the window on its day, opening or closing within 90 minutes of its local
    wall-clock time before or after), else anywhere in 2025-2027."""
    zone = draw(st.sampled_from(ZONES))
    changes = transitions(zone)
    expires_in = st.one_of(st.none(), st.integers(0, 10 * 24 * 60).map(lambda m: timedelta(minutes=m)))
    if draw(st.booleans()) and changes:
        change = draw(st.sampled_from(changes))
        nominal = change + timedelta(seconds=draw(st.integers(-4 * 86400, 4 * 86400)))
        wall = draw(st.sampled_from([(change - MICRO).astimezone(ZoneInfo(zone)), change.astimezone(ZoneInfo(zone))]))
        near = wall.hour * 60 + wall.minute + draw(st.integers(-90, 90))
        if draw(st.booleans()):  # the window opens near the change
            start = min(max(near, 0), 1439)
            end = draw(st.integers(start + 1, min(start + 180, 1440)))
        else:  # it closes near it
            end = min(max(near, 1), 1440)
            start = draw(st.integers(max(end - 180, 0), end - 1))
        days = draw(st.frozensets(st.integers(0, 6))) | {wall.weekday()}
        window = SendWindow(frozenset(days), as_time(start), as_time(end))
    else:
        nominal = draw(st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)))
        window = draw(windows())
    expires = draw(expires_in)
    return nominal, zone, window, None if expires is None else nominal + expires


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_send_instant_is_the_earliest_inside_the_window_before_expiry(
    case: tuple[datetime, str, SendWindow, datetime | None],
) -> None:
    nominal, zone_name, window, expires = case
    zone = ZoneInfo(zone_name)
    result = local_send_instant(nominal, zone, window, expires)
    if result is not None:
        assert result.tzinfo is UTC
        assert result >= nominal
        assert expires is None or result < expires
        local = result.astimezone(zone)
        assert local.weekday() in window.days
        assert window.start <= local.time() < window.end
    # The earliest: equal to the minute-by-minute answer over a bounded range.
    until = nominal + HORIZON if expires is None else min(expires, nominal + HORIZON)
    expected = reference(nominal, zone, window, until)
    if expected is None:
        assert result is None or result >= until
    else:
        assert result == expected


@settings(max_examples=300)
@given(
    st.tuples(
        st.sampled_from(ZONES), st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC))
    ),
    st.one_of(st.none(), st.integers(-60, 60).map(lambda m: timedelta(minutes=m))),
)
def test_without_a_window_only_expiry_matters(zone_nominal: tuple[str, datetime], before: timedelta | None) -> None:
    zone, nominal = zone_nominal
    expires = None if before is None else nominal + before
    result = local_send_instant(nominal, ZoneInfo(zone), None, expires)
    assert result == (nominal if expires is None or nominal < expires else None)
