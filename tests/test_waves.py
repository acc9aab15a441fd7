"""``campaign create --waves`` and ``campaign waves list|add|edit|remove``, through the real command line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select, update

from campaign.cli import cli
from campaign.models import WaveStatus
from campaign.services.campaigns import get_campaign
from campaign.store.engine import Database
from campaign.store.tables import waves
from tests.test_delivery import TEMPLATES

EVENT = """slug = "talk"
title = "A talk"
start = "{start}"
end = "{end}"
timezone = "Europe/Zurich"
registration_url = "https://events.example.org/register"
join_url = "https://events.example.org/join"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "sqlite:///data/c.db"\n[paths]\ndata = "data"\ntemplates = "{TEMPLATES}"\n')
    return path


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def ok(config: Path, *args: str) -> str:
    result = run(config, *args)
    assert result.exit_code == 0, result.output
    return result.output


def one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def setup(config: Path, tmp_path: Path) -> Path:
    ok(config, "init")
    (tmp_path / "c.csv").write_text("email,timezone\na@example.org,Asia/Manila\nb@example.org,\n")
    ok(config, "contacts", "import", str(tmp_path / "c.csv"), "--list", "guests")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=10)
    (tmp_path / "talk.toml").write_text(
        EVENT.format(start=start.isoformat(), end=(start + timedelta(hours=1)).isoformat())
    )
    ok(config, "events", "add", str(tmp_path / "talk.toml"))
    return config


def database(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'data' / 'c.db'}")


def test_create_gives_the_default_waves_or_none(setup: Path, tmp_path: Path) -> None:
    out = ok(setup, "create", "--event", "talk", "--list", "guests", "--name", "full")
    assert "waves: invitation, last-chance, reminder-1d, reminder-1h, follow-up" in out
    out = ok(setup, "create", "--event", "talk", "--list", "guests", "--name", "bare", "--waves", "none")
    assert "waves: invitation\n" in out
    listed = ok(setup, "waves", "list", "full")
    lines = listed.splitlines()
    assert lines[0] == "full (draft); times in Europe/Zurich and UTC"
    rows = {line.split()[0]: line.split() for line in lines[3:]}
    assert rows["invitation"][1:3] == ["invitation", "launch"]
    assert rows["last-chance"][1:3] == ["last-chance", "-7d"]
    assert "not-registered" in rows["last-chance"]
    assert "registered" in rows["reminder-1h"]
    assert rows["follow-up"][2] == "+1d"
    assert all("pending" in row for row in rows.values())


def test_add_edit_remove_and_their_refusals(setup: Path, tmp_path: Path) -> None:
    ok(setup, "create", "--event", "talk", "--list", "guests", "--name", "c", "--waves", "none")
    out = ok(setup, "waves", "add", "c", "nudge", "--kind", "reminder", "--at", "-2d", "--audience", "not-opened",
             "--window", "mon-fri 09:00-17:00", "--subject", "Two days to go")  # fmt: skip
    assert "Added wave nudge: reminder at -2d to not-opened, window mon-fri 09:00-17:00" in out
    one_line_error(
        run(setup, "waves", "add", "c", "nudge", "--kind", "reminder", "--at", "-1d"),
        "campaign c already has a wave 'nudge': give another name",
    )
    one_line_error(run(setup, "waves", "add", "c", "x", "--kind", "reminder", "--at", "yesterday"), "timing")
    one_line_error(run(setup, "waves", "add", "c", "x", "--kind", "nope", "--at", "-1d"), "kind 'nope'")
    one_line_error(run(setup, "waves", "add", "c", "x", "--kind", "reminder", "--at", "-1d", "--window", "9-5"), "x")
    one_line_error(
        run(setup, "waves", "add", "c", "x", "--kind", "reminder", "--at", "-1d", "--template", "missing"),
        "--template 'missing'",
    )
    one_line_error(run(setup, "waves", "add", "c", "x", "--at", "-1d"), "--kind")

    out = ok(setup, "waves", "edit", "c", "nudge", "--at", "-3d", "--window", "none", "--expires", "-1d")
    assert "Changed wave nudge: reminder at -3d to not-opened, planned" in out
    details = get_campaign(database(tmp_path), "c")
    nudge = next(w for w in details.waves if w.name == "nudge")
    assert (nudge.offset_seconds, nudge.subject, nudge.audience) == (-3 * 86400, "Two days to go", "not-opened")
    listed = ok(setup, "waves", "list", "c")
    assert "mon-fri" not in listed
    assert (details.event.starts_at - timedelta(days=1)).strftime("%Y-%m-%d %H:%M UTC") in listed

    # A bidi override (or any format character) would make the inbox show another subject than the one typed: it
    # goes, as from every text a person reads.
    ok(setup, "waves", "edit", "c", "nudge", "--subject", "Two days \u202eog ot")
    nudge = next(w for w in get_campaign(database(tmp_path), "c").waves if w.name == "nudge")
    assert nudge.subject == "Two days og ot"

    ok(setup, "waves", "remove", "c", "nudge")
    one_line_error(run(setup, "waves", "remove", "c", "nudge"), "no wave 'nudge'")
    # The invitation may go from a draft (and come back).
    ok(setup, "waves", "remove", "c", "invitation")
    ok(setup, "waves", "add", "c", "invitation", "--kind", "invitation", "--at", "launch")


