"""Message-IDs, calendar UIDs and List-Ids are unique across installations and stable for what they name.

Gmail and calendar clients de-duplicate on these ids: two databases that both number their first message 1 and
their first event 1 must still name them differently, or a new event is taken for an old one. Each database
gets a random installation id at ``campaign init``, kept in the database and put into every such id; a message
keeps its Message-ID on every attempt, and an event keeps its UID in every campaign and wave about it.
"""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from click.testing import CliRunner, Result
from sqlalchemy import delete, insert, inspect, select, text, update

from campaign.cli import cli
from campaign.exceptions import StorageError
from campaign.mail.capture import _FreePortController
from campaign.render.identifiers import event_uid
from campaign.services.database import init_database
from campaign.services.events import add_event, get_event, read_event_file
from campaign.services.installation import installation_id
from campaign.services.lifecycle import launch, retry_deferred
from campaign.store import migrate
from campaign.store.engine import Database
from campaign.store.tables import installation
from tests.conftest import DATA
from tests.test_delivery import KEY, FaultySmtp, base_settings, outbox_rows, prepare, send, tuned
from tests.test_delivery import Sink as DeliverySink

ROOT = DATA.parent
INSTALLATION_ID = re.compile(r"[a-z2-7]{16}")
DOMAIN = "example.org"  # mail.domain's default


# --- two installations, through the real command line ------------------------------------------------------


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def ok(config: Path, *args: str) -> str:
    result = run(config, *args)
    assert result.exit_code == 0, result.output
    return result.output


def installation_dir(tmp_path: Path, name: str) -> Path:
    """A configuration of its own (SQLite file, capture mailbox) under ``tmp_path/name``; returns its config."""
    home = tmp_path / name
    home.mkdir()
    config = home / "config.toml"
    templates = ROOT / "templates" / "email"
    config.write_text(f'[database]\nurl = "sqlite:///data/c.db"\n[paths]\ndata = "data"\ntemplates = "{templates}"\n')
    return config


def future_event_file(directory: Path) -> Path:
    start = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0, tzinfo=None)
    path = directory / "event.toml"
    path.write_text(
        'slug = "summit"\ntitle = "Labour migration summit"\ndescription = "A discussion."\n'
        f"start = {start.isoformat()}\nend = {(start + timedelta(hours=1)).isoformat()}\n"
        'timezone = "Europe/Zurich"\nregistration_url = "https://events.example.org/register"\n'
    )
    return path


def stored_id(config: Path) -> str:
    db = Database(f"sqlite:///{config.parent / 'data' / 'c.db'}")
    try:
        return installation_id(db)
    finally:
        db.dispose()


def captured(config: Path) -> list[EmailMessage]:
    mailbox = config.parent / "data" / "mailbox"
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted(mailbox.glob("*.eml"))
    ]


def calendar_uid(message: EmailMessage) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    [uid] = re.findall(r"^UID:(.*?)\r?$", part.get_content(), re.M)
    return str(uid)


def launch_one_campaign(config: Path) -> None:
    """Contacts, a future event and campaign ``c`` for it, launched and sent to the capture mailbox."""
    csv = config.parent / "people.csv"
    csv.write_text("email,name,timezone\nana@example.com,Ana,Europe/Lisbon\n")
    ok(config, "init")
    ok(config, "contacts", "import", str(csv), "--list", "guests")
    ok(config, "events", "add", str(future_event_file(config.parent)))
    ok(config, "create", "--event", "summit", "--list", "guests", "--name", "c")
    ok(config, "launch", "c")
    ok(config, "send", "--campaign", "c")


def test_two_installations_name_the_same_numbered_message_event_and_list_differently(tmp_path: Path) -> None:
    first, second = installation_dir(tmp_path, "first"), installation_dir(tmp_path, "second")
    sent = {}
    for config in (first, second):
        launch_one_campaign(config)
        [message] = captured(config)
        sent[config] = message
    ids = {config: stored_id(config) for config in (first, second)}
    assert ids[first] != ids[second]
    for config, message in sent.items():
        mine = ids[config]
        assert INSTALLATION_ID.fullmatch(mine)
        # The same numbers in both databases (campaign 1, wave 1, message 1, event 1): only the id tells them apart.
        assert str(message["Message-ID"]) == f"<c1.w1.m1.{mine}@{DOMAIN}>"
        assert calendar_uid(message) == f"event-1.{mine}@{DOMAIN}"
        assert str(message["List-Id"]) == f"c <campaign-1.{mine}.{DOMAIN}>"
    assert len({str(m["Message-ID"]) for m in sent.values()}) == 2
    assert len({calendar_uid(m) for m in sent.values()}) == 2
    assert len({str(m["List-Id"]) for m in sent.values()}) == 2


