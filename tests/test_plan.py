"""``campaign status`` and ``campaign plan``: a campaign with the default waves, contacts in zones far apart
(Kiritimati UTC+14, Manila UTC+8, St John's UTC-2:30, one without a zone) and a weekday send window."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from campaign.cli import cli
from campaign.config import load_settings
from campaign.models import CampaignStatus, RegistrationSource, WaveStatus
from campaign.render.localtime import organiser_clock
from campaign.services.campaigns import get_campaign
from campaign.services.scheduling import fire_due
from campaign.services.transitions import transition
from campaign.store import registrations
from campaign.store.engine import Database
from scheduler.lock import ServiceLock
from tests.conftest import cli_ok
from tests.test_delivery import TEMPLATES
from tests.test_scheduling import add_contacts, add_event_at, launch_at

# Tuesday 18 June 2030, 14:00 in Zurich (12:00 UTC), organiser's zone Europe/Zurich (CEST, UTC+2).
START = datetime(2030, 6, 18, 12, 0, tzinfo=UTC)
# Launched on Friday 7 June 2030 at 18:00 UTC: after 17:00 everywhere west of Manila, so the invitation
# waits for Monday's window in most zones.
LAUNCHED = datetime(2030, 6, 7, 18, 0, tzinfo=UTC)
PEOPLE = {
    "kiritimati@example.org": "Pacific/Kiritimati",
    "manila@example.org": "Asia/Manila",
    "stjohns@example.org": "America/St_Johns",
    "nozone@example.org": "",
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        '[database]\nurl = "sqlite:///campaign.db"\n'
        f'[paths]\ntemplates = "{TEMPLATES}"\ndata = "data"\n'
        '[waves]\nwindow = "mon-fri 09:00-17:00"\n'
    )
    return path


@pytest.fixture
def launched(config: Path, tmp_path: Path) -> Iterator[Database]:
    """Campaign ``c`` with the default waves, launched at LAUNCHED; Manila's contact has registered."""
    run = cli_ok(config)
    run("init")
    db = Database(f"sqlite:///{tmp_path / 'campaign.db'}")
    add_contacts(db, tmp_path, PEOPLE)
    add_event_at(db, START)
    run("create", "--event", "talk", "--list", "guests", "--name", "c", "--waves", "default")
    settings = load_settings(config, environ={})
    launch_at(db, settings, LAUNCHED)
    details = get_campaign(db, "c")
    invitation = next(w for w in details.waves if w.name == "invitation")
    with db.write() as conn:
        message, manila = conn.exec_driver_sql(
            "SELECT m.id, m.contact_id FROM messages m JOIN contacts c ON c.id = m.contact_id "
            "WHERE c.email = 'manila@example.org' AND m.wave_id = ?",
            (invitation.id,),
        ).one()
        registered_at = LAUNCHED + timedelta(hours=1)
        registration = registrations.Registration(
            details.event.id, manila, RegistrationSource.LINK, registered_at, message
        )
        registrations.record(conn, [registration], registered_at)
    yield db
    db.dispose()


def test_status_shows_each_wave_with_its_time_audience_messages_and_expiry(config: Path, launched: Database) -> None:
    out = cli_ok(config)("status", "c")
    lines = out.splitlines()
    assert lines[0] == "Campaign c: sending; event talk; times in Europe/Zurich and UTC"
    assert lines[1].startswith("Scheduler service: not running")
    # St John's is inside its window at once (15:00 local): its invitation is due at the launch.
    assert lines[2] == "Next send: 2030-06-07 20:00 +02:00 (2030-06-07 18:00 UTC)"
    rows = {line.split()[0]: line.split() for line in lines[5:10]}
    assert list(rows) == ["invitation", "last-chance", "reminder-1d", "reminder-1h", "follow-up"]  # time order
    # The invitation fired: its size is its messages; the others' audiences are counted now (Manila registered).
    assert " ".join(rows["invitation"][9:]) == ("4 queued 4 2030-06-07 18:00 UTC 2030-06-18 12:00 UTC enqueued")
    assert rows["last-chance"][1:9] == ["last-chance", "2030-06-11", "14:00", "+02:00", "2030-06-11", "12:00", "UTC",
                                        "not-registered"]  # fmt: skip
    assert rows["last-chance"][9] == "3"
    assert rows["reminder-1d"][8:10] == ["registered", "1"]
    assert rows["reminder-1h"][2:5] == ["2030-06-18", "13:00", "+02:00"]
    assert rows["follow-up"][8:10] == ["all", "4"]
    assert rows["follow-up"][-4:] == ["2030-07-02", "13:00", "UTC", "pending"]  # 14 days after the end
    # Nothing due now: what sends them then (a new user's review: `send` said nothing was sent, and no more).
    assert (
        "queued: next due at 2030-06-07 18:00:00 UTC; `campaign serve` sends each at its time (or `campaign send "
        "--wait`)" in lines
    )


