"""Importing a webinar platform's registrants (services.registrant_import, ``campaign registrants``): Zoom's
registration report and Webex's export as they are written, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from campaign.cli import cli
from campaign.exceptions import ImportFileError, NotFoundError, ValidationError
from campaign.rules.contact_fields import FieldError
from campaign.rules.registrant_fields import parse_registration_time, registration_status
from campaign.services.contact_import import rejects_path_for
from campaign.services.registrant_import import (
    RegistrantImportReport,
    import_registrants,
    not_contacts_path_for,
)
from campaign.services.scheduling import fire_due
from campaign.sources.csv_contacts import ContactCsv
from campaign.store.engine import Database
from campaign.store.tables import contacts, registrations
from tests.conftest import cli_ok
from tests.test_delivery import TEMPLATES, base_settings
from tests.test_scheduling import add_contacts, add_event_at, campaign_with, launch_at, recipients
from tests.test_waves import one_line_error

WriteCsv = Callable[..., Path]
START = datetime(2030, 6, 18, 12, tzinfo=UTC)
NOW = datetime(2030, 6, 12, 8, tzinfo=UTC)
CONTACTS = ("ann", "bob", "cy", "dee", "fay", "gus", "hal")

# Zoom's webinar registration report: a UTF-8 BOM, CRLF, title rows (one with a quoted comma), a blank line and
# "Registrant Details" before the header; times like "Jun 10, 2030 09:15:22" (quoted: they hold a comma);
# answers to custom questions, one across two lines.
ZOOM = (
    "\ufeffRegistration Report\r\n"
    'Report Generated:,"Jun 12, 2030 10:02 AM"\r\n'
    "Topic,Webinar ID,Scheduled Time,Duration (Minutes),# Registered,# Cancelled\r\n"
    '"Migrant workers, a talk",899 6760 3066,"Jun 18, 2030 14:00",60,9,1\r\n'
    "\r\n"
    "Registrant Details\r\n"
    "First Name,Last Name,Email,City,Country/Region,Organization,Questions & Comments,Registration Time,"
    "Approval Status,Source Name\r\n"
    'Ann,Lee,ANN@Example.ORG,Manila,Philippines,"ILO, Manila","Will there be a recording?\r\nThanks",'
    '"Jun 10, 2030 09:15:22",approved,\r\n'  # lines 8-9
    "Bob,Ruiz,bob@example.org,Lima,Peru,,,2030-06-10 10:00:00,approved,newsletter\r\n"  # 10
    'Cy,Ng,cy@example.org,,,,,"Jun 11, 2030 08:00:00",pending,\r\n'  # 11
    'Dee,Ok,dee@example.org,,,,,"Jun 11, 2030 08:30:00",denied,\r\n'  # 12
    'Eve,Stranger,eve@elsewhere.org,,,,,"Jun 11, 2030 09:00:00",approved,\r\n'  # 13
    'Fay,Typo,fay(at)example.org,,,,,"Jun 11, 2030 09:10:00",approved,\r\n'  # 14
    "Gus,Late,gus@example.org,,,,,sometime soon,approved,\r\n"  # 15
    'Ann,Lee,ann@example.org,,,,,"Jun 11, 2030 10:00:00",approved,\r\n'  # 16: again
    'Hal,Gone,hal@example.org,,,,,"Jun 11, 2030 11:00:00",cancelled,\r\n'  # 17
)

# Webex's registrant export: "Email Address", "Registration Date" with US dates and AM/PM, "Status".
WEBEX = (
    "First Name,Last Name,Email Address,Company,Registration Date,Status\n"
    "Ann,Lee,ann@example.org,ILO,06/10/2030 9:15 AM,Approved\n"
    "Bob,Ruiz,Bob@EXAMPLE.org,,06/10/2030 10:00 AM,Approved\n"
    "Cy,Ng,cy@example.org,,06/11/2030 8:00 AM,Pending\n"
    "Dee,Ok,dee@example.org,,06/11/2030 8:30 AM,Rejected\n"
    "Eve,Stranger,eve@elsewhere.org,,06/11/2030 9:00 AM,Approved\n"
    "Gus,Late,gus@example.org,,,\n"
)


@pytest.fixture
def talk(db: Database, tmp_path: Path) -> Database:
    """The event ``talk`` (organiser in Europe/Zurich) and contacts ann@ ... hal@example.org in list ``guests``."""
    add_contacts(db, tmp_path, {f"{name}@example.org": "" for name in CONTACTS})
    add_event_at(db, START, "talk")
    return db


def registered(db: Database, event_id: int = 1) -> dict[str, tuple[str, datetime]]:
    """The event's registrations: by address, their source and time."""
    stmt = (
        select(contacts.c.email, registrations.c.source, registrations.c.registered_at)
        .join(contacts, contacts.c.id == registrations.c.contact_id)
        .where(registrations.c.event_id == event_id)
    )
    with db.read() as conn:
        return {email: (source, at.replace(tzinfo=UTC)) for email, source, at in conn.execute(stmt)}


