"""References on the command line: ASCII digits are an id, anything else a name; all-digit names and slugs are
refused where they are made, so that every reference means one thing."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from campaign.cli import cli
from campaign.exceptions import NotFoundError, ValidationError
from campaign.rules.references import is_id_reference, refuse_all_digit_name
from campaign.services.campaigns import create_campaign
from campaign.services.contact_import import import_contacts
from campaign.services.events import add_event, get_event, read_event_file
from campaign.store.engine import Database
from tests.conftest import DATA, cli_ok

EVENT = DATA / "events" / "ilo-migrant-workers-2020.toml"


@pytest.mark.parametrize(("ref", "is_id"), [("1", True), ("12345", True), ("007", True), ("", False), ("²", False),
                                            ("١٢", False), ("12a", False), ("-1", False), ("1 2", False)])  # fmt: skip
def test_only_ascii_digits_are_an_id(ref: str, is_id: bool) -> None:
    assert is_id_reference(ref) is is_id


@pytest.mark.parametrize("name", ["1", "007", "12345"])
def test_an_all_digit_name_is_refused_by_the_rule(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        refuse_all_digit_name(name, what="campaign name", thing="a campaign", fix="give a name with a letter in it")
    assert str(caught.value) == (
        f"campaign name {name!r} is all digits, which commands read as a campaign id; give a name with a letter in it"
    )


@pytest.mark.parametrize("name", ["12a", "²", "١٢", "2020-webinar", "-1"])
def test_a_name_with_anything_but_ascii_digits_passes_the_rule(name: str) -> None:
    refuse_all_digit_name(name, what="event slug", thing="an event", fix="add a letter")


def event_file(tmp_path: Path, name: str, slug: str | None) -> Path:
    """The sample event under another file name, with ``slug`` (or none: the file name gives it)."""
    text = EVENT.read_text().replace('slug = "ilo-migrant-workers-2020"\n', f'slug = "{slug}"\n' if slug else "")
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(("name", "slug"), [("2020.toml", None), ("event.toml", "12345")])
def test_an_all_digit_event_slug_is_refused(db: Database, tmp_path: Path, name: str, slug: str | None) -> None:
    values = read_event_file(event_file(tmp_path, name, slug))
    with pytest.raises(ValidationError, match=r"event slug '\d+' is all digits, which commands read as an event id"):
        add_event(db, values)


def test_an_event_slug_with_a_letter_is_a_name(db: Database, tmp_path: Path) -> None:
    event = add_event(db, read_event_file(event_file(tmp_path, "event.toml", "2020-webinar")))
    assert get_event(db, "2020-webinar") == event
    assert get_event(db, str(event.id)) == event


def test_cli_events_add_refuses_an_all_digit_slug(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("")
    cli_ok(config)("init")
    result = CliRunner().invoke(
        cli, ["--config", str(config), "events", "add", str(event_file(tmp_path, "1.toml", None))]
    )
    assert result.exit_code == 1
    assert result.output == (
        "Error: event slug '1' is all digits, which commands read as an event id; "
        'set a slug with a letter in it in the event file (slug = "...")\n'
    )


@pytest.mark.parametrize("ref", ["²", "١٢", "99999999999999999999999", " 424242 "])
def test_an_event_reference_that_names_nothing_is_not_found_not_a_traceback(db: Database, ref: str) -> None:
    """``int()`` reads "١٢" and refuses "²"; a number past bigint overflows the driver: each is simply no event."""
    with pytest.raises(NotFoundError):
        get_event(db, ref)


def test_a_campaign_or_list_name_past_the_column_size_is_refused(db: Database, tmp_path: Path) -> None:
    """A 100,000-character name was accepted: tables printed it whole, and its List-Id was 133 KB."""
    people = tmp_path / "people.csv"
    people.write_text("email\na@example.org\n")
    with pytest.raises(ValidationError, match="the list name is 201 characters long; give one of at most 200"):
        import_contacts(db, people, "l" * 201)
    import_contacts(db, people, "l" * 200)  # the longest there may be
    event = add_event(db, read_event_file(event_file(tmp_path, "long.toml", "e" * 100)))
    with pytest.raises(ValidationError, match="the campaign name is 100000 characters long"):
        create_campaign(db, event_ref=event.slug, list_name="l" * 200, name="n" * 100_000)
    made = create_campaign(db, event_ref=event.slug, list_name="l" * 200)  # the default name is cut to fit
    assert len(made.campaign.name) == 200
