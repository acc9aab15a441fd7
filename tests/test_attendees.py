"""Importing a webinar platform's attendee report (``campaign attendees import``) and what the reports make of it:
Zoom's sectioned report as it is written (hosts, panelists, attendees, a rejoin, a walk-in), Webex's plain one,
the funnel's ``joined`` step in every format, the dashboard, and the ``attended`` / ``not-attended`` audiences."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from campaign.cli import cli
from campaign.exceptions import ImportFileError
from campaign.models import Audience
from campaign.render.report_html import report_html
from campaign.rules.attendee_fields import attended, parse_minutes, staff_role
from campaign.rules.contact_fields import FieldError
from campaign.services.attendee_import import DID_NOT_ATTEND, AttendeeImportReport, import_attendees
from campaign.services.contact_import import rejects_path_for
from campaign.services.platform_import import not_contacts_path_for
from campaign.services.report_documents import report_document, write_report_csv
from campaign.services.reports import campaign_report
from campaign.store.audiences import zone_sizes
from campaign.store.engine import Database
from campaign.store.tables import attendances, campaigns, contacts, lists
from tests.conftest import cli_ok
from tests.test_dashboard import Seeded, keyed
from tests.test_dashboard import seeded as seeded
from tests.test_reports import World, seed, through_link
from tests.test_scheduling import add_contacts, add_event_at
from tests.test_waves import one_line_error

ZOOM_REPORT = Path(__file__).parent / "data" / "zoom_attendee_report.csv"
START = datetime(2030, 6, 18, 12, tzinfo=UTC)  # 14:00 in Zurich, the organiser's zone
NOW = datetime(2030, 6, 19, 8, tzinfo=UTC)

# What the fixture says, worked out by hand from its rows (Zurich is UTC+2 in June):
# host p0 and panelist p1 run the webinar (not counted); Ann (P2@Example.ORG, then p2@ again: a rejoin) joined
# first at 14:01:10 for 19 + 36 minutes; Bob p3 57; Cy p4 did not attend; Eve is no contact; Fay's address and
# Gus's join time are wrong; Hal p6 45; Ivy p8 walked in without registering ("Other Attended") for 20.
ATTENDED = {
    "p2@example.org": (datetime(2030, 6, 18, 12, 1, 10, tzinfo=UTC), 55),
    "p3@example.org": (datetime(2030, 6, 18, 12, 3, tzinfo=UTC), 57),
    "p6@example.org": (datetime(2030, 6, 18, 12, 10, tzinfo=UTC), 45),
    "p8@example.org": (datetime(2030, 6, 18, 12, 30, tzinfo=UTC), 20),
}

# Webex's attendee report: no sections, "Role", a duration as h:mm:ss, times with an offset.
WEBEX = (
    "Name,Email,Role,Join Time,Leave Time,Duration\n"
    "Org Host,p0@example.org,Host,2030-06-18T13:50:00+02:00,2030-06-18T15:02:00+02:00,1:12:00\n"
    "Bob Ruiz,P3@example.org,Attendee,2030-06-18T14:02:00+02:00,2030-06-18T15:05:00+02:00,1:02:30\n"
    "Jo New,p9@example.org,Attendee,2030-06-18T14:20:00+02:00,2030-06-18T14:40:00+02:00,0:20:00\n"
    "Kim Late,p7@example.org,Attendee,2030-06-18T14:50:00+02:00,,12 min\n"
    "Lu Odd,p5@example.org,Attendee,2030-06-18T14:50:00+02:00,,a while\n"
)


def funnel_joined(world: World, wave_id: int) -> int:
    """The funnel's joined step for the wave: of those who clicked its Register link and registered after it
    (confirmed by the platform: these data have its registrations), those whom the files list as attendees."""
    _, confirmed = through_link(world, [m for m in world.messages if m["wave_id"] == wave_id])
    emails = {cid: row["email"] for cid, row in world.contacts.items()}
    return sum(1 for contact in confirmed if emails[contact] in EVERYONE)


@pytest.fixture
def talk(db: Database, tmp_path: Path) -> Database:
    """The event ``talk`` (organiser in Europe/Zurich) and contacts p0 ... p9@example.org in list ``guests``."""
    add_contacts(db, tmp_path, {f"p{i}@example.org": "" for i in range(10)})
    add_event_at(db, START, "talk")
    return db


@pytest.fixture
def zoom_file(tmp_path: Path) -> Path:
    """The Zoom fixture, copied: the import writes its rejects and non-contacts beside it."""
    path = tmp_path / "zoom.csv"
    shutil.copyfile(ZOOM_REPORT, path)
    return path


def stored(db: Database, event_id: int = 1) -> dict[str, tuple[datetime | None, int | None, str]]:
    """The event's attendances: by address, first join, minutes, source."""
    stmt = (
        select(contacts.c.email, attendances.c.joined_at, attendances.c.minutes, attendances.c.source)
        .join(contacts, contacts.c.id == attendances.c.contact_id)
        .where(attendances.c.event_id == event_id)
    )
    with db.read() as conn:
        return {e: (at and at.astimezone(UTC), m, s) for e, at, m, s in conn.execute(stmt)}