def report_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")))


def counts(report: RegistrantImportReport) -> tuple[int, int, int, int, dict[str, int]]:
    return report.added, report.known, report.not_contacts, report.rejected, dict(report.skipped)


# --- the exports ---------------------------------------------------------------------------------------------


def test_a_zoom_report_records_its_approved_contacts(talk: Database, write_csv: WriteCsv) -> None:
    path = write_csv(ZOOM, name="zoom.csv")
    report = import_registrants(talk, "talk", path, now=NOW)

    # Ann (twice: once added, once known), Bob added; Cy pending, Dee denied, Hal cancelled skipped; Eve is no
    # contact; Fay's address and Gus's time are rejected.
    assert counts(report) == (2, 1, 1, 2, {"pending": 1, "denied": 1, "cancelled": 1})
    assert report.rows == 9
    # The first row's time, in the organiser's zone (Zurich, UTC+2 in June); the repeat does not move it.
    assert registered(talk) == {
        "ann@example.org": ("import", datetime(2030, 6, 10, 7, 15, 22, tzinfo=UTC)),
        "bob@example.org": ("import", datetime(2030, 6, 10, 8, 0, tzinfo=UTC)),
    }
    # Line numbers as an editor shows them: the title rows count, and Ann's comment spans lines 8 and 9.
    assert [(r.line, r.email) for r in report.rejections] == [(14, "fay(at)example.org"), (15, "gus@example.org")]
    assert report.rejections[0].reason.startswith("email: 'fay(at)example.org' is not a valid address")
    assert report.rejections[1].reason == (
        "registration time: 'sometime soon' is not a date and time like 2030-06-10 09:15:22 or Jun 10, 2030 09:15"
    )
    assert [(s.line, s.email) for s in report.strangers] == [(13, "eve@elsewhere.org")]

    # Both files in the contact import's format: line, reason, then the row's cells under the file's header.
    assert report.rejects_path == rejects_path_for(path)
    rejects = report_rows(rejects_path_for(path))
    assert rejects[0][:5] == ["line", "reason", "First Name", "Last Name", "Email"]
    assert [(row[0], row[4]) for row in rejects[1:]] == [("14", "fay(at)example.org"), ("15", "gus@example.org")]
    assert report.not_contacts_path == not_contacts_path_for(path) == path.parent / "zoom.not-contacts.csv"
    strangers = report_rows(not_contacts_path_for(path))
    # Every cell of people who are not contacts (names, organisations, questions): the owner's only.
    assert [p.stat().st_mode & 0o777 for p in (rejects_path_for(path), not_contacts_path_for(path))] == [0o600] * 2
    assert strangers[0] == rejects[0]
    assert strangers[1][:5] == ["13", "not a contact", "Eve", "Stranger", "eve@elsewhere.org"]
    # Not added as a contact.
    with talk.read() as conn:
        assert conn.scalar(select(contacts.c.id).where(contacts.c.email == "eve@elsewhere.org")) is None


def test_a_webex_export_and_another_zone(talk: Database, write_csv: WriteCsv) -> None:
    path = write_csv(WEBEX, name="webex.csv")
    report = import_registrants(talk, "talk", path, zone="asia/manila", now=NOW)
    assert counts(report) == (3, 0, 1, 0, {"pending": 1, "rejected": 1})
    assert registered(talk) == {
        # 9:15 AM in Manila (UTC+8), as --timezone says.
        "ann@example.org": ("import", datetime(2030, 6, 10, 1, 15, tzinfo=UTC)),
        "bob@example.org": ("import", datetime(2030, 6, 10, 2, 0, tzinfo=UTC)),
        # No time and no status: approved, registered at the time of the import.
        "gus@example.org": ("import", NOW),
    }
    assert report.rejects_path is None
    assert not rejects_path_for(path).exists()


