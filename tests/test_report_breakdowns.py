"""Every breakdown at once (``campaign_report(by=[...])``, :mod:`campaign.store.report_cube`): each equals a count
this test computes itself from the rows it inserted, and the same breakdown asked alone, on SQLite and PostgreSQL.

The rows are :func:`tests.test_reports.seed`'s (contacts without a zone or a country, a custom attribute some
contacts lack and one that is a formula), plus a numeric custom attribute most contacts have and attendances of
the event, so that every kind of ``--by`` and every count, people joined included, is checked.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import insert, update

from campaign.models import RegistrationSource
from campaign.services.report_model import CampaignReport, Tally
from campaign.services.reports import campaign_report
from campaign.store.engine import Database
from campaign.store.tables import attendances, contacts
from tests.test_reports import BASE, World, actual, expected_tally, in_window, seed

BREAKDOWNS = ["zone", "country", "organisation", "locale", "attr:job_title", "attr:Level"]


def field_of(by: str) -> Any:
    """How the test reads a contact's value for ``by`` (as the report shows it: text, None when absent)."""
    named = {"zone": "timezone", "country": "country", "organisation": "organisation", "locale": "locale"}
    if by in named:
        return lambda c: c[named[by]]
    attribute = by.removeprefix("attr:").lower()

    def value(c: dict[str, Any]) -> str | None:
        found = c["attributes"].get(attribute)
        return None if found is None else str(found)

    return value


def with_levels_and_attendees(db: Database, world: World) -> set[int]:
    """A numeric attribute ``level`` for two contacts in three (the others lack it), and an attendance of the
    campaign's event for one contact in five; the attendees' ids."""
    attendees = set()
    with db.write() as conn:
        for n, (contact_id, row) in enumerate(sorted(world.contacts.items())):
            if n % 3:
                row["attributes"] = {**row["attributes"], "level": n % 4}
                conn.execute(update(contacts).where(contacts.c.id == contact_id).values(attributes=row["attributes"]))
            if n % 5 == 0:
                attendees.add(contact_id)
                conn.execute(
                    insert(attendances).values(
                        event_id=world.event_id,
                        contact_id=contact_id,
                        joined_at=BASE + timedelta(days=10),
                        minutes=30,
                        source="import",
                        imported_at=BASE + timedelta(days=11),
                    )
                )
    return attendees


def expected(world: World, attendees: set[int], by: str, since: Any = None, wave: str | None = None) -> dict[Any, Any]:
    """Each group of ``by``: the numbers of its messages in scope (a wave, a window), computed from the rows."""
    read = field_of(by)
    groups: dict[Any, list[dict[str, Any]]] = {}
    for m in world.messages:
        if (wave is None or world.waves[m["wave_id"]] == wave) and in_window(m, since, None):
            groups.setdefault(read(world.contacts[m["contact_id"]]), []).append(m)
    return {
        key: {
            **expected_tally(world, chosen),
            "joined": len({m["contact_id"] for m in chosen if m["status"] == "sent"} & attendees),
        }
        for key, chosen in groups.items()
    }


def numbers(tally: Tally) -> dict[str, Any]:
    """A group's numbers as :func:`expected` gives them (a source no one registered by is 0, as the CSV and JSON
    show it)."""
    by_source = {s.value: tally.registered_by_source.get(s, 0) for s in RegistrationSource}
    return {**actual(tally), "by_source": by_source, "joined": tally.joined}


def shown(report: CampaignReport) -> dict[str, dict[Any, Any]]:
    """Each breakdown of ``report``: its groups' numbers by key."""
    return {table.by: {g.key: numbers(g.tally) for g in table.rows} for table in report.breakdowns}


def test_every_breakdown_at_once_equals_an_independent_count_and_each_asked_alone(db: Database) -> None:
    world = seed(db)
    attendees = with_levels_and_attendees(db, world)
    report = campaign_report(db, "c", by=BREAKDOWNS)
    names = ["zone", "country", "organisation", "locale", "attr:job_title", "attr:level"]
    assert [table.by for table in report.breakdowns] == names
    # The first is the report's breakdown, as with one --by.
    assert report.filters.by == "zone"
    assert report.breakdown == report.breakdowns[0].rows
    together = shown(report)
    for asked, name in zip(BREAKDOWNS, names, strict=True):
        assert together[name] == expected(world, attendees, asked), name
        alone = campaign_report(db, "c", by=asked)
        assert alone.breakdowns == (report.breakdowns[names.index(name)],)
    # The data reach every case: contacts without a zone or country, an attribute missing for some, people joined.
    assert None in together["zone"]
    assert None in together["country"]
    assert None in together["attr:level"]
    assert "2" in together["attr:level"]
    assert sum(group["joined"] for group in together["zone"].values()) > 0
    # Groups add up to the report's totals (each message, and each person, counts in one group).
    for groups in together.values():
        assert sum(g["statuses"]["sent"] for g in groups.values()) == report.totals.delivered
        assert sum(g["registered"] for g in groups.values()) == report.totals.registered
        assert sum(g["joined"] for g in groups.values()) == report.totals.joined


def test_every_breakdown_of_one_wave_in_a_window(db: Database) -> None:
    world = seed(db)
    attendees = with_levels_and_attendees(db, world)
    since = BASE + timedelta(hours=30)
    report = campaign_report(
        db, "c", by=["attr:level", "country", "attr:level"], wave="reminder", since=since.isoformat()
    )
    assert [table.by for table in report.breakdowns] == ["attr:level", "country", "attr:level"]
    together = [{g.key: numbers(g.tally) for g in table.rows} for table in report.breakdowns]
    assert together[0] == together[2] == expected(world, attendees, "attr:level", since, "reminder")
    assert together[1] == expected(world, attendees, "country", since, "reminder")


def test_without_breakdowns_there_are_none(db: Database) -> None:
    seed(db)
    nothing: list[str | list[str] | None] = [None, [], ""]
    for by in nothing:
        report = campaign_report(db, "c", by=by)
        assert report.breakdowns == ()
        assert report.breakdown is None
        assert report.filters.by is None