def outcome(report: AttendeeImportReport) -> dict[str, Any]:
    return {
        "added": report.added,
        "updated": report.updated,
        "known": report.known,
        "not_contacts": report.not_contacts,
        "rejected": report.rejected,
        "rejoins": report.rejoins,
        "skipped": dict(report.skipped),
        "rows": report.rows,
    }


def report_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")))


# --- the files -------------------------------------------------------------------------------------------------


def test_the_fixture_is_a_zoom_export_as_written() -> None:
    raw = ZOOM_REPORT.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfAttendee Report\r\n")
    assert raw.count(b"\r\n") == raw.count(b"\n") == 27
    for title in (b"\r\nHost Details\r\n", b"\r\nPanelist Details\r\n", b"\r\nAttendee Details\r\n"):
        assert title in raw


def test_a_zoom_report_records_each_attendee_once_and_no_host_or_panelist(talk: Database, zoom_file: Path) -> None:
    report = import_attendees(talk, "talk", zoom_file, now=NOW)

    assert outcome(report) == {
        "added": 4,
        "updated": 0,
        "known": 0,
        "not_contacts": 1,
        "rejected": 2,
        "rejoins": 1,
        "skipped": {DID_NOT_ATTEND: 1},
        "rows": 9,  # the rows of the attendees' sections; the host's and panelist's are not read
    }
    assert report.attendees == 5
    assert stored(talk) == {email: (at, minutes, "zoom") for email, (at, minutes) in ATTENDED.items()}

    # Line numbers as an editor shows them, the title rows and other sections counted.
    assert [(r.line, r.email) for r in report.rejections] == [(21, "fay(at)example.org"), (22, "p5@example.org")]
    assert report.rejections[0].reason.startswith("email: 'fay(at)example.org' is not a valid address")
    assert report.rejections[1].reason.startswith("join time: 'sometime' is not a date and time like")
    assert [(s.line, s.email, s.reason) for s in report.strangers] == [(20, "eve@elsewhere.org", "not a contact")]

    rejects = report_rows(rejects_path_for(zoom_file))
    assert rejects[0][:7] == [
        "line",
        "reason",
        "Attended",
        "User Name (Original Name)",
        "First Name",
        "Last Name",
        "Email",
    ]
    assert [(row[0], row[6]) for row in rejects[1:]] == [("21", "fay(at)example.org"), ("22", "p5@example.org")]
    strangers = report_rows(not_contacts_path_for(zoom_file))
    assert [(row[0], row[1], row[6]) for row in strangers[1:]] == [("20", "not a contact", "eve@elsewhere.org")]
    assert report.rejects_path == rejects_path_for(zoom_file)
    assert report.not_contacts_path == not_contacts_path_for(zoom_file)
    # Not added as a contact.
    with talk.read() as conn:
        assert conn.scalar(select(contacts.c.id).where(contacts.c.email == "eve@elsewhere.org")) is None