@pytest.mark.parametrize(
    ("email", "time", "status"),
    [
        ("Email", "Registration Time", "Approval Status"),
        ("E-mail", "Registered", "Status"),
        ("EMAIL ADDRESS", "Registration Date/Time", "registration status"),
        ("e-mail", "registration date", "STATUS"),
    ],
)
def test_column_names_match_in_their_variants(
    talk: Database, write_csv: WriteCsv, email: str, time: str, status: str
) -> None:
    path = write_csv(
        f"Name;{email};{time};{status}\nAnn;ann@example.org;2030-06-10 09:15;\nCy;cy@example.org;;Pending\n"
    )
    report = import_registrants(talk, "talk", path, now=NOW)
    assert counts(report) == (1, 0, 0, 0, {"pending": 1})
    assert registered(talk)["ann@example.org"][1] == datetime(2030, 6, 10, 7, 15, tzinfo=UTC)


def test_a_time_after_the_import_is_refused_as_a_wrong_time_zone(talk: Database, write_csv: WriteCsv) -> None:
    # Nobody registered in the future: the export's times were read in the wrong zone. Refused (not recorded:
    # a registration's first time stands, so a re-import with --timezone could not correct it); a platform's
    # clock a few minutes ahead is taken.
    soon, later = NOW + timedelta(minutes=5), NOW + timedelta(hours=3)
    path = write_csv(
        f"Email,Registration Time\nann@example.org,{soon:%Y-%m-%d %H:%M}\nbo@example.org,{later:%Y-%m-%d %H:%M}\n"
    )
    report = import_registrants(talk, "talk", path, zone="UTC", now=NOW)
    assert report.added == 1
    [rejected] = report.rejections
    assert rejected.line == 3
    assert (
        "is after this import, 2030-06-12 08:00 UTC: is the export's time zone right? (--timezone)" in rejected.reason
    )
    assert "bo@example.org" not in registered(talk)


def test_reimporting_changes_nothing_and_matches_any_letter_case(talk: Database, write_csv: WriteCsv) -> None:
    first = import_registrants(talk, "talk", write_csv(ZOOM, name="zoom.csv"), now=NOW)
    before = registered(talk)
    # The same people again, another day, in other letter cases, in another export.
    later = WEBEX.replace("ann@example.org", "ANN@EXAMPLE.ORG")
    again = import_registrants(talk, "talk", write_csv(later, name="webex.csv"), now=NOW + timedelta(days=1))
    assert (first.added, again.added, again.known) == (2, 1, 2)  # only Gus is new
    after = registered(talk)
    assert {k: v for k, v in after.items() if k in before} == before  # the first times stand
    assert import_registrants(talk, "talk", write_csv(ZOOM, name="zoom.csv"), now=NOW).added == 0
    assert registered(talk) == after


def test_small_batches_count_the_same(talk: Database, write_csv: WriteCsv) -> None:
    report = import_registrants(talk, "talk", write_csv(ZOOM), now=NOW, batch_size=1)
    assert counts(report) == (2, 1, 1, 2, {"pending": 1, "denied": 1, "cancelled": 1})
    assert [s.line for s in report.strangers] == [13]


def test_another_events_registrations_are_apart(talk: Database, write_csv: WriteCsv) -> None:
    add_event_at(talk, START, "other")
    import_registrants(talk, "other", write_csv(WEBEX), now=NOW)
    assert registered(talk, 1) == {}
    assert set(registered(talk, 2)) == {"ann@example.org", "bob@example.org", "gus@example.org"}