def test_status_says_when_the_service_runs(config: Path, launched: Database) -> None:
    with ServiceLock(launched):
        out = cli_ok(config)("status", "c")
    assert f"Scheduler service: running (pid {os.getpid()})" in out.splitlines()


def test_plan_shows_each_zones_send_time_wave_by_wave(config: Path, launched: Database) -> None:
    out = cli_ok(config)("plan", "c")
    waves = out.split("\n\n")
    assert waves[0] == "Campaign c: sending; organiser's zone Europe/Zurich; local times in en"
    # The waves still to come, in time order (the invitation fired).
    assert [w.split()[0] for w in waves[1:]] == ["last-chance", "reminder-1d", "reminder-1h", "follow-up"]
    reminder = waves[2].splitlines()
    assert reminder[0] == (
        "reminder-1d (reminder, -1d) to registered, 1 contact now: Mon, Jun 17, 2:00 PM (Europe/Zurich) = "
        "Mon, Jun 17, 12:00 PM UTC; expires 2030-06-18 12:00 UTC"
    )
    # One line per zone, soonest first: each at 09:00 local on the next weekday, or at once when inside.
    assert reminder[1:] == [
        "  send window mon-fri 09:00-17:00, in each recipient's local time:",
        "  America/St_Johns (Newfoundland Daylight Time): Mon, Jun 17, 9:30 AM local = Mon, Jun 17, 12:00 PM UTC "
        "(0 contacts now)",
        "  no zone, the organiser's Europe/Zurich: Mon, Jun 17, 2:00 PM local = Mon, Jun 17, 12:00 PM UTC "
        "(0 contacts now)",
        "  Pacific/Kiritimati (Line Islands Time): Tue, Jun 18, 9:00 AM local = Mon, Jun 17, 7:00 PM UTC "
        "(0 contacts now)",
        "  Asia/Manila (Philippine Standard Time): Tue, Jun 18, 9:00 AM local = Tue, Jun 18, 1:00 AM UTC "
        "(1 contact now)",
    ]
    # An hour before the start, Manila and Kiritimati are past 17:00: the window leaves them nothing, and the
    # plan says so before the wave fires.
    last = waves[3].splitlines()
    assert (
        "  Asia/Manila (Philippine Standard Time): not sent: no time inside the send window mon-fri "
        "09:00-17:00 in Asia/Manila before the wave expired at 2030-06-18 14:00 Central European Summer Time "
        "(12:00 UTC) (1 contact now)" in last
    )
    assert waves[4].startswith("follow-up (follow-up, +1d) to all, 4 contacts now: Wed, Jun 19, 2:00 PM")


def test_plan_of_a_wave_without_a_window_gives_one_instant_and_the_local_extremes(
    config: Path, launched: Database
) -> None:
    run = cli_ok(config)
    run("waves", "add", "c", "early", "--kind", "reminder", "--at", "-2d", "--audience", "all", "--window", "none")
    out = run("plan", "c")
    (wave,) = [w for w in out.split("\n\n") if w.startswith("early ")]
    assert wave.splitlines() == [
        "early (reminder, -2d) to all, 4 contacts now: Sun, Jun 16, 2:00 PM (Europe/Zurich) = "
        "Sun, Jun 16, 12:00 PM UTC; expires 2030-06-18 12:00 UTC",
        "  no send window: everyone at Sun, Jun 16, 12:00 PM UTC, in 4 zones",
        "  earliest local time: Sun, Jun 16, 9:30 AM in America/St_Johns (Newfoundland Daylight Time)",
        "  latest local time:   Mon, Jun 17, 2:00 AM in Pacific/Kiritimati (Line Islands Time)",
    ]


def test_plan_and_status_of_an_unknown_campaign_are_one_line(config: Path, launched: Database) -> None:
    for command in ("plan", "status"):
        result = CliRunner().invoke(cli, ["--config", str(config), command, "nope"])
        assert result.exit_code == 1
        assert result.output == "Error: no campaign 'nope' (see `campaign list`)\n"


def test_a_sent_campaign_has_nothing_still_to_come(config: Path, launched: Database) -> None:
    with launched.write() as conn:
        conn.exec_driver_sql("UPDATE waves SET status = 'cancelled' WHERE status = 'pending'")
    out = cli_ok(config)("plan", "c")
    assert "Nothing is still to come: no wave is left to send (see `campaign status c`)." in out