def test_a_join_time_after_the_import_is_refused_as_a_wrong_time_zone(talk: Database, tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    path.write_text("Email,Join Time,Time in Session (minutes)\np2@example.org,2030-06-19 11:00,30\n")
    report = import_attendees(talk, "talk", path, zone="UTC", now=NOW)  # 08:00: three hours before
    assert report.added == 0
    [rejected] = report.rejections
    assert "join time: '2030-06-19 11:00' (read in UTC) is after this import" in rejected.reason


def test_a_reimport_changes_nothing_and_another_report_adds_only_what_it_knows_more(
    talk: Database, zoom_file: Path, tmp_path: Path
) -> None:
    import_attendees(talk, "talk", zoom_file, now=NOW)
    first = stored(talk)
    again = import_attendees(talk, "talk", zoom_file, now=NOW)
    assert (again.added, again.updated, again.known, again.not_contacts) == (0, 0, 4, 1)
    assert stored(talk) == first

    # Webex's report of the same webinar: Bob stayed longer by its count (63 > 57: the longer stay stands, his
    # earlier join too), Jo and Kim are new, the host's row is skipped by role, Lu's duration is no duration.
    webex = tmp_path / "webex.csv"
    webex.write_text(WEBEX, encoding="utf-8")
    report = import_attendees(talk, "talk", webex, now=NOW)
    assert outcome(report) == {
        "added": 2,
        "updated": 1,
        "known": 0,
        "not_contacts": 0,
        "rejected": 1,
        "rejoins": 0,
        "skipped": {"host": 1},
        "rows": 5,
    }
    assert report.rejections[0].line == 6
    assert report.rejections[0].reason == (
        "minutes: 'a while' is not a number of minutes like 45 or a duration like 0:45:00"
    )
    now = stored(talk)
    assert now["p3@example.org"] == (datetime(2030, 6, 18, 12, 2, tzinfo=UTC), 63, "zoom")
    assert now["p9@example.org"] == (datetime(2030, 6, 18, 12, 20, tzinfo=UTC), 20, "csv")
    assert now["p7@example.org"] == (datetime(2030, 6, 18, 12, 50, tzinfo=UTC), 12, "csv")
    assert {k: v for k, v in now.items() if k not in ("p3@example.org", "p9@example.org", "p7@example.org")} == {
        k: v for k, v in first.items() if k != "p3@example.org"
    }
    # And that report again: nothing new either.
    assert import_attendees(talk, "talk", webex, now=NOW).known == 3


def test_a_file_whose_attendees_have_no_email_column_is_refused_in_one_line(talk: Database, tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    path.write_text("Attendee Report\nHost Details\nName,Email\nHost,p0@example.org\n\nAttendee Details\nName\nAnn\n")
    with pytest.raises(ImportFileError, match="no email column"):
        import_attendees(talk, "talk", path)
    # A section whose header lacks the email column, after one that has it: its header is the one rejected row.
    path.write_text(
        "Attendee Details\nEmail,Attended\np2@example.org,Yes\n\nOther Attended\nName,Join Time\nIvy,2030-06-18 14:00\n"
    )
    report = import_attendees(talk, "talk", path)
    assert (report.added, report.rejected) == (1, 1)
    assert report.rejections[0].line == 6
    assert "section header" in report.rejections[0].reason


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("45", 45), ("45.5", 46), ("44,4", 44), ("12 min", 12), ("12 mins", 12), ("0:45:29", 45), ("1:02:30", 63),
     ("12:30", 13), ("--", None), ("", None)],
)  # fmt: skip
def test_minutes_as_the_platforms_write_them(text: str, minutes: int | None) -> None:
    assert parse_minutes(text) == minutes


def test_attended_roles_and_bad_values() -> None:
    assert attended("Yes")
    assert attended("")
    assert not attended("No")
    assert not attended(" false ")
    with pytest.raises(FieldError, match="'maybe' is neither Yes nor No"):
        attended("maybe")
    with pytest.raises(FieldError, match="minutes: '-5'"):
        parse_minutes("-5")
    assert staff_role("Co-Host") == "co-host"
    assert staff_role("Panelist") == "panelist"
    assert staff_role("Attendee") is None
    assert staff_role("") is None