def test_a_list_of_non_contacts_that_cannot_be_written_is_a_warning(talk: Database, write_csv: WriteCsv) -> None:
    path = write_csv(WEBEX, name="webex.csv")
    not_contacts_path_for(path).mkdir()  # in the way, whoever runs the test (root ignores permissions)
    report = import_registrants(talk, "talk", path, now=NOW)
    assert (report.added, report.not_contacts) == (3, 1)
    assert report.not_contacts_path is None
    assert report.warnings == [
        f"cannot replace the earlier list of registrants who are not contacts {not_contacts_path_for(path)}: "
        "Is a directory"
    ]
    assert [(s.line, s.email) for s in report.strangers] == [(6, "eve@elsewhere.org")]


# --- files that cannot be used -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        "First Name,Last Name,Registration Date\nAnn,Lee,2030-06-10\n",
        # A report whose header has no email column: the widest row is named.
        "Registration Report\nTopic,Webinar ID\nTalk,1\n\nFirst Name,Last Name,Registration Date\nAnn,Lee,2030-06-10\n",
    ],
)
def test_no_email_column_names_the_columns_found(talk: Database, write_csv: WriteCsv, content: str) -> None:
    with pytest.raises(ImportFileError, match=r"no email column \(the header has 'First Name', 'Last Name', "):
        import_registrants(talk, "talk", write_csv(content), now=NOW)
    assert registered(talk) == {}


def test_the_header_is_searched_in_the_first_30_lines_only(talk: Database, write_csv: WriteCsv) -> None:
    title = "".join(f"Note {i}\n" for i in range(30))
    with pytest.raises(ImportFileError, match="no email column"):
        import_registrants(talk, "talk", write_csv(title + "Email\nann@example.org\n"), now=NOW)
    report = import_registrants(talk, "talk", write_csv(title[:-8] + "Email\nann@example.org\n"), now=NOW)
    assert report.added == 1


def test_a_contacts_file_still_needs_its_header_first(write_csv: WriteCsv) -> None:
    """The contact import reads no title rows: its header is the first non-blank line, as before."""
    with pytest.raises(ImportFileError, match=r"no email column \(the header has 'Registration Report'\)"):
        ContactCsv(write_csv("Registration Report\nemail\nann@example.org\n"))


def test_unknown_event_and_zone_are_one_line_errors(talk: Database, write_csv: WriteCsv) -> None:
    path = write_csv(WEBEX)
    with pytest.raises(NotFoundError, match=r"no event 'nope' \(see `campaign events list`\)"):
        import_registrants(talk, "nope", path)
    with pytest.raises(ValidationError, match="'Mars/Olympus' is not an IANA time zone"):
        import_registrants(talk, "talk", path, zone="Mars/Olympus")
    assert registered(talk) == {}


# --- audiences -----------------------------------------------------------------------------------------------


def test_imported_registrants_are_the_registered_audience(db: Database, tmp_path: Path, write_csv: WriteCsv) -> None:
    settings = base_settings(tmp_path)
    start = datetime(2030, 6, 20, 12, tzinfo=UTC)
    people = {f"{name}@example.org": "" for name in CONTACTS}
    campaign_with(db, tmp_path, start, ["yes reminder -1d registered", "no reminder -1d not-registered"], people)
    launch_at(db, settings, datetime(2030, 6, 1, tzinfo=UTC))
    import_registrants(db, "talk", write_csv(ZOOM), now=NOW)
    fire_due(db, settings, start - timedelta(days=1))
    assert set(recipients(db, "yes")) == {"ann@example.org", "bob@example.org"}
    assert set(recipients(db, "no")) == set(people) - {"ann@example.org", "bob@example.org"}


# --- the command line ----------------------------------------------------------------------------------------


