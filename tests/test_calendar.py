"""Calendar invites: the .ics for the sample webinar, read back by icalendar and by the independent, strict
``ical`` parser, for METHOD:PUBLISH, REQUEST and CANCEL."""

from __future__ import annotations

import dataclasses
import tomllib
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
from ical.calendar import Calendar as StrictCalendar
from ical.calendar_stream import IcsCalendarStream

from campaign.models import Event, EventStatus, Speaker
from campaign.render.calendar import PRODID, CalendarMethod, build_ics
from campaign.render.identifiers import event_uid
from campaign.rules.event_fields import parse_event_document
from tests.conftest import DATA

DOMAIN = "ilo.example.org"
INSTALLATION = "k3fq2wz7abcdxy45"
UID = f"event-7.{INSTALLATION}@{DOMAIN}"
STAMP = datetime(2020, 6, 1, 8, 15, 30, tzinfo=UTC)
ZURICH = ZoneInfo("Europe/Zurich")
TRICKY_TITLE = 'Migrants, work; and "the future": a\\b, c;d'
ATTENDEE = ("maria@example.org", 'María, "Mari" Ruiz')


def sample_event(**changes: object) -> Event:
    with (DATA / "events" / "ilo-migrant-workers-2020.toml").open("rb") as f:
        values = parse_event_document(tomllib.load(f), "sample")
    values["speakers"] = tuple(Speaker(**s) for s in values["speakers"])
    event = Event(id=7, sequence=2, **values)
    return dataclasses.replace(event, **changes)  # type: ignore[arg-type]


def build(
    event: Event | None = None,
    method: CalendarMethod = CalendarMethod.PUBLISH,
    stamp: datetime = STAMP,
    attendee: tuple[str, str | None] | None = None,
    domain: str = DOMAIN,
    installation: str = INSTALLATION,
) -> bytes:
    if method is CalendarMethod.REQUEST and attendee is None:
        attendee = ATTENDEE
    return build_ics(
        event or sample_event(),
        domain=domain,
        installation=installation,
        method=method,
        stamp=stamp,
        attendee=attendee,
    )


def parse(ics: bytes) -> Any:
    """The calendar as icalendar reads it (typed Any: icalendar's property values are a wide union)."""
    return icalendar.Calendar.from_ical(ics)


def vevent(ics: bytes) -> Any:
    events = list(parse(ics).walk("VEVENT"))
    assert len(events) == 1
    return events[0]


def strict(ics: bytes) -> StrictCalendar:
    calendar: StrictCalendar = IcsCalendarStream.calendar_from_ics(ics.decode("utf-8"))
    return calendar


METHODS = list(CalendarMethod)


@pytest.mark.parametrize("method", METHODS)
def test_calendar_header(method: CalendarMethod) -> None:
    cal = parse(build(method=method))
    assert str(cal["METHOD"]) == method.value
    assert str(cal["VERSION"]) == "2.0"
    assert str(cal["PRODID"]) == PRODID
    assert str(cal["CALSCALE"]) == "GREGORIAN"


@pytest.mark.parametrize("method", METHODS)
def test_lines_end_in_crlf_and_are_folded_at_75_octets(method: CalendarMethod) -> None:
    ics = build(sample_event(title=TRICKY_TITLE + " é" * 60), method=method)
    assert ics.endswith(b"\r\n")
    lines = ics.split(b"\r\n")[:-1]
    assert all(b"\n" not in line and b"\r" not in line for line in lines)
    assert all(len(line) <= 75 for line in lines)
    ics.decode("utf-8")  # folding never splits a UTF-8 sequence


