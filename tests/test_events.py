"""Events: the sample webinar, validation of event files, and moving a session in time."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from campaign.exceptions import AlreadyExistsError, NotFoundError, ValidationError
from campaign.rules.event_fields import move_to_date, parse_event_document, wall_clock
from campaign.services.events import add_event, get_event, list_events, read_event_file
from campaign.store.engine import Database
from tests.conftest import DATA

SAMPLE = DATA / "events" / "ilo-migrant-workers-2020.toml"


def test_sample_webinar_is_reproduced_faithfully(db: Database) -> None:
    event = add_event(db, read_event_file(SAMPLE))
    assert event.slug == "ilo-migrant-workers-2020"
    assert event.title.startswith("The many faces of women and men migrant workers")
    assert "post-COVID-19 world" in event.title
    # Friday 26 June 2020, 13:30-15:00 in Geneva, which is CEST (UTC+2) in June whatever "(CET)" said.
    assert event.timezone == "Europe/Zurich"
    assert event.starts_at == datetime(2020, 6, 26, 11, 30, tzinfo=UTC)
    assert event.ends_at == datetime(2020, 6, 26, 13, 0, tzinfo=UTC)
    assert event.starts_at.astimezone().tzinfo is not None
    assert [s.name for s in event.speakers][:2] == ["Michelle Leighton", "H.E. the Hon. Silvestre H. Bello III"]
    assert len(event.speakers) == 8
    assert "Hon. Cláudia Pereira" in {s.name for s in event.speakers}
    assert "2.2 billion workers" in event.description
    assert "conducted in English and will be recorded" in event.description
    assert event.registration_url is not None
    assert event.registration_url.startswith("https://")
    assert event.language == "en"
    assert get_event(db, "ilo-migrant-workers-2020") == event == get_event(db, str(event.id))
    assert list_events(db) == [event]


def test_a_slug_is_unique(db: Database) -> None:
    add_event(db, read_event_file(SAMPLE))
    with pytest.raises(AlreadyExistsError):
        add_event(db, read_event_file(SAMPLE))


def test_unknown_event_is_not_found(db: Database) -> None:
    with pytest.raises(NotFoundError, match="campaign events list"):
        get_event(db, "nope")


def doc(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "title": "T",
        "start": datetime(2026, 6, 26, 13, 30),
        "end": datetime(2026, 6, 26, 15, 0),
        "timezone": "Europe/Zurich",
        "registration_url": "https://example.org/r",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"end": datetime(2026, 6, 26, 13, 0)}, "end: must be after start"),
        ({"timezone": "Europe/Geneva"}, "timezone: 'Europe/Geneva' is not an IANA time zone"),
        (
            {"registration_url": "javascript:alert(1)"},
            "registration_url: must be an http(s) URL, not 'javascript:alert(1)'",
        ),
        ({"join_url": "ftp://example.org/x"}, "join_url"),
        ({"title": None}, "title: is required"),
        ({"title": " \t "}, "title: is required"),  # blanks only: an event with no title was made
        ({"start": date(2026, 6, 26)}, "start: needs a time of day"),
        ({"start": "tomorrow"}, "start: 'tomorrow' is not a date and time"),
        ({"venue": "Geneva"}, "venue: unknown key"),
        ({"start": datetime(2026, 3, 29, 2, 30), "end": datetime(2026, 3, 29, 4)}, "does not exist in Europe/Zurich"),
        ({"start": datetime(2026, 10, 25, 2, 30), "end": datetime(2026, 10, 25, 4)}, "happens twice"),
        # An overflow converting to UTC (a traceback) before; and a reminder's offset would overflow near the end.
        ({"start": datetime(1, 1, 1, 0, 30)}, "start: 0001-01-01 is out of range: the year must be 1900 to 2999"),
        ({"end": "9999-12-31T23:30-01:00"}, "end: 9999-12-31 is out of range"),
        ({"speakers": [{"name": "A", "title": "x"}]}, "speakers[1]"),
        ({"organiser": {"name": "O", "email": "not-an-address"}}, "email"),
        ({"language": "xx-QQ"}, "locale"),
    ],
)
def test_invalid_events_are_refused_with_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_event_document(doc(**changes), "e.toml", default_slug="e")
    assert message in str(exc.value)
    assert str(exc.value).startswith("e.toml: ")


def test_offset_datetimes_and_strings_are_accepted() -> None:
    values = parse_event_document(
        doc(start="2026-06-26T13:30:00+02:00", end="2026-06-26 15:00"), "e.toml", default_slug="My Event"
    )
    assert values["starts_at"] == datetime(2026, 6, 26, 11, 30, tzinfo=UTC)
    assert values["ends_at"] == datetime(2026, 6, 26, 13, 0, tzinfo=UTC)
    assert values["slug"] == "my-event"


@pytest.mark.parametrize(
    ("file_stem", "expected"),
    [
        ("ILO Webinar 2020", "ilo-webinar-2020"),
        # Accents are dropped, not the letters that carry them (this used to give "r-union-d-t-2020").
        ("Réunion d'été 2020", "reunion-d-ete-2020"),
        ("Re\u0301union", "reunion"),
        ("İstanbul", "istanbul"),
        # Cut at 100 characters with no hyphen left at the end (a cut used to leave one, refused as a slug).
        ("a" * 99 + " b", "a" * 99),
        ("x" * 150, "x" * 100),
    ],
)
def test_a_slug_from_the_file_name_is_ascii_lower_case_for_urls(file_stem: str, expected: str) -> None:
    assert parse_event_document(doc(), "e.toml", default_slug=file_stem)["slug"] == expected


@pytest.mark.parametrize("slug", ["My-Event", "a--b", "-a", "a-", "café", "a_b", "a.b", "a b", "a" * 101, "会议"])
def test_a_given_slug_must_already_be_a_url_slug(slug: str) -> None:
    with pytest.raises(ValidationError, match=r"slug: .* must be lower-case letters, digits and single hyphens"):
        parse_event_document(doc(slug=slug), "e.toml", default_slug="e")


def test_a_file_name_with_no_letter_or_digit_asks_for_a_slug() -> None:
    with pytest.raises(
        ValidationError, match=r"^e\.toml: slug: the file name '会议' has no letter or digit to make one"
    ):
        parse_event_document(doc(), "e.toml", default_slug="会议")


@pytest.mark.parametrize("slug", ["ilo-webinar-2020", "a", "2020-a", "a" * 100])
def test_a_url_slug_is_accepted_as_given(slug: str) -> None:
    assert parse_event_document(doc(slug=slug), "e.toml", default_slug="e")["slug"] == slug


def test_moving_a_session_keeps_its_wall_clock_time_across_dst() -> None:
    values = read_event_file(SAMPLE)
    start, end = move_to_date(values["starts_at"], values["ends_at"], "Europe/Zurich", date(2026, 12, 11))
    assert wall_clock(start, "Europe/Zurich") == datetime(2026, 12, 11, 13, 30)
    assert start == datetime(2026, 12, 11, 12, 30, tzinfo=UTC)  # CET in December
    assert end - start == values["ends_at"] - values["starts_at"]


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no such file"):
        read_event_file(tmp_path / "none.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("title = \n")
    with pytest.raises(ValidationError, match="not valid TOML"):
        read_event_file(broken)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # The repro: this broke the Register button and went into the .ics URL.
        (
            {"registration_url": 'https://evil.example.org/" onclick="alert(1)'},
            "registration_url: must not contain quotes, spaces, angle brackets, backslashes or control characters",
        ),
        ({"registration_url": "https://evil.example.org/'x"}, "registration_url: must not contain"),
        ({"registration_url": "https://evil.example.org/`x"}, "registration_url: must not contain"),
        ({"join_url": "https://ex ample.org/"}, "join_url: must not contain"),
        ({"join_url": "https://example.org/<script>"}, "join_url: must not contain"),
        ({"join_url": "https://example.org/a\\b"}, "join_url: must not contain"),
        ({"join_url": "https://example.org/\u202egnp.exe"}, "join_url: must not contain"),
        ({"join_url": "https://example.org/\u00a0"}, "join_url: must not contain"),
        ({"join_url": "https://"}, "join_url: must be an http(s) URL with a host, not 'https://'"),
        ({"join_url": "https:///path"}, "join_url: must be an http(s) URL with a host, not 'https:///path'"),
        ({"join_url": "//example.org/x"}, "join_url: must be an http(s) URL, not '//example.org/x'"),
        ({"join_url": "https://example.org:99999/"}, "join_url: has an invalid port: 'https://example.org:99999/'"),
        # urlsplit raised ValueError (a traceback) on an unbalanced IPv6 bracket; hosts follow the DNS rule.
        ({"join_url": "https://[::1/"}, "join_url: has an invalid host: 'https://[::1/'"),
        ({"join_url": "https://[zz]/"}, "join_url: has an invalid host: 'https://[zz]/'"),
        ({"join_url": "https://-.-/"}, "join_url: has an invalid host: 'https://-.-/'"),
        ({"join_url": "https://a..b/"}, "join_url: has an invalid host: 'https://a..b/'"),
        ({"join_url": "https://example.org:0/"}, "join_url: has an invalid port: 'https://example.org:0/'"),
        ({"join_url": "https://bank.example.com@evil.example.org/"}, "join_url: must not contain a user name"),
        ({"organiser": {"name": "O", "emial": "o@example.org"}}, "organiser: unknown key 'emial' (known: email, name)"),
        ({"organiser": "O"}, "organiser: must be a table with name and email"),
        ({"organiser": {"name": "O", "email": "not-an-address"}}, "organiser.email: 'not-an-address' is not a valid"),
        ({"organiser": {"name": 3}}, "organiser.name: must be text"),
        ({"speakers": [{"name": "A", "title": "x"}]}, "speakers[1]: unknown key 'title' (known: name, role)"),
        ({"speakers": [{"name": "A"}, {"role": "Chair"}]}, "speakers[2].name: is required"),
        ({"speakers": ["A"]}, "speakers[1]: must be a table with name and role"),
    ],
)
def test_urls_and_nested_keys_are_refused_with_the_key_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_event_document(doc(**changes), "e.toml", default_slug="e")
    assert str(exc.value) == f"e.toml: {message}" or str(exc.value).startswith(f"e.toml: {message}"), str(exc.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/r",
        "http://example.org:8080/r?a=1&b=2#top",
        "https://zoom.example.org/j/123?pwd=a%20b",
        "https://bücher.example/anmeldung",
        "HTTPS://EXAMPLE.ORG/R",
        "https://[2001:db8::1]:8443/r",
        "http://192.0.2.10/r",
        "https://example.org./r",
    ],
)
def test_good_urls_are_kept_as_written(url: str) -> None:
    values = parse_event_document(doc(registration_url=url, join_url=url), "e.toml", default_slug="e")
    assert values["registration_url"] == values["join_url"] == url


def test_names_and_text_of_an_event_lose_bidi_and_format_characters() -> None:
    values = parse_event_document(
        doc(
            title="Webinar\u202e on migration\u200b",
            description="First\u2066 paragraph.\n\nSecond\u0000 one\ufeff.",
            organiser={"name": "Org\u202aani\u200fser", "email": "o@example.org"},
            speakers=[{"name": "Bob\u202egnp.exe", "role": "Chair\u2069"}, {"name": "👩\u200d💻 Ana"}],
        ),
        "e.toml",
        default_slug="e",
    )
    assert values["title"] == "Webinar on migration"
    assert values["description"] == "First paragraph.\n\nSecond one."
    assert values["organiser_name"] == "Organiser"
    assert values["speakers"] == [{"name": "Bobgnp.exe", "role": "Chair"}, {"name": "👩\u200d💻 Ana", "role": None}]