def test_a_wave_that_fired_cannot_be_edited_or_removed(setup: Path, tmp_path: Path) -> None:
    ok(setup, "create", "--event", "talk", "--list", "guests", "--name", "c", "--waves", "none")
    ok(setup, "waves", "add", "c", "soon", "--kind", "reminder", "--at", "-1d")
    ok(setup, "launch", "c")
    for args in (("edit", "c", "invitation", "--at", "-1d"), ("remove", "c", "invitation")):
        one_line_error(run(setup, "waves", *args), "wave invitation of campaign c fired (enqueued)", "add a new wave")
    db = database(tmp_path)
    with db.write() as conn:
        conn.execute(update(waves).where(waves.c.name == "soon").values(status=WaveStatus.MISSED.value))
    one_line_error(run(setup, "waves", "edit", "c", "soon", "--at", "-2d"), "soon", "(missed)")
    # After launch: a new wave may still be added, and a pending one edited or removed.
    ok(setup, "waves", "add", "c", "later", "--kind", "reminder", "--at", "-1h")
    ok(setup, "waves", "edit", "c", "later", "--audience", "registered")
    ok(setup, "waves", "remove", "c", "later")
    listed = ok(setup, "waves", "list", "c")
    assert "enqueued" in listed
    assert "missed" in listed
    db.dispose()


def test_a_bad_default_wave_in_config_stops_create_with_one_line(setup: Path) -> None:
    setup.write_text(setup.read_text() + '[waves]\ndefault = ["nudge reminder -1d everybody"]\n')
    one_line_error(
        run(setup, "create", "--event", "talk", "--list", "guests"), "'waves.default'", "nudge reminder -1d everybody"
    )


def test_a_default_wave_that_could_never_be_sent_stops_create_with_one_line(setup: Path, tmp_path: Path) -> None:
    """The check `waves add` makes: a reminder at +1d (it expires at the event start) would never go out."""
    setup.write_text(setup.read_text() + '[waves]\ndefault = ["nudge reminder -1d all", "thanks reminder +1d all"]\n')
    one_line_error(
        run(setup, "create", "--event", "talk", "--list", "guests", "--name", "c"),
        "default wave thanks", "at or after it expires", "(a reminder expires at the event start)",
        "[waves] default in config.toml", "--waves none",
    )  # fmt: skip
    one_line_error(run(setup, "show", "c"), "no campaign 'c'")  # nothing was created
    out = ok(setup, "create", "--event", "talk", "--list", "guests", "--name", "c", "--waves", "none")
    assert "waves: invitation\n" in out