def test_list_id_is_a_lower_case_dot_atom(tmp_path: Path) -> None:
    config = installation_dir(tmp_path, "one")
    launch_one_campaign(config)
    [message] = captured(config)
    list_id = re.fullmatch(r".* <(.*)>", str(message["List-Id"]))
    assert list_id is not None
    # RFC 2919: list-label "." list-id-namespace, a dot-atom; filters compare it without regard to case.
    assert re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", list_id[1]), list_id[1]


def test_preview_and_test_send_ids_carry_the_installation_id(tmp_path: Path) -> None:
    config = installation_dir(tmp_path, "one")
    launch_one_campaign(config)
    mine = stored_id(config)
    ok(config, "preview", "c", "--contact", "ana@example.com")
    [eml] = (config.parent / "data" / "previews").rglob("*.eml")
    preview = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert str(preview["Message-ID"]) == f"<preview.1.1.{mine}@{DOMAIN}>"
    assert calendar_uid(preview) == f"event-1.{mine}@{DOMAIN}"
    assert str(preview["List-Id"]) == f"c <campaign-1.{mine}.{DOMAIN}>"

    ok(config, "test-send", "c", "--to", "staff@example.org")
    test = next(m for m in captured(config) if str(m["Subject"]).startswith("[TEST]"))
    assert re.fullmatch(rf"<test\.1\.\d+\.{mine}@{DOMAIN}>", str(test["Message-ID"]))
    assert calendar_uid(test) == f"event-1.{mine}@{DOMAIN}"


def test_the_id_survives_init_and_upgrade_run_again(tmp_path: Path) -> None:
    config = installation_dir(tmp_path, "one")
    ok(config, "init")
    before = stored_id(config)
    ok(config, "init")
    ok(config, "db", "upgrade")
    assert stored_id(config) == before


def test_every_campaign_about_an_event_gives_it_the_same_uid(tmp_path: Path) -> None:
    """Later mailings about the same event must update the entry the first one made, not add another."""
    config = installation_dir(tmp_path, "one")
    launch_one_campaign(config)
    ok(config, "create", "--event", "summit", "--list", "guests", "--name", "again")
    ok(config, "preview", "again", "--contact", "ana@example.com")
    [eml] = (config.parent / "data" / "previews").rglob("*.eml")
    [sent] = captured(config)
    assert calendar_uid(email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)) == calendar_uid(sent)


def test_a_database_without_its_installation_id_is_one_clear_error(tmp_path: Path) -> None:
    config = installation_dir(tmp_path, "one")
    launch_one_campaign(config)
    db = Database(f"sqlite:///{config.parent / 'data' / 'c.db'}")
    try:
        with db.write() as conn:
            conn.execute(delete(installation))
    finally:
        db.dispose()
    result = run(config, "preview", "c", "--contact", "ana@example.com")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert "installation id" in result.output
    assert "Traceback" not in result.output


# --- the store and service, on both backends ---------------------------------------------------------------


