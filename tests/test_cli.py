"""The command line: documented, thin, and honest about errors."""

from __future__ import annotations

import email
import email.utils
import json
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from ical.calendar_stream import IcsCalendarStream

from campaign.cli import cli
from campaign.rules import routes
from tests.conftest import DATA

ROOT = Path(__file__).resolve().parent.parent


def command_paths(group: click.Group = cli, prefix: str = "campaign") -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        yield path, command
        if isinstance(command, click.Group):
            yield from command_paths(command, path)


def test_every_command_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [path for path, _ in command_paths() if f"`{path}" not in readme]
    assert missing == []


def test_every_option_of_every_command_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [
        f"{path} {opt}"
        for path, command in command_paths()
        for param in command.params
        if isinstance(param, click.Option)
        for opt in param.opts
        if opt.startswith("--") and opt != "--help" and opt not in readme
    ]
    assert missing == []


@pytest.mark.parametrize("path", [p for p, _ in command_paths()])
def test_every_command_has_help(path: str) -> None:
    result = CliRunner().invoke(cli, [*path.split()[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text('[database]\nurl = "sqlite:///data/c.db"\n[paths]\ndata = "data"\n')
    return path


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def test_commands_before_init_say_what_to_run(config: Path) -> None:
    result = run(config, "lists")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert "campaign init" in result.output


def test_a_full_session(config: Path, tmp_path: Path) -> None:
    assert run(config, "init").exit_code == 0
    assert (tmp_path / "data" / "c.db").exists()
    assert (tmp_path / "data" / "secret.key").exists()
    assert "up to date" in run(config, "db", "status").output

    imported = run(config, "contacts", "import", str(DATA / "contacts.csv"), "--list", "webinar")
    assert imported.exit_code == 0, imported.output
    assert "41 new" in imported.output
    assert "Flagged line" in imported.output

    listed = run(config, "contacts", "list", "--list", "webinar", "--search", "manila", "--limit", "100")
    assert listed.exit_code == 0
    assert listed.output.splitlines()[0].split() == ["email", "name", "timezone", "locale", "country", "organisation"]
    flagged = run(config, "contacts", "list", "--no-timezone")
    assert len(flagged.output.strip().splitlines()) == 3  # header, rule, one contact

    shown = run(config, "contacts", "show", "MARIA.SANTOS@dole.example.org")
    assert shown.exit_code == 0
    assert "Asia/Manila" in shown.output
    assert "webinar" in shown.output
    # Times as every command shows them: seconds, no fraction, the zone named (this machine's, then UTC).
    since = next(line for line in shown.output.splitlines() if line.startswith("added:"))
    assert re.fullmatch(r"added:\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+( \(.*UTC\))?", since), since

    out = tmp_path / "export.csv"
    exported = run(config, "contacts", "export", "--list", "webinar", "-o", str(out))
    assert exported.exit_code == 0
    assert len(out.read_text().splitlines()) == 42
    assert "job_title" in out.read_text().splitlines()[0]

    all_lists = run(config, "lists").output
    assert "webinar  41" in all_lists
    assert "+00:00" not in all_lists  # the time as instant() shows it, not a raw timestamp

    added = run(config, "events", "add", str(DATA / "events" / "ilo-migrant-workers-2020.toml"))
    assert added.exit_code == 0, added.output
    assert "2020-06-26 13:30 Central European Summer Time" in added.output
    assert "2020-06-26 11:30 UTC" in added.output
    assert "ilo-migrant-workers-2020" in run(config, "events", "list").output
    shown_event = run(config, "events", "show", "ilo-migrant-workers-2020")
    assert "Michelle Leighton" in shown_event.output

    again = run(config, "events", "add", str(DATA / "events" / "ilo-migrant-workers-2020.toml"))
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_errors_are_one_line_and_debug_shows_the_traceback(config: Path) -> None:
    run(config, "init")
    result = run(config, "contacts", "show", "nobody@example.org")
    assert result.exit_code == 1
    assert result.output == "Error: no contact 'nobody@example.org'\n"
    debug = CliRunner().invoke(cli, ["--config", str(config), "--debug", "contacts", "show", "nobody@example.org"])
    assert debug.exit_code == 1
    assert debug.exception is not None
    assert type(debug.exception).__name__ == "NotFoundError"


HUGE = "99999999999999999999"


@pytest.mark.parametrize(
    "args",
    [
        ["tracking", "purge", "--days", HUGE],
        ["tracking", "purge", "--days", "1000000"],
        ["contacts", "list", "--limit", HUGE],
        ["contacts", "list", "--offset", HUGE],
        ["report", "--all", "--undelivered", HUGE],
        ["mailbox", "--limit", HUGE],
        ["send", "--processes", "65"],
    ],
)
def test_numbers_too_large_for_an_option_are_a_usage_error_not_a_traceback(config: Path, args: list[str]) -> None:
    # Each was a traceback (an overflow in date arithmetic or in the SQLite driver), or, for --processes, as many
    # processes as asked for.
    run(config, "init")
    result = run(config, *args)
    assert result.exit_code == 2, result.output
    assert "Invalid value for" in result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, OverflowError)


def test_a_list_is_found_by_the_name_it_was_imported_under_line_breaks_and_all(config: Path) -> None:
    # An import cleans the name it is given (a line break is a space); a lookup by the same words found nothing.
    run(config, "init")
    imported = run(config, "contacts", "import", str(DATA / "contacts.csv"), "--list", "spring\nwebinar")
    assert "into list 'spring webinar'" in imported.output
    for name in ("spring\nwebinar", "spring webinar", " spring webinar "):
        listed = run(config, "contacts", "list", "--list", name)
        assert listed.exit_code == 0, listed.output
        assert "@" in listed.output


def test_report_all_without_campaigns_is_an_empty_table(config: Path) -> None:
    run(config, "init")
    result = run(config, "report", "--all")
    assert result.exit_code == 0, result.output
    assert "campaign" in result.output
    assert "Traceback" not in result.output


def test_report_says_to_give_a_campaign_or_all_not_both(config: Path) -> None:
    run(config, "init")
    both = run(config, "report", "--all", "talk")
    assert both.exit_code == 2
    assert "give a CAMPAIGN or --all (one line per campaign), not both" in both.output
    neither = run(config, "report")
    assert neither.exit_code == 2
    assert "give a CAMPAIGN, or --all for one line per campaign" in neither.output


def test_the_largest_counts_an_option_takes_mean_all(config: Path) -> None:
    run(config, "init")
    most = str(2**63 - 1)
    assert run(config, "contacts", "list", "--limit", most).exit_code == 0
    assert run(config, "contacts", "list", "--offset", most).exit_code == 0
    assert run(config, "tracking", "purge", "--days", "36525").exit_code == 0


def test_import_of_nothing_exits_1_but_partial_import_exits_0(config: Path, tmp_path: Path) -> None:
    run(config, "init")
    header_only = tmp_path / "empty.csv"
    header_only.write_text("email,name\n")
    assert run(config, "contacts", "import", str(header_only), "--list", "x").exit_code == 1
    partial = tmp_path / "partial.csv"
    partial.write_text("email,name\nbad,Bad\ngood@example.org,Good\n")
    result = run(config, "contacts", "import", str(partial), "--list", "x")
    assert result.exit_code == 0
    assert "Rejected line 2" in result.output
    assert "partial.rejects.csv" in result.output
    # Both in the audit log, by the command line (no user), as an import through the pages is: the list's page
    # shows them.
    with closing(sqlite3.connect(config.parent / "data" / "c.db")) as conn:
        entries = conn.execute("SELECT action, user_id, target, details FROM audit_log ORDER BY id").fetchall()
    assert [(action, user, target) for action, user, target, _ in entries] == [("contacts-imported", None, "x")] * 2
    assert [json.loads(details) for *_, details in entries] == [
        {"file": "empty.csv", "new": 0, "updated": 0, "rejected": 0},
        {"file": "partial.csv", "new": 1, "updated": 0, "rejected": 1},
    ]


def test_bad_config_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[database]\nulr = 'x'\n")
    result = run(path, "lists")
    assert result.exit_code == 1
    assert f"Error: {path}: unknown key 'database.ulr'" in result.output


def test_python_dash_m_works() -> None:
    proc = subprocess.run([sys.executable, "-m", "campaign", "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0
    assert "contacts" in proc.stdout


def test_demo_runs_in_its_own_fresh_database_and_can_run_again(tmp_path: Path) -> None:
    shutil.copytree(DATA / "events", tmp_path / "data" / "events")
    for name in ("contacts.csv", "contacts-with-errors.csv"):
        shutil.copy(DATA / name, tmp_path / "data" / name)
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\ntemplates = "{ROOT / "templates" / "email"}"\n')
    outside_demo = sorted(tmp_path.rglob("*"))
    for _ in range(2):
        result = run(config, "demo")
        assert result.exit_code == 0, result.output
        assert "41 rows into list 'demo': 41 new" in result.output
        assert "Asia/Kathmandu" in result.output
        # The invitation, the last chance to the 27 who did not register, two reminders to the 14 who did, the
        # follow-up to all: 41 + 27 + 14 + 14 + 41.
        assert "Then 14 contacts (one in 3) registered" in result.output
        assert "Delivery: 137 sent" in result.output
        assert "Campaign demo-invitation is sent." in result.output
        captured = list((tmp_path / "data" / "demo" / "mailbox").glob("*.eml"))
        assert len(captured) == 137  # a fresh mailbox each run, not twice as many
        assert_each_wave_reached_its_audience(tmp_path / "data" / "demo", captured)
        # Everything the demo writes (its key and rejects report too) is under data/demo/.
        demo_dir = tmp_path / "data" / "demo"
        assert [p for p in sorted(tmp_path.rglob("*")) if demo_dir not in (p, *p.parents)] == outside_demo
        assert (demo_dir / "contacts-with-errors.rejects.csv").is_file()
        # It ends by saying how to open the demo's campaign in the browser: on the demo's own database, key and
        # mailbox, at the campaign page's path on the configured address (web.host, web.port: the defaults here).
        with closing(sqlite3.connect(demo_dir / "campaign.db")) as conn:
            [(campaign_id,)] = conn.execute("SELECT id FROM campaigns WHERE name = 'demo-invitation'").fetchall()
        *_, environment, add_user, serve, address = result.output.rstrip("\n").splitlines()
        assert environment.split() == [
            "export",
            f"CAMPAIGN_DATABASE_URL=sqlite:///{demo_dir / 'campaign.db'}",
            f"CAMPAIGN_PATHS_DATA={demo_dir}",
            f"CAMPAIGN_SMTP_MAILBOX={demo_dir / 'mailbox'}",
        ]
        assert " users add demo --role admin " in add_user
        assert serve.split()[1] == "web"
        page = routes.CAMPAIGN_MANAGE.path(campaign=str(campaign_id))
        assert address == f"  then open http://127.0.0.1:8080{page} and log in as demo"
    assert (tmp_path / "data" / "demo" / "campaign.db").exists()
    assert (tmp_path / "data" / "demo" / "previews" / "1-demo-invitation").is_dir()
    assert not (tmp_path / "data" / "campaign.db").exists()


def test_the_demo_outside_the_project_says_where_to_run_it_and_writes_nothing(tmp_path: Path) -> None:
    # Run in another folder (no config.toml: relative paths are the working directory's), it made its database,
    # then failed on the first sample file without saying what to do.
    config = tmp_path / "config.toml"
    config.write_text("")
    result = run(config, "demo")
    assert result.exit_code == 1
    assert result.output == (
        f"Error: the demo's sample file {tmp_path / 'data' / 'contacts.csv'} is not there (paths.data): run it in "
        "the project's folder (where its config.toml is), or give --config PROJECT/config.toml\n"
    )
    shutil.copytree(DATA, tmp_path / "data", ignore=shutil.ignore_patterns("demo"))
    result = run(config, "demo")
    assert result.exit_code == 1
    assert f"Error: the templates' folder {tmp_path / 'templates' / 'email'} is not there (paths.templates)" in (
        result.output
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "data"]
    assert not (tmp_path / "data" / "demo").exists()


def assert_each_wave_reached_its_audience(demo_dir: Path, captured: list[Path]) -> None:
    """The mailbox holds one message of each wave to each contact of its audience, and no other: the
    registered contacts (those with a registration) get the reminders, the others the last chance."""
    with closing(sqlite3.connect(demo_dir / "campaign.db")) as conn:
        wave_names = dict(conn.execute("SELECT id, name FROM waves"))
        everyone = {
            e.lower()
            for (e,) in conn.execute(
                "SELECT c.email FROM contacts c JOIN list_members m ON m.contact_id = c.id "
                "JOIN lists l ON l.id = m.list_id WHERE l.name = 'demo'"
            )
        }
        # Registered by the link in their invitation: a registration naming that message.
        registered = {
            e.lower()
            for (e,) in conn.execute(
                "SELECT c.email FROM registrations r JOIN messages m ON m.id = r.message_id "
                "JOIN waves w ON w.id = m.wave_id JOIN contacts c ON c.id = r.contact_id "
                "WHERE r.source = 'link' AND w.name = 'invitation' AND m.contact_id = r.contact_id"
            )
        }
        # Each message went out at the instant its wave scheduled it, on the demo's clock, not made due early.
        early = conn.execute("SELECT count(*) FROM messages WHERE status = 'sent' AND sent_at != scheduled_at")
        assert early.fetchone() == (0,)
        # The campaign became sent with its last message, on the demo's clock (days ahead), not the real one.
        (finished,) = conn.execute("SELECT updated_at FROM campaigns WHERE status = 'sent'").fetchone()
        assert conn.execute("SELECT max(sent_at) FROM messages").fetchone() == (finished,)
    received: dict[str, list[str]] = {}
    for path in captured:
        message = email.message_from_bytes(path.read_bytes())
        wave_id = int(re.search(r"\.w(\d+)\.", message["Message-ID"])[1])  # type: ignore[index]
        received.setdefault(wave_names[wave_id], []).append(email.utils.parseaddr(message["To"])[1].lower())
        calendars = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
        if wave_names[wave_id] == "follow-up":  # sent after the session: no calendar to add it to one again
            assert calendars == []
            continue
        # Its calendar was made when it was sent on the demo's clock: DTSTAMP is the Date header's instant.
        (calendar,) = calendars
        ics = calendar.get_payload(decode=True)
        assert isinstance(ics, bytes)
        (vevent,) = IcsCalendarStream.calendar_from_ics(ics.decode("utf-8")).events
        assert vevent.dtstamp == email.utils.parsedate_to_datetime(message["Date"])
    assert len(registered) == 14
    expected = {
        "invitation": everyone,
        "last-chance": everyone - registered,
        "reminder-1d": registered,
        "reminder-1h": registered,
        "follow-up": everyone,
    }
    assert {name: sorted(to) for name, to in received.items()} == {n: sorted(to) for n, to in expected.items()}


def test_export_to_a_missing_directory_is_one_line(config: Path, tmp_path: Path) -> None:
    run(config, "init")
    result = run(config, "contacts", "export", "-o", str(tmp_path / "nonexistent" / "dir" / "x.csv"))
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.output.strip().splitlines() == [
        f"Error: cannot write {tmp_path / 'nonexistent' / 'dir' / 'x.csv'}: "
        f"directory {tmp_path / 'nonexistent' / 'dir'} does not exist"
    ]
    assert not (tmp_path / "nonexistent").exists()


def test_export_refuses_to_overwrite_without_force(config: Path, tmp_path: Path) -> None:
    run(config, "init")
    assert run(config, "contacts", "import", str(DATA / "contacts.csv"), "--list", "webinar").exit_code == 0
    own = tmp_path / "my-import.csv"
    own.write_text("email\nmine@example.org\n")
    refused = run(config, "contacts", "export", "-o", str(own))
    assert refused.exit_code == 1
    assert refused.output == f"Error: {own} already exists (use --force to overwrite it)\n"
    assert own.read_text() == "email\nmine@example.org\n"
    forced = run(config, "contacts", "export", "-o", str(own), "--force")
    assert forced.exit_code == 0, forced.output
    assert len(own.read_text().splitlines()) == 42
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_export_to_dash_is_standard_output(config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run(config, "init")
    assert run(config, "contacts", "import", str(DATA / "contacts.csv"), "--list", "webinar").exit_code == 0
    monkeypatch.chdir(tmp_path)
    result = run(config, "contacts", "export", "-o", "-")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("email,")
    assert len(result.output.splitlines()) == 42
    assert not (tmp_path / "-").exists()


def test_a_failed_export_leaves_no_file(config: Path, tmp_path: Path) -> None:
    run(config, "init")
    out = tmp_path / "out.csv"
    result = run(config, "contacts", "export", "--list", "nope", "-o", str(out))
    assert result.exit_code == 1
    assert "no list 'nope'" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["config.toml", "data"])


def test_a_rejects_report_that_cannot_be_written_is_a_warning(config: Path, tmp_path: Path) -> None:
    run(config, "init")
    partial = tmp_path / "partial.csv"
    partial.write_text("email,name\nbad,Bad\ngood@example.org,Good\n")
    (tmp_path / "partial.rejects.csv").mkdir()  # something that is not a file is in the way
    result = run(config, "contacts", "import", str(partial), "--list", "x")
    assert result.exit_code == 0, result.output
    assert isinstance(result.exception, SystemExit) or result.exception is None
    assert "Rejected line 2" in result.output
    warning = [line for line in result.output.splitlines() if line.startswith("Warning:")]
    assert len(warning) == 1
    assert f"{tmp_path / 'partial.rejects.csv'}" in warning[0]


def test_without_a_config_file_a_missing_database_says_the_defaults_applied_and_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new user's review: run outside the project, "data/campaign.db does not exist: run `campaign init`" led to a
    # second, empty database made there.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CAMPAIGN_DATABASE_URL", raising=False)
    result = CliRunner().invoke(cli, ["lists"])
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.endswith(
        f"does not exist: run `campaign init` (no config.toml in {tmp_path} or above, so the defaults apply there: "
        "run the command in the project's folder, or give --config)"
    )
    # With the database named in the environment, or a configuration file, the advice is the plain one.
    named = CliRunner().invoke(cli, ["lists"], env={"CAMPAIGN_DATABASE_URL": "sqlite:///x.db"})
    config = tmp_path / "config.toml"
    config.write_text('[database]\nurl = "sqlite:///data/c.db"\n')
    configured = CliRunner().invoke(cli, ["lists"])
    for result in (named, configured):
        assert result.exit_code == 1
        assert result.output.strip().endswith("does not exist: run `campaign init`"), result.output