def test_the_command_line_imports_reports_and_lists(talk: Database, tmp_path: Path, write_csv: WriteCsv) -> None:
    config = tmp_path / "config.toml"
    url = talk.url.render_as_string(hide_password=False)
    config.write_text(f'[database]\nurl = "{url}"\n[paths]\ntemplates = "{TEMPLATES}"\n')
    run = cli_ok(config)
    # Registered years ago: the command line imports at the real now, and a time after it is refused.
    path = write_csv(ZOOM.replace("2030", "2020"), name="zoom.csv")

    out = run("registrants", "import", "talk", str(path)).splitlines()
    assert out[0] == (
        f"{path}: 9 rows for event 'talk': 2 added, 1 already known, 1 not a contact, "
        "3 skipped by status (1 cancelled, 1 denied, 1 pending), 2 rejected"
    )
    assert out[1].startswith("  Rejected line 14 fay(at)example.org: email: ")
    assert out[2].startswith("  Rejected line 15 gus@example.org: registration time: ")
    assert out[3] == "  Registrant line 13 eve@elsewhere.org: not a contact"
    assert out[4:] == [
        f"Rejected rows, with line and reason: {rejects_path_for(path)}",
        f"Registrants who are not contacts (not added): {not_contacts_path_for(path)}",
    ]
    # Again: nothing new.
    again = run("registrants", "import", "talk", str(path), "--timezone", "UTC", "--delimiter", ",")
    assert ": 0 added, 3 already known, 1 not a contact" in again

    listed = run("registrants", "list", "talk").splitlines()
    assert listed[0] == "2 contacts registered for event 'talk'"
    assert [line.split() for line in listed[3:]] == [["link", "0"], ["import", "2"], ["webhook", "0"]]

    runner = CliRunner()
    for args, fragments in (
        (["registrants", "import", "nope", str(path)], ("no event 'nope'",)),
        (["registrants", "import", "talk", str(tmp_path / "missing.csv")], ("missing.csv: cannot open",)),
        (["registrants", "import", "talk", str(write_csv("Name\nAnn\n", name="x.csv"))], ("no email column",)),
        (
            ["registrants", "import", "talk", str(path), "--timezone", "Nowhere"],
            ("--timezone: 'Nowhere' is not an IANA",),
        ),
        (["registrants", "list", "nope"], ("no event 'nope'",)),
    ):
        one_line_error(runner.invoke(cli, ["--config", str(config), *args]), *fragments)


# --- the cells -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Jun 10, 2030 09:15:22", datetime(2030, 6, 10, 7, 15, 22)),
        ("June 10, 2030 9:15 PM", datetime(2030, 6, 10, 19, 15)),
        ("Sept 3, 2030, 12:05 a.m.", datetime(2030, 9, 2, 22, 5)),
        ("2030-06-10 09:15:22", datetime(2030, 6, 10, 7, 15, 22)),
        ("2030-06-10T09:15:22Z", datetime(2030, 6, 10, 9, 15, 22)),
        ("2030-06-10 09:15:22+08:00", datetime(2030, 6, 10, 1, 15, 22)),
        ("  10 Jun 2030   09:15 ", datetime(2030, 6, 10, 7, 15)),
        ("10-JUN-2030", datetime(2030, 6, 9, 22, 0)),
        ("06/10/2030 9:15 am", datetime(2030, 6, 10, 7, 15)),
        ("1/2/2031 12:00 PM", datetime(2031, 1, 2, 11, 0)),  # winter: UTC+1
        ("2030-10-27 02:30", datetime(2030, 10, 27, 0, 30)),  # twice in Zurich: the first
    ],
)
def test_registration_times_in_the_spellings_of_the_platforms(text: str, expected: datetime) -> None:
    assert parse_registration_time(text, "Europe/Zurich") == expected.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("yesterday", "is not a date and time like"),
        ("Jun 31, 2030 10:00", "is not a real date and time"),
        ("Juin 10, 2030 10:00", "is not a real date and time"),
        ("Jun 10, 2030 13:00 PM", "is not a real date and time"),
        ("25/06/2030 10:00", "is not a real date and time (dates with slashes are month/day/year)"),
        # A traceback (the conversion to UTC overflowed) that stopped the whole import.
        ("0001-01-01 00:00:00", "is out of range: the year must be 1900 to 2999"),
        ("9999-12-31T23:30:00-05:00", "is out of range"),
    ],
)
def test_times_that_are_no_time_are_refused_naming_the_value(text: str, reason: str) -> None:
    with pytest.raises(FieldError, match=re.escape(f"registration time: '{text}' {reason}")):
        parse_registration_time(text, "UTC")


def test_statuses() -> None:
    got = [registration_status(s) for s in ("approved", "Approved", "", "  ", "Registered", "pending", "Canceled")]
    assert got == [None, None, None, None, None, "pending", "cancelled"]
    assert Counter(registration_status(s) for s in ("Denied", "REJECTED", "Pending Approval")) == {
        "denied": 1,
        "rejected": 1,
        "pending approval": 1,
    }