def test_a_default_wave_without_its_template_stops_create_unless_the_campaign_has_it(
    setup: Path, tmp_path: Path
) -> None:
    """The default templates lack the reminder: `create` says so, naming the wave; a campaign whose own template
    directory has it is fine (the same template set as `waves add --template` checks)."""
    templates = tmp_path / "templates"
    templates.mkdir()
    for path in TEMPLATES.iterdir():
        if not path.name.startswith("reminder."):
            (templates / path.name).write_bytes(path.read_bytes())
    setup.write_text(
        setup.read_text().replace(str(TEMPLATES), str(templates)) + '[waves]\ndefault = ["nudge reminder -1d all"]\n'
    )
    one_line_error(
        run(setup, "create", "--event", "talk", "--list", "guests", "--name", "c"),
        "default wave nudge", "template 'reminder'", "[waves] default in config.toml", "--waves none",
    )  # fmt: skip
    own = tmp_path / "own"
    own.mkdir()
    for path in TEMPLATES.glob("reminder.*"):
        (own / path.name).write_bytes(path.read_bytes())
    out = ok(setup, "create", "--event", "talk", "--list", "guests", "--name", "c", "--template", str(own))
    assert "waves: invitation, nudge\n" in out


def test_a_campaign_whose_invitation_has_no_template_is_not_created(setup: Path, tmp_path: Path) -> None:
    """paths.templates pointing nowhere (a config moved, run from another folder): create with the default waves
    advised --waves none, which then made a draft that could never launch, and nothing changes a campaign's
    template directory afterwards. Now refused either way, naming what to change."""
    setup.write_text(setup.read_text().replace(str(TEMPLATES), str(tmp_path / "nowhere")))
    for given in ("default", "none"):
        one_line_error(
            run(setup, "create", "--event", "talk", "--list", "guests", "--name", "c", "--waves", given),
            "the invitation's template 'invitation'", str(tmp_path / "nowhere"), "--template", "paths.templates",
        )  # fmt: skip
    one_line_error(run(setup, "show", "c"), "no campaign 'c'")  # nothing was created
    out = ok(setup, "create", "--event", "talk", "--list", "guests", "--name", "c", "--waves", "none",
             "--template", str(TEMPLATES))  # fmt: skip
    assert "waves: invitation\n" in out


def test_the_events_own_notices_are_not_added_by_hand(setup: Path) -> None:
    """A cancellation added by hand went out as METHOD:CANCEL for an event still on, taking it out of every
    recipient's calendar (a review's reproduction); an update by hand says the event changed when it did not."""
    ok(setup, "create", "--event", "talk", "--list", "guests", "--name", "c", "--waves", "none")
    for kind, command in (("cancellation", "cancel"), ("update", "update")):
        one_line_error(
            run(setup, "waves", "add", "c", "news", "--kind", kind, "--at", "launch"),
            f"wave news: a {kind} wave is made by `campaign events {command}`", "reminder",
        )  # fmt: skip
    ok(setup, "waves", "add", "c", "nudge", "--kind", "reminder", "--at", "-1d")
    one_line_error(run(setup, "waves", "edit", "c", "nudge", "--kind", "cancellation"), "`campaign events cancel`")
    assert "reminder" in ok(setup, "waves", "list", "c").split("nudge", 1)[1].split("\n", 1)[0]
    setup.write_text(setup.read_text() + '[waves]\ndefault = ["oops cancellation -1d all"]\n')
    one_line_error(run(setup, "lists"), "'waves.default'", "`campaign events cancel`")


def test_a_wave_to_who_attended_before_the_event_ends_is_refused(setup: Path) -> None:
    # Accepted, it could only wait for a report that cannot exist yet, then be missed (a web review).
    ok(setup, "create", "--event", "talk", "--list", "guests", "--name", "c", "--waves", "none")
    for audience in ("attended", "not-attended"):
        one_line_error(
            run(setup, "waves", "add", "c", "early", "--kind", "reminder", "--at", "-1d", "--audience", audience),
            f"wave early: who is {audience} is known only after the event ends", "(+1d)",
        )  # fmt: skip
    ok(setup, "waves", "add", "c", "thanks", "--kind", "follow-up", "--at", "+1d", "--audience", "attended")
    one_line_error(run(setup, "waves", "edit", "c", "thanks", "--at", "-1h"), "known only after the event ends")