def test_the_command_line_imports_and_says_what_became_of_each_row(
    talk: Database, zoom_file: Path, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{talk.url.render_as_string(hide_password=False)}"\n')
    run = cli_ok(config)
    # Joined years ago: the command line imports at the real now, and a time after it is refused.
    zoom_file.write_text(zoom_file.read_text(encoding="utf-8").replace("2030", "2020"), encoding="utf-8")
    out = run("attendees", "import", "talk", str(zoom_file)).splitlines()
    assert out[0] == (
        f"{zoom_file}: 9 rows for event 'talk': 5 attendees (1 rejoin row merged): 4 added, 0 updated, "
        "0 already known, 1 not a contact; 1 row skipped (1 did not attend), 2 rejected"
    )
    assert out[1].startswith("  Rejected line 21 fay(at)example.org: email: ")
    assert out[2].startswith("  Rejected line 22 p5@example.org: join time: ")
    assert out[3] == "  Attendee line 20 eve@elsewhere.org: not a contact"
    assert out[4:] == [
        f"Rejected rows, with line and reason: {rejects_path_for(zoom_file)}",
        f"Attendees who are not contacts (not added): {not_contacts_path_for(zoom_file)}",
    ]
    again = run("attendees", "import", "talk", str(zoom_file), "--timezone", "Europe/Zurich")
    assert ": 0 added, 0 updated, 4 already known" in again
    runner = CliRunner()
    for args, fragment in (
        (["attendees", "import", "nope", str(zoom_file)], "no event 'nope'"),
        (["attendees", "import", "talk", str(tmp_path / "missing.csv")], "missing.csv: cannot open"),
        (["attendees", "import", "talk", str(zoom_file), "--timezone", "Nowhere"], "'Nowhere' is not an IANA"),
    ):
        one_line_error(runner.invoke(cli, ["--config", str(config), *args]), fragment)


# --- the reports -----------------------------------------------------------------------------------------------


# Besides the fixture's, a plain list of more attendees (the seeded campaign's first recipients are one per status:
# the fixture's alone would leave its invitation with almost nobody delivered who joined).
MORE = {f"p{i}@example.org" for i in range(9, 48, 3)} | {
    "p41@example.org"  # who clicked the invitation's Register link and registered: the funnel's joined step
}
EVERYONE = set(ATTENDED) | MORE


def import_everyone(db: Database, zoom_file: Path, tmp_path: Path) -> None:
    """The fixture's attendees and :data:`MORE`, imported for the seeded event ``talk``."""
    assert import_attendees(db, "talk", zoom_file, now=NOW).added == len(ATTENDED)
    more = tmp_path / "more.csv"
    more.write_text("Email,Join Time,Time in Session (minutes)\n" + "".join(f"{e},2030-06-18 14:00,30\n" for e in MORE))
    assert import_attendees(db, "talk", more, now=NOW).added == len(MORE)


def expected_joined(world: World, wave_id: int | None = None) -> int:
    """Recipients of a delivered message (of ``wave_id``, or any) whom the files list as attendees: counted from
    the inserted rows alone."""
    emails = {cid: row["email"] for cid, row in world.contacts.items()}
    return len(
        {
            m["contact_id"]
            for m in world.messages
            if m["status"] == "sent"
            and (wave_id is None or m["wave_id"] == wave_id)
            and emails[m["contact_id"]] in EVERYONE
        }
    )


@pytest.fixture
def seeded_with_attendance(db: Database, zoom_file: Path, tmp_path: Path) -> tuple[Database, World]:
    world = seed(db)
    import_everyone(db, zoom_file, tmp_path)
    return db, world


def test_before_any_attendance_the_funnel_ends_at_registered_and_joined_is_zero(db: Database) -> None:
    seed(db)
    report = campaign_report(db, "c")
    assert [s.step for s in report.funnel] == ["delivered", "opened", "clicked_register", "registered"]
    assert report.attendees == 0
    assert report.totals.joined == 0
    assert "Joined" not in report_html(report_document(report))


def test_joined_in_the_report_table_json_csv_and_html_equals_a_count_of_the_rows(
    seeded_with_attendance: tuple[Database, World], tmp_path: Path
) -> None:
    db, world = seeded_with_attendance
    report = campaign_report(db, "c")
    waves = {line.wave.name: line for line in report.waves}
    invitation = waves["invitation"]
    total = expected_joined(world)
    per_wave = {name: expected_joined(world, line.wave.id) for name, line in waves.items()}
    assert total > 0
    assert per_wave["invitation"] > 0
    assert per_wave["reminder"] > 0
    assert report.attendees == len(EVERYONE)
    assert report.totals.joined == total
    assert {name: line.tally.joined for name, line in waves.items()} == per_wave

    # The funnel's last step: of the invitation's recipients in its registered step, those who joined, over
    # registered and over delivered; the others who joined, beside it.
    step = report.funnel[-1]
    registered = report.funnel[-2].count
    nested = funnel_joined(world, invitation.wave.id)
    assert 0 < nested < per_wave["invitation"]
    assert [s.step for s in report.funnel][-2:] == ["registered", "joined"]
    assert step.count == nested
    assert step.of_delivered == pytest.approx(nested / invitation.tally.delivered)
    assert step.of_previous == pytest.approx(nested / registered)
    assert report.funnel_elsewhere[1] == per_wave["invitation"] - nested
    assert invitation.tally.rates()["joined"] == pytest.approx(per_wave["invitation"] / invitation.tally.delivered)

    # JSON: a key added, the others as they were.
    doc = report_document(report)
    assert doc["attendees"] == len(EVERYONE)
    assert doc["totals"]["joined"] == total
    assert {w["name"]: w["joined"] for w in doc["waves"]} == per_wave
    assert doc["funnel"][-1] == {
        "step": "joined",
        "count": nested,
        "of_delivered": round(nested / invitation.tally.delivered, 4),
        "of_previous": round(nested / registered, 4),
    }
    assert doc["funnel_elsewhere"]["joined"] == per_wave["invitation"] - nested

    # CSV: the two new columns after the earlier ones (and before expired_after_attempts, which came after them).
    out = io.StringIO()
    write_report_csv(report, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    header = next(csv.reader(io.StringIO(out.getvalue())))
    assert header[-3:] == ["joined", "rate_joined", "expired_after_attempts"]
    assert {r["name"]: int(r["joined"]) for r in rows} == {**per_wave, "c": total}

    # HTML: the funnel's Joined row and the per-wave row.
    page = report_html(doc)
    funnel_row = re.search(
        r'<th scope="row">Joined</th><td class="bar-cell">.*?</td><td class="n">(\d+)</td>', page, re.S
    )
    assert funnel_row is not None
    assert int(funnel_row.group(1)) == nested
    joined_outside = per_wave["invitation"] - nested
    assert f"{joined_outside} more joined the event without being in its registered step" in page
    assert "<p>Joined: recipients the event&#39;s attendee report (imported) lists as attendees" in page
    wave_row = re.search(r'<th scope="row">Joined the event</th>(.*?)</tr>', page, re.S)
    assert wave_row is not None
    assert [int(n) for n in re.findall(r'<td class="n">(\d+)', wave_row.group(1))][:2] == [
        per_wave["invitation"],
        per_wave["reminder"],
    ]

    # The terminal table: the funnel's joined row, and the joined table per wave.
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{db.url.render_as_string(hide_password=False)}"\n')
    table = cli_ok(config)("report", "c")
    assert max(len(line) for line in table.splitlines()) <= 80
    joined_line = next(line for line in table.splitlines() if line.strip(" │|").startswith("joined"))
    assert str(nested) in joined_line.split()
    joined_rows = {
        cells[0]: cells
        for line in table.split("Joined (recipients who attended)")[1].split("Time to first open")[0].splitlines()
        if (cells := line.replace("│", " ").split()) and cells[0] in ("invitation", "reminder", "total")
    }
    assert {name: int(cells[3]) for name, cells in joined_rows.items()} == {**per_wave, "total": total}
    assert json.loads(cli_ok(config)("report", "c", "--format", "json"))["totals"]["joined"] == total


def test_the_attended_and_not_attended_audiences_select_the_attendees_and_the_others(
    seeded_with_attendance: tuple[Database, World],
) -> None:
    db, world = seeded_with_attendance
    with db.read() as conn:
        list_id = conn.execute(select(lists.c.id).where(lists.c.name == "guests")).scalar_one()
        campaign_id = conn.execute(select(campaigns.c.id).where(campaigns.c.name == "c")).scalar_one()
        other_id = conn.execute(select(campaigns.c.id).where(campaigns.c.name == "other")).scalar_one()
        attended_ = sum(z.selected for z in zone_sizes(conn, list_id, campaign_id, Audience.ATTENDED))
        missed = sum(z.selected for z in zone_sizes(conn, list_id, campaign_id, Audience.NOT_ATTENDED))
        # The other campaign is for another event: nobody attended that one.
        elsewhere = sum(z.selected for z in zone_sizes(conn, list_id, other_id, Audience.ATTENDED))
    members = len(world.contacts)
    in_list = {row["email"] for row in world.contacts.values()} & EVERYONE
    assert attended_ == len(in_list) == len(EVERYONE)
    assert missed == members - len(in_list)
    assert elsewhere == 0


def test_the_dashboard_campaign_page_shows_joined_equal_to_the_rows(
    seeded: Seeded, tmp_path: Path, zoom_file: Path
) -> None:
    world = seeded.world
    import_everyone(seeded.db, zoom_file, tmp_path)
    body = seeded.client("ana").get(seeded.page).body
    waves = {m["wave_id"] for m in world.messages}
    names = {wave_id: name for wave_id, name in world.waves.items() if wave_id in waves}
    funnel = keyed(body, "funnel")
    assert list(funnel)[-1] == "joined"
    invitation_id = next(w for w, n in names.items() if n == "invitation")
    assert int(funnel["joined"].cells[1]) == funnel_joined(world, invitation_id)
    engagement = keyed(body, "engagement")
    assert {name: engagement[name].counts["joined"] for name in names.values()} == {
        name: expected_joined(world, wave_id) for wave_id, name in names.items()
    }
    assert engagement["total"].counts["joined"] == expected_joined(world)
    assert f"{len(EVERYONE)} contacts joined the event in all" in body