def test_each_new_database_gets_its_own_id(empty_db: Database, tmp_path: Path) -> None:
    init_database(empty_db)
    mine = installation_id(empty_db)
    assert INSTALLATION_ID.fullmatch(mine)
    other = Database(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        init_database(other)
        assert installation_id(other) != mine
    finally:
        other.dispose()


def test_upgrading_an_existing_database_gives_it_an_id(empty_db: Database) -> None:
    init_database(empty_db)
    # Back to the schema before installation ids (the migration's downgrade), as a database made then is.
    config = migrate.alembic_config()
    with empty_db.write() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")
    assert migrate.current_revision(empty_db) == "0002"
    assert "installation" not in inspect_tables(empty_db)
    init_database(empty_db)
    assert INSTALLATION_ID.fullmatch(installation_id(empty_db))


def test_an_event_made_before_installation_ids_keeps_its_calendar_uid(empty_db: Database) -> None:
    """Its invitations went out with ``event-1@domain``: a reminder or update after the upgrade must replace that
    calendar entry, not add a second one. Events made after the upgrade get the installation's UIDs."""
    init_database(empty_db)
    values = read_event_file(DATA / "events" / "ilo-migrant-workers-2020.toml")
    config = migrate.alembic_config()
    with empty_db.write() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")
    with empty_db.write() as conn:  # an event as the code before installation ids stored it
        conn.execute(
            text(
                "INSERT INTO events (slug, title, description, starts_at, ends_at, timezone, language, speakers,"
                " sequence, status, created_at, updated_at) VALUES ('old', 'Old', '', :s, :e, 'UTC', 'en', '[]',"
                " 0, 'scheduled', :s, :s)"
            ),
            {"s": values["starts_at"], "e": values["ends_at"]},
        )
    init_database(empty_db)
    old = get_event(empty_db, "old")
    new = add_event(empty_db, values)
    inst = installation_id(empty_db)
    assert old.calendar_uid == f"event-{old.id}"
    assert event_uid(old, DOMAIN, inst) == f"event-{old.id}@{DOMAIN}"
    assert new.calendar_uid is None
    assert event_uid(new, DOMAIN, inst) == f"event-{new.id}.{inst}@{DOMAIN}"


def inspect_tables(db: Database) -> set[str]:
    with db.read() as conn:
        return set(inspect(conn).get_table_names())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda: delete(installation), "has no installation id"),
        (lambda: update(installation).values(id="Bad id>\r\nX: y"), "is not"),
        (
            lambda: insert(installation).values(id="abcdefghijklmnop", created_at=datetime.now(UTC)),
            "2 installation ids",
        ),
    ],
)
def test_a_missing_or_damaged_id_is_a_storage_error(db: Database, change: Any, message: str) -> None:
    with db.write() as conn:
        conn.execute(change())
    with pytest.raises(StorageError, match=message):
        installation_id(db)


# --- the same message, attempt after attempt ---------------------------------------------------------------


class RecordingSmtp(FaultySmtp):
    """A :class:`FaultySmtp` that also keeps every message it was given, accepted or not."""

    def __init__(self) -> None:
        super().__init__(pipelining=True)
        self.attempted: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.attempted.append(bytes(envelope.original_content))
        return await super().handle_DATA(server, session, envelope)


def test_every_attempt_at_a_message_has_the_same_message_id(db: Database, tmp_path: Path) -> None:
    settings = tuned(base_settings(tmp_path), retry_initial_minutes=60.0)
    prepare(db, tmp_path, 2)
    launch(db, settings, KEY, "c")
    handler = RecordingSmtp()
    handler.plan = lambda _rcpt, attempt: "451 4.3.0 try again later" if attempt == 1 else None
    controller = _FreePortController(handler, hostname="127.0.0.1", port=0, server_hostname="recording")
    controller.start()
    try:
        sink = DeliverySink(handler, int(controller.port))
        assert send(db, settings, sink.servers()).counts == {"deferred": 2}
        assert retry_deferred(db, "c") == 2  # due now, not in an hour: no waiting for the clock
        # A new run: a new renderer, the installation id read again; the message must keep its name.
        assert send(db, settings, sink.servers()).counts == {"sent": 2}
    finally:
        controller.stop()
    mine = installation_id(db)
    by_recipient: dict[str, set[str]] = {}
    for data in handler.attempted:
        message = email.message_from_bytes(data, policy=email.policy.default)
        by_recipient.setdefault(message["To"].addresses[0].addr_spec, set()).add(str(message["Message-ID"]))
    rows = outbox_rows(db, "c")
    assert len(handler.attempted) == 4
    for address, ids in by_recipient.items():
        assert ids == {f"<{rows[address].message_id}>"}
        assert rows[address].message_id == f"c1.w1.m{rows[address].id}.{mine}@{DOMAIN}"


def test_init_makes_exactly_one_installation_row(db: Database) -> None:
    with db.read() as conn:
        assert len(conn.execute(select(installation)).all()) == 1