def test_waves_list_says_a_wave_to_attendees_waits_for_the_attendee_report(setup: Path) -> None:
    ok(setup, "create", "--event", "talk", "--list", "guests", "--name", "c", "--waves", "none")
    ok(setup, "waves", "add", "c", "sorry", "--kind", "follow-up", "--at", "+2h", "--audience", "not-attended")
    listed = " ".join(ok(setup, "waves", "list", "c").split())
    assert "pending (waits for the attendee report: `campaign attendees import`)" in listed
    assert listed.count("waits for") == 1  # not the invitation


def test_a_wave_that_can_never_be_sent_is_refused(setup: Path, tmp_path: Path) -> None:
    """A reminder expires at the event start: one timed after it, or expiring before its own time, never goes."""
    ok(setup, "create", "--event", "talk", "--list", "guests", "--name", "c", "--waves", "none")
    one_line_error(
        run(setup, "waves", "add", "c", "thanks", "--kind", "reminder", "--at", "+1d"),
        "wave thanks", "at or after it expires", "(a reminder expires at the event start)", "--expires", "--kind",
    )  # fmt: skip
    one_line_error(
        run(setup, "waves", "add", "c", "nudge", "--kind", "reminder", "--at", "-1h", "--expires", "-2h"),
        "wave nudge", "at or after it expires", "--expires",
    )  # fmt: skip
    ok(setup, "waves", "add", "c", "thanks", "--kind", "follow-up", "--at", "+1d")
    ok(setup, "waves", "add", "c", "late", "--kind", "reminder", "--at", "+1h", "--expires", "+2h")
    ok(setup, "waves", "add", "c", "nudge", "--kind", "reminder", "--at", "-1h")
    one_line_error(run(setup, "waves", "edit", "c", "nudge", "--at", "+1h"), "wave nudge", "at or after it expires")
    one_line_error(run(setup, "waves", "edit", "c", "thanks", "--kind", "reminder"), "wave thanks", "--kind")
    # A refused edit changes nothing.
    nudge = next(w for w in get_campaign(database(tmp_path), "c").waves if w.name == "nudge")
    assert nudge.offset_seconds == -3600


def test_an_unrelated_edit_keeps_a_send_at_with_seconds(setup: Path, tmp_path: Path) -> None:
    ok(setup, "create", "--event", "talk", "--list", "guests", "--name", "c", "--waves", "none")
    at = (datetime.now(UTC) + timedelta(days=2)).replace(second=30, microsecond=0)
    out = ok(setup, "waves", "add", "c", "nudge", "--kind", "reminder", "--at", at.isoformat())
    assert f"at {at:%Y-%m-%dT%H:%M:%S}Z" in out
    ok(setup, "waves", "edit", "c", "nudge", "--audience", "registered")
    nudge = next(w for w in get_campaign(database(tmp_path), "c").waves if w.name == "nudge")
    assert nudge.send_at == at


def test_waves_list_shows_a_wave_s_own_time_when_it_passes_before_launch(setup: Path, tmp_path: Path) -> None:
    """The event is 10 days away: a -12d reminder's time passes before the launch; it is skipped, not sent."""
    ok(setup, "create", "--event", "talk", "--list", "guests", "--name", "c", "--waves", "none")
    ok(setup, "waves", "add", "c", "early", "--kind", "reminder", "--at", "-12d")
    start = get_campaign(database(tmp_path), "c").event.starts_at
    own = (start - timedelta(days=12)).strftime("%Y-%m-%d %H:%M UTC")
    rows = {line.split()[0]: line for line in ok(setup, "waves", "list", "c").splitlines()[3:]}
    assert own in rows["early"]
    assert "passes before launch" in rows["early"]
    assert "passes before launch" not in rows["invitation"]
    ok(setup, "launch", "c")
    rows = {line.split()[0]: line for line in ok(setup, "waves", "list", "c").splitlines()[3:]}
    assert own in rows["early"]
    assert "skipped at launch" in rows["early"]
    assert "missed" in rows["early"]


