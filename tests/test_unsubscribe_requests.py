"""Unsubscribe requests that came by mail (a reply, the List-Unsubscribe mailto): `campaign contacts unsubscribe`."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from campaign.cli import cli
from campaign.services.campaigns import create_campaign
from campaign.services.contact_import import import_contacts
from campaign.services.lifecycle import launch
from campaign.store.engine import Database
from campaign.store.tables import audit_log, suppressions
from tests.conftest import DATA
from tests.test_delivery import KEY, add_future_event, base_settings, statuses
from tests.test_web import db_config

CONTACT = "maria.santos@dole.example.org"
AS_TYPED = "MARIA.SANTOS@DOLE.EXAMPLE.ORG"
NORMALISED = "MARIA.SANTOS@dole.example.org"  # the domain lower-cased; the key, the whole (suppressions)


def test_addresses_asked_by_mail_are_unsubscribed_from_everything_and_queued_mail_is_not_sent(
    db: Database, tmp_path: Path
) -> None:
    import_contacts(db, DATA / "contacts.csv", "guests")
    config = db_config(tmp_path, db)
    runner = CliRunner()

    done = runner.invoke(cli, ["--config", str(config), "contacts", "unsubscribe", AS_TYPED, "x@Stranger.ORG"])

    assert done.exit_code == 0, done.output
    assert done.output.splitlines() == [
        f"{NORMALISED}: unsubscribed",
        "x@stranger.org: unsubscribed",
    ]
    again = runner.invoke(cli, ["--config", str(config), "contacts", "unsubscribe", CONTACT])
    assert again.output == f"{CONTACT}: already suppressed (unsubscribed)\n"
    with db.read() as conn:
        rows = conn.execute(select(suppressions.c.email_key, suppressions.c.reason).order_by(suppressions.c.id)).all()
        audited = conn.execute(select(audit_log.c.action, audit_log.c.target, audit_log.c.user_id)).all()
    assert [tuple(r) for r in rows] == [(CONTACT, "unsubscribed"), ("x@stranger.org", "unsubscribed")]
    assert [tuple(a) for a in audited] == [
        ("contact-suppressed", NORMALISED, None),
        ("contact-suppressed", "x@stranger.org", None),
    ]

    # A malformed address is one line, and nothing changes, the good ones given with it included.
    bad = runner.invoke(cli, ["--config", str(config), "contacts", "unsubscribe", "ok@example.org", "not-an-address"])
    assert bad.exit_code == 1
    assert bad.output.startswith("Error: 'not-an-address' is not an email address: ")
    assert len(bad.output.splitlines()) == 1
    with db.read() as conn:
        assert conn.scalar(select(suppressions.c.id).where(suppressions.c.email_key == "ok@example.org")) is None

    # The next campaign's message to the address is not sent.
    add_future_event(db, "event-c")
    create_campaign(db, event_ref="event-c", list_name="guests", name="c")
    launched = launch(db, base_settings(tmp_path), KEY, "c")
    assert launched.suppressed == 1
    assert statuses(db, "c")["suppressed"] == 1