def _rows(status_output: str) -> dict[str, str]:
    """``campaign status``'s table rows by wave name (the lines after the header and its rule)."""
    lines = status_output.splitlines()
    header = next(n for n, line in enumerate(lines) if line.startswith("wave "))
    # A row is the wave's name and its columns, two spaces apart; the lines below the table are sentences.
    rows = [match for line in lines[header + 2 :] if (match := re.match(r"(\S+)  ", line))]
    return {match[1]: match.string for match in rows}


def test_status_and_plan_of_a_draft_say_which_waves_a_launch_now_would_skip(config: Path, tmp_path: Path) -> None:
    """The event is 10 days away: a -12d reminder's time has passed, a launch now skips it; the -7d one goes."""
    run = cli_ok(config)
    run("init")
    db = Database(f"sqlite:///{tmp_path / 'campaign.db'}")
    add_contacts(db, tmp_path, PEOPLE)
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=10)
    add_event_at(db, start)
    db.dispose()
    run("create", "--event", "talk", "--list", "guests", "--name", "c", "--waves", "default")
    run("waves", "add", "c", "early", "--kind", "reminder", "--at", "-12d", "--window", "none")
    own = organiser_clock(start - timedelta(days=12), "Europe/Zurich")  # "... Central European ... (HH:MM UTC)"

    status = run("status", "c")
    row = _rows(status)["early"]
    assert "skipped if launched now" in row
    assert "pending" not in row
    assert f"early is skipped if launched now: its time ({own}) has already passed" in status.splitlines()
    # Its passed time is not the campaign's next send (the invitation at the launch is).
    next_send = next(line for line in status.splitlines() if line.startswith("Next send:"))
    assert f"{start - timedelta(days=12):%Y-%m-%d %H:%M}" not in next_send
    assert "skipped" not in _rows(status)["last-chance"]

    plan = run("plan", "c")
    blocks = plan.split("\n\n")
    assert f"early (reminder, -12d) is skipped if launched now: its time ({own}) has already passed" in blocks[0]
    assert [b.split()[0] for b in blocks[1:]] == ["invitation", "last-chance", "reminder-1d", "reminder-1h",
                                                  "follow-up"]  # fmt: skip

    # Cancelled before any launch, its waves are cancelled, none of them skipped.
    run("cancel", "c")
    status = run("status", "c")
    assert _rows(status)["early"].endswith("cancelled")
    assert "skipped" not in status
    assert "skipped" not in run("plan", "c")


def test_status_and_plan_say_which_waves_the_launch_skipped_and_why(config: Path, tmp_path: Path) -> None:
    """A -12d reminder planned before a launch 11 days before the event: skipped, whether the launch has marked
    it missed yet or not (a crash between the launch and its firing leaves it pending)."""
    run = cli_ok(config)
    run("init")
    db = Database(f"sqlite:///{tmp_path / 'campaign.db'}")
    add_contacts(db, tmp_path, PEOPLE)
    add_event_at(db, START)
    run("create", "--event", "talk", "--list", "guests", "--name", "c", "--waves", "default")
    run("waves", "add", "c", "early", "--kind", "reminder", "--at", "-12d", "--window", "none")
    campaign = get_campaign(db, "c").campaign
    with db.write() as conn:
        transition(conn, campaign.id, CampaignStatus.SENDING, now=LAUNCHED)
    why = (
        "its time (2030-06-06 14:00 Central European Summer Time (12:00 UTC)) had passed when the campaign was "
        "launched (2030-06-07 20:00 Central European Summer Time (18:00 UTC))"
    )
    for fired in (False, True):
        if fired:  # what the launch does next: the invitation fires, early is marked missed
            assert {f.wave: f.status for f in fire_due(db, load_settings(config, environ={}), LAUNCHED)} == {
                "invitation": WaveStatus.ENQUEUED, "early": WaveStatus.MISSED,
            }  # fmt: skip
        status = run("status", "c")
        row = _rows(status)["early"]
        assert "skipped at launch" in row
        assert "pending" not in row
        assert f"early was skipped at launch: {why}" in status.splitlines()
        assert "early missed" not in status  # said once, as a skip
        next_send = next(line for line in status.splitlines() if line.startswith("Next send:"))
        assert "2030-06-06" not in next_send

        plan = run("plan", "c")
        blocks = plan.split("\n\n")
        assert f"early (reminder, -12d) was skipped at launch: {why}" in blocks[0]
        assert "early" not in [b.split()[0] for b in blocks[1:]]
    db.dispose()