def test_launch_says_which_waves_it_skipped_and_who_sends_the_rest(setup: Path, tmp_path: Path) -> None:
    ok(setup, "create", "--event", "talk", "--list", "guests", "--name", "c", "--waves", "none")
    ok(setup, "waves", "add", "c", "early", "--kind", "reminder", "--at", "-12d")
    ok(setup, "waves", "add", "c", "nudge", "--kind", "reminder", "--at", "launch")
    ok(setup, "waves", "add", "c", "soon", "--kind", "reminder", "--at", "-1d")
    # A wave made unsendable behind the CLI's back (as an event moved earlier can): it expired before it was due.
    db = database(tmp_path)
    with db.write() as conn:
        past = datetime.now(UTC) - timedelta(hours=1)
        conn.execute(update(waves).where(waves.c.name == "nudge").values(expires_at=past))
    db.dispose()
    out = ok(setup, "launch", "c")
    assert "Launched c: 2 messages queued, 0 suppressed." in out
    assert "Missed wave early: its time" in out
    assert "had passed when the campaign was launched" in out
    assert "Missed wave nudge: it expired before it was due: due at" in out
    assert "scheduler stopped" not in out
    assert "1 wave still to come (soon): `campaign serve` sends each at its time" in out
    assert "`campaign send --campaign c` delivers what is queued now" in out


def test_launch_with_no_wave_left_points_to_send_only(setup: Path) -> None:
    ok(setup, "create", "--event", "talk", "--list", "guests", "--name", "c", "--waves", "none")
    out = ok(setup, "launch", "c")
    assert "Missed" not in out
    assert "campaign serve" not in out
    assert "Next: campaign send --campaign c" in out


def test_a_wave_added_to_or_changed_in_a_launched_campaign_must_render_first(setup: Path, tmp_path: Path) -> None:
    # A new user's review: once launched no check runs before a wave fires, and a subject naming a variable no
    # contact has was accepted, then failed every message of its wave.
    ok(setup, "create", "--event", "talk", "--list", "guests", "--name", "c")
    ok(setup, "launch", "c")
    bad = run(
        setup, "waves", "add", "c", "x", "--kind", "reminder", "--at", "-2d", "--subject", "Hi {{ contact.nosuch }}"
    )
    one_line_error(
        bad, "wave x was not added: it does not render: the subject: undefined variable contact.nosuch", "2 contacts"
    )
    ok(setup, "waves", "add", "c", "y", "--kind", "reminder", "--at", "-2d", "--subject", "Soon: {{ event.title }}")
    one_line_error(
        run(setup, "waves", "edit", "c", "y", "--subject", "{{ nosuch }}"),
        "wave y was not changed: it does not render: the subject: undefined variable nosuch",
    )
    one_line_error(run(setup, "waves", "edit", "c", "y", "--template", "broken"), "wave y: --template 'broken'")
    db = database(tmp_path)
    with db.read() as conn:
        assert dict(conn.execute(select(waves.c.name, waves.c.subject).where(waves.c.name.in_(["x", "y"]))).all()) == {
            "y": "Soon: {{ event.title }}"  # x not added, y unchanged
        }
    db.dispose()
    # A draft's waves are checked against the whole audience at its launch, as before.
    ok(setup, "create", "--event", "talk", "--list", "guests", "--name", "d", "--waves", "none")
    ok(setup, "waves", "add", "d", "z", "--kind", "reminder", "--at", "-2d", "--subject", "{{ contact.nosuch }}")
    refused = run(setup, "launch", "d")
    assert refused.exit_code == 1
    assert "the subject: undefined variable contact.nosuch" in refused.output