@pytest.mark.parametrize("method", METHODS)
def test_uid_dtstamp_and_times(method: CalendarMethod) -> None:
    event = vevent(build(method=method))
    assert str(event["UID"]) == UID
    stamp = event.decoded("DTSTAMP")
    assert stamp == STAMP
    assert stamp.utcoffset() == timedelta(0)
    start, end = event["DTSTART"], event["DTEND"]
    assert start.params["TZID"] == "Europe/Zurich"
    assert end.params["TZID"] == "Europe/Zurich"
    assert start.dt.replace(tzinfo=None) == datetime(2020, 6, 26, 13, 30)
    assert end.dt.replace(tzinfo=None) == datetime(2020, 6, 26, 15, 0)
    assert start.dt == datetime(2020, 6, 26, 11, 30, tzinfo=UTC)
    assert end.dt == datetime(2020, 6, 26, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize("method", METHODS)
def test_raw_property_lines(method: CalendarMethod) -> None:
    text = build(method=method).decode()
    unfolded = text.replace("\r\n ", "")
    assert "\r\nDTSTAMP:20200601T081530Z\r\n" in unfolded
    assert "\r\nDTSTART;TZID=Europe/Zurich:20200626T133000\r\n" in unfolded
    assert "\r\nDTEND;TZID=Europe/Zurich:20200626T150000\r\n" in unfolded
    assert f"\r\nUID:{UID}\r\n" in unfolded
    assert f"\r\nMETHOD:{method.value}\r\n" in unfolded


@pytest.mark.parametrize("method", METHODS)
def test_vtimezone_has_standard_and_daylight_for_the_event_year(method: CalendarMethod) -> None:
    cal = parse(build(method=method))
    zones = cal.walk("VTIMEZONE")
    assert len(zones) == 1
    zone = zones[0]
    assert str(zone["TZID"]) == "Europe/Zurich"
    standard = zone.walk("STANDARD")
    daylight = zone.walk("DAYLIGHT")
    assert standard
    assert daylight
    daylight_starts = [c.decoded("DTSTART") for c in daylight]
    standard_starts = [c.decoded("DTSTART") for c in standard]
    assert any(d.date() == date(2020, 3, 29) for d in daylight_starts)
    assert any(d.date() == date(2020, 10, 25) for d in standard_starts)
    assert {c.decoded("TZOFFSETTO") for c in daylight} == {timedelta(hours=2)}
    assert timedelta(hours=1) in {c.decoded("TZOFFSETTO") for c in standard}


def test_vtimezone_for_a_december_event_in_another_year() -> None:
    start = datetime(2026, 12, 10, 12, 30, tzinfo=UTC)
    cal = parse(build(sample_event(starts_at=start, ends_at=start + timedelta(hours=1))))
    zone = cal.walk("VTIMEZONE")[0]
    assert any(c.decoded("DTSTART").year == 2026 for c in zone.walk("DAYLIGHT"))
    assert any(c.decoded("DTSTART").year == 2026 for c in zone.walk("STANDARD"))
    event = vevent(build(sample_event(starts_at=start, ends_at=start + timedelta(hours=1))))
    assert event.decoded("DTSTART").replace(tzinfo=None) == datetime(2026, 12, 10, 13, 30)


def test_vtimezone_covers_an_event_across_new_year() -> None:
    start = datetime(2026, 12, 31, 22, 30, tzinfo=UTC)  # 23:30 on 31 December in Geneva, until 00:30
    ics = build(sample_event(starts_at=start, ends_at=start + timedelta(hours=1)))
    parsed = strict(ics)
    assert parsed.events[0].dtstart == start
    assert parsed.events[0].dtend == start + timedelta(hours=1)
    event = vevent(ics)
    assert event.decoded("DTEND").replace(tzinfo=None) == datetime(2027, 1, 1, 0, 30)


@pytest.mark.parametrize("method", METHODS)
def test_summary_escapes_commas_and_semicolons_and_round_trips(method: CalendarMethod) -> None:
    ics = build(sample_event(title=TRICKY_TITLE), method=method)
    unfolded = ics.decode().replace("\r\n ", "")
    assert "SUMMARY:Migrants\\, work\\; and" in unfolded
    assert "a\\\\b\\, c\\;d" in unfolded
    assert str(vevent(ics)["SUMMARY"]) == TRICKY_TITLE
    assert strict(ics).events[0].summary == TRICKY_TITLE


@pytest.mark.parametrize("method", METHODS)
def test_description_url_organizer_sequence(method: CalendarMethod) -> None:
    source = sample_event()
    ics = build(method=method)
    event = vevent(ics)
    description = str(event["DESCRIPTION"])
    assert f"Join: {source.join_url}" in description
    assert f"Register: {source.registration_url}" in description
    assert "“build back better”" in description
    assert "employers’ and workers’ organizations" in description
    assert str(event["URL"]) == source.registration_url
    assert str(event["LOCATION"]) == source.join_url
    organizer = event["ORGANIZER"]
    assert str(organizer) == "mailto:migrant@ilo.example.org"
    assert organizer.params["CN"] == "International Labour Organization (ILO)"
    assert event.decoded("SEQUENCE") == 2
    assert str(event["TRANSP"]) == "OPAQUE"


@pytest.mark.parametrize("sequence", [0, 1, 5])
def test_sequence_follows_the_event(sequence: int) -> None:
    ics = build(sample_event(sequence=sequence), method=CalendarMethod.CANCEL)
    assert vevent(ics).decoded("SEQUENCE") == sequence
    assert strict(ics).events[0].sequence == sequence


@pytest.mark.parametrize(
    ("method", "status"),
    [
        (CalendarMethod.PUBLISH, "CONFIRMED"),
        (CalendarMethod.REQUEST, "CONFIRMED"),
        (CalendarMethod.CANCEL, "CANCELLED"),
    ],
)
def test_status(method: CalendarMethod, status: str) -> None:
    ics = build(method=method)
    assert str(vevent(ics)["STATUS"]) == status
    assert strict(ics).events[0].status == status


def test_request_has_the_attendee_and_publish_has_none() -> None:
    request = vevent(build(method=CalendarMethod.REQUEST))
    attendee = request["ATTENDEE"]
    assert str(attendee) == "mailto:maria@example.org"
    assert attendee.params["CN"] == 'María, "Mari" Ruiz'
    assert attendee.params["ROLE"] == "REQ-PARTICIPANT"
    assert attendee.params["PARTSTAT"] == "NEEDS-ACTION"
    assert "ATTENDEE" not in vevent(build(method=CalendarMethod.PUBLISH))
    assert "ATTENDEE" not in vevent(build(method=CalendarMethod.CANCEL))


def test_request_attendee_without_a_name() -> None:
    event = vevent(build(method=CalendarMethod.REQUEST, attendee=("anon@example.org", None)))
    assert str(event["ATTENDEE"]) == "mailto:anon@example.org"
    assert "CN" not in event["ATTENDEE"].params


def test_request_without_attendee_raises() -> None:
    with pytest.raises(ValueError, match="ATTENDEE"):
        build_ics(sample_event(), domain=DOMAIN, installation=INSTALLATION, method=CalendarMethod.REQUEST, stamp=STAMP)


@pytest.mark.parametrize("method", METHODS)
def test_strict_parser_reads_every_field(method: CalendarMethod) -> None:
    source = sample_event(title=TRICKY_TITLE)
    parsed = strict(build(source, method=method))
    assert len(parsed.events) == 1
    event = parsed.events[0]
    assert event.uid == UID
    assert event.dtstamp == STAMP
    assert event.dtstart == source.starts_at
    assert event.dtend == source.ends_at
    assert isinstance(event.dtstart, datetime)
    assert event.dtstart.utcoffset() == timedelta(hours=2)
    assert event.summary == TRICKY_TITLE
    assert event.description is not None
    assert f"Join: {source.join_url}" in event.description
    assert f"Register: {source.registration_url}" in event.description
    assert event.url == source.registration_url
    assert event.organizer is not None
    assert event.organizer.uri == "mailto:migrant@ilo.example.org"
    assert event.organizer.common_name == "International Labour Organization (ILO)"
    assert event.sequence == 2
    if method is CalendarMethod.REQUEST:
        assert [(a.uri, a.common_name) for a in event.attendees] == [("mailto:maria@example.org", ATTENDEE[1])]
    else:
        assert event.attendees == []
    assert len(parsed.timezones) == 1
    zone = parsed.timezones[0]
    assert zone.tz_id == "Europe/Zurich"
    assert zone.standard
    assert zone.daylight


def test_uid_is_stable_across_builds_methods_and_recipients() -> None:
    uids = {
        str(vevent(build(stamp=STAMP))["UID"]),
        str(vevent(build(stamp=STAMP + timedelta(days=3)))["UID"]),
        str(vevent(build(method=CalendarMethod.REQUEST, attendee=("a@example.org", "A")))["UID"]),
        str(vevent(build(method=CalendarMethod.REQUEST, attendee=("b@example.org", None)))["UID"]),
        str(vevent(build(sample_event(sequence=9, title="Moved"), method=CalendarMethod.CANCEL))["UID"]),
    }
    assert uids == {event_uid(sample_event(), DOMAIN, INSTALLATION)} == {UID}


def test_uid_differs_per_event_domain_and_installation() -> None:
    assert str(vevent(build(sample_event(id=8)))["UID"]) == f"event-8.{INSTALLATION}@ilo.example.org"
    assert str(vevent(build(domain="other.example.org"))["UID"]) == f"event-7.{INSTALLATION}@other.example.org"
    # Two databases both have an event 7: their entries must not replace each other in a calendar.
    assert str(vevent(build(installation="m2nb6pq4rstuvw3x"))["UID"]) == "event-7.m2nb6pq4rstuvw3x@ilo.example.org"


def test_same_inputs_give_the_same_bytes() -> None:
    """PUBLISH bytes are built once per wave and shared; they must not depend on anything but the inputs."""
    assert build() == build()


def test_dtstamp_given_in_another_zone_is_written_in_utc() -> None:
    stamp = datetime(2020, 6, 1, 10, 15, 30, tzinfo=ZURICH)  # 08:15:30 UTC
    ics = build(stamp=stamp)
    assert "\r\nDTSTAMP:20200601T081530Z\r\n" in ics.decode()
    assert strict(ics).events[0].dtstamp == STAMP


def test_event_without_links_or_organiser() -> None:
    ics = build(
        sample_event(registration_url=None, join_url=None, organiser_email=None, organiser_name=None, description="")
    )
    event = vevent(ics)
    for name in ("URL", "LOCATION", "ORGANIZER"):
        assert name not in event
    assert strict(ics).events[0].summary == sample_event().title


@pytest.mark.parametrize("method", [CalendarMethod.PUBLISH, CalendarMethod.REQUEST])
def test_a_cancelled_events_calendar_says_so_whatever_the_method(method: CalendarMethod) -> None:
    ics = build(sample_event(status=EventStatus.CANCELLED, sequence=3), method)
    assert vevent(ics)["STATUS"] == "CANCELLED"
    (event,) = strict(ics).events
    assert event.sequence == 3
