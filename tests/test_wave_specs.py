"""Wave specs: ``NAME KIND TIMING AUDIENCE [WINDOW]`` parsed, refused with the wrong part named, and written back."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaign.exceptions import ValidationError
from campaign.models import Audience, WaveKind
from campaign.rules.timing import MAX_OFFSET, SendWindow
from campaign.rules.wave_specs import (
    WAVE_NAME_MAX,
    WaveSpec,
    format_timing,
    format_wave_spec,
    parse_instant_or_offset,
    parse_wave_name,
    parse_wave_spec,
)
from tests.test_timing import windows

OFFICE = SendWindow(frozenset(range(5)), time(9), time(17))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "reminder-1d reminder -1d registered mon-fri 09:00-17:00",
            WaveSpec("reminder-1d", WaveKind.REMINDER, timedelta(days=-1), None, Audience.REGISTERED, OFFICE),
        ),
        ("invitation invitation launch all", WaveSpec("invitation", WaveKind.INVITATION, None, None, Audience.ALL)),
        (
            "last-chance last-chance -7d not-registered",
            WaveSpec("last-chance", WaveKind.LAST_CHANCE, timedelta(days=-7), None, Audience.NOT_REGISTERED),
        ),
        (
            "recording follow-up +1d all 09:00-17:00",
            WaveSpec(
                "recording",
                WaveKind.FOLLOW_UP,
                timedelta(days=1),
                None,
                Audience.ALL,
                SendWindow(frozenset(range(7)), time(9), time(17)),
            ),
        ),
        (
            "news update 2026-06-19T09:00+02:00 opened",
            WaveSpec("news", WaveKind.UPDATE, None, datetime(2026, 6, 19, 7, tzinfo=UTC), Audience.OPENED),
        ),
        ("now cancellation +0 all", WaveSpec("now", WaveKind.CANCELLATION, timedelta(0), None, Audience.ALL)),
    ],
)
def test_parse_wave_spec(text: str, expected: WaveSpec) -> None:
    spec = parse_wave_spec(text)
    assert spec == expected
    assert parse_wave_spec(format_wave_spec(spec)) == spec


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        (
            WaveSpec("reminder-1d", WaveKind.REMINDER, timedelta(days=-1), None, Audience.REGISTERED, OFFICE),
            "reminder-1d reminder -1d registered mon-fri 09:00-17:00",
        ),
        (WaveSpec("a", WaveKind.INVITATION, None, None, Audience.ALL), "a invitation launch all"),
        (WaveSpec("b", WaveKind.REMINDER, timedelta(minutes=-90), None, Audience.CLICKED), "b reminder -1h30m clicked"),
        (
            WaveSpec(
                "c", WaveKind.UPDATE, None, datetime(2026, 6, 19, 9, tzinfo=timezone(timedelta(hours=2))), Audience.ALL
            ),
            "c update 2026-06-19T07:00Z all",
        ),
        (
            WaveSpec("d", WaveKind.UPDATE, None, datetime(2026, 6, 19, 7, 0, 5, tzinfo=UTC), Audience.ALL),
            "d update 2026-06-19T07:00:05Z all",
        ),
    ],
)
def test_format_wave_spec(spec: WaveSpec, text: str) -> None:
    assert format_wave_spec(spec) == text
    assert parse_wave_spec(text) == spec


def test_case_and_spacing_of_keywords_do_not_matter() -> None:
    assert parse_wave_spec("  r   Reminder  -1D  Registered  MON-FRI  09:00-17:00 ") == parse_wave_spec(
        "r reminder -1d registered mon-fri 09:00-17:00"
    )
    assert parse_wave_spec("x invitation LAUNCH all").offset is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "wave '' must look like 'NAME KIND TIMING AUDIENCE \\[WINDOW\\]', e.g. 'reminder-1d reminder -1d"),
        ("x reminder -1d", "must look like 'NAME KIND TIMING AUDIENCE"),
        ("X reminder -1d all", "wave name 'X' must be 1 to 100 characters of a-z, 0-9 and '-', starting with"),
        ("-x reminder -1d all", "wave name '-x'"),
        ("a_b reminder -1d all", "wave name 'a_b'"),
        (f"{'x' * 101} reminder -1d all", "wave name 'x{101}'"),
        ("x remind -1d all", "wave x: kind 'remind' is not one of invitation, reminder, last-chance, follow-up"),
        ("x reminder -1d nobody", "wave x: audience 'nobody' is not one of all, registered, not-registered, opened"),
        ("x reminder 1d all", "wave x: timing offset '1d' needs a sign"),
        ("x reminder -1q all", "wave x: timing offset '-1q' must be an offset like -7d, -1h, \\+1d or \\+0"),
        ("x reminder -400d all", "wave x: timing offset '-400d' is more than 366 days"),
        (
            "x reminder soon all",
            "wave x: timing 'soon' must be an offset like -7d, -1h, \\+1d or \\+0, an instant like",
        ),
        ("x reminder 2026-06-19T09:00 all", "wave x: timing '2026-06-19T09:00' needs a UTC offset, like"),
        ("x reminder 2026-13-01T09:00Z all", "wave x: timing '2026-13-01T09:00Z' is not an instant like"),
        ("x reminder -1d all mon-fry 09:00-17:00", "wave x: send window 'mon-fry 09:00-17:00': unknown day 'fry'"),
        ("x reminder -1d all 17:00-09:00", "wave x: send window '17:00-09:00': the end 09:00 must be after"),
        ("x reminder -1d all mon-fri", "wave x: send window 'mon-fri' must look like"),
        ("x reminder -1d all mon fri 09:00-17:00", "wave x: send window 'mon fri 09:00-17:00' must look like"),
    ],
)
def test_parse_wave_spec_names_the_wrong_part(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_wave_spec(text)


def test_a_spec_checks_itself() -> None:
    with pytest.raises(ValidationError, match="wave name 'Bad'"):
        WaveSpec("Bad", WaveKind.REMINDER, None, None, Audience.ALL)
    with pytest.raises(ValidationError, match="wave x: give an offset or an instant to send at, not both"):
        WaveSpec("x", WaveKind.REMINDER, timedelta(days=-1), datetime(2026, 6, 1, tzinfo=UTC), Audience.ALL)
    with pytest.raises(ValidationError, match="wave x: the instant 2026-06-01T00:00:00 needs a UTC offset"):
        WaveSpec("x", WaveKind.REMINDER, None, datetime(2026, 6, 1), Audience.ALL)


def test_parse_wave_name() -> None:
    assert parse_wave_name("reminder-1d") == "reminder-1d"
    assert parse_wave_name("x" * WAVE_NAME_MAX) == "x" * WAVE_NAME_MAX
    with pytest.raises(ValidationError, match="wave name ''"):
        parse_wave_name("")


names = st.from_regex(rf"[a-z0-9][a-z0-9-]{{0,{WAVE_NAME_MAX - 1}}}", fullmatch=True)
offsets = st.integers(-MAX_OFFSET // timedelta(minutes=1), MAX_OFFSET // timedelta(minutes=1)).map(
    lambda m: timedelta(minutes=m)
)
instants = st.datetimes(
    datetime(2000, 1, 1),
    datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-9, minutes=-30))]),
)
timings = st.one_of(st.tuples(st.none(), st.none()), st.tuples(offsets, st.none()), st.tuples(st.none(), instants))


@given(
    names,
    st.sampled_from(WaveKind),
    timings,
    st.sampled_from(Audience),
    st.one_of(st.none(), windows()),
)
def test_round_trip(
    name: str,
    kind: WaveKind,
    timing: tuple[timedelta | None, datetime | None],
    audience: Audience,
    window: SendWindow | None,
) -> None:
    spec = WaveSpec(name, kind, timing[0], timing[1], audience, window)
    text = format_wave_spec(spec)
    assert parse_wave_spec(text) == spec
    assert format_wave_spec(parse_wave_spec(text)) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-1h", timedelta(hours=-1)),
        ("+0", timedelta(0)),
        ("2026-06-19T09:00+02:00", datetime(2026, 6, 19, 7, tzinfo=UTC)),
        ("2026-06-19T07:00:05Z", datetime(2026, 6, 19, 7, 0, 5, tzinfo=UTC)),
    ],
)
def test_parse_instant_or_offset(text: str, expected: timedelta | datetime) -> None:
    """One parser for a wave's timing and its --expires."""
    assert parse_instant_or_offset(text, "wave x: --expires") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "soon",
            "wave x: --expires 'soon' must be an offset like -7d, -1h, \\+1d or \\+0, an instant like .*, "
            "or 'default'$",
        ),
        ("1d", "wave x: --expires offset '1d' needs a sign"),
        ("2026-06-19T09:00", "wave x: --expires '2026-06-19T09:00' needs a UTC offset"),
        ("2026-13-01T09:00Z", "wave x: --expires '2026-13-01T09:00Z' is not an instant like"),
        # Accepted before, and then `waves list`, `status` and `plan` overflowed (tracebacks), or the parse did.
        ("0001-01-01T00:00Z", "wave x: --expires '0001-01-01T00:00Z' is out of range: the year must be 1900 to 2999"),
        ("0001-01-01T00:00+01:00", "is out of range"),
        ("9999-12-31T23:59-01:00", "is out of range"),
    ],
)
def test_parse_instant_or_offset_names_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_instant_or_offset(text, "wave x: --expires", alternatives=", or 'default'")


def test_format_timing_is_the_timing_of_format_wave_spec() -> None:
    """One formatter: an instant keeps its seconds (so an unrelated edit does not move it)."""
    assert format_timing(None, datetime(2026, 6, 19, 9, 0, 5, tzinfo=timezone(timedelta(hours=2)))) == (
        "2026-06-19T07:00:05Z"
    )
    assert format_timing(None, datetime(2026, 6, 19, 7, tzinfo=UTC)) == "2026-06-19T07:00Z"
    assert format_timing(timedelta(days=-7), None) == "-7d"
    assert format_timing(None, None) == "launch"
