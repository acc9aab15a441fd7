"""``campaign report``'s local hours (JSON, table, HTML file): people's opens and registrations by their own zone
and hour of the day, equal to what the inserted rows give (a half-hour zone, Asia/Kolkata, among them)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from campaign.render.figures import clear_peak
from campaign.render.report_html import report_html
from campaign.services.local_hours import zone_rows
from campaign.services.report_documents import report_document
from campaign.services.report_model import ZoneHours
from campaign.services.reports import campaign_report
from campaign.store.engine import Database
from tests.conftest import cli_ok
from tests.test_dashboard import expected_zone_hours, peak
from tests.test_report_html import parse, write_report
from tests.test_reports import config_for, seed


def test_the_json_lists_each_zones_opens_and_registrations_per_local_hour_of_the_inserted_rows(
    db: Database, tmp_path: Path
) -> None:
    world = seed(db)
    expected = expected_zone_hours(world)
    document = json.loads(cli_ok(config_for(tmp_path, db))("report", "c", "--format", "json"))
    shown = {
        z["zone"]: (+Counter(dict(enumerate(z["opened"]))), +Counter(dict(enumerate(z["registered"]))))
        for z in document["local_hours"]
    }
    assert shown == expected
    # Kolkata's people in Kolkata's hours (+05:30): an hour of UTC is two of its hours, counted where they fall.
    assert "Asia/Kolkata" in shown
    assert sum(shown["Asia/Kolkata"][0].values())
    for z in document["local_hours"]:
        assert len(z["opened"]) == len(z["registered"]) == 24
        assert (z["peak_open_hour"] is None) == (not any(z["opened"]))
        if z["peak_open_hour"] is not None:
            assert f"{z['peak_open_hour']:02d}:00" == peak(expected[z["zone"]][0])
    opens = [sum(z["opened"]) for z in document["local_hours"]]
    assert opens == sorted(opens, reverse=True)


def test_the_table_and_the_html_file_show_the_same_local_hours(db: Database, tmp_path: Path) -> None:
    world = seed(db)
    expected = expected_zone_hours(world)
    text = cli_ok(config_for(tmp_path, db))("report", "c")
    assert "In people's own zone and hour of day" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    kolkata = next(line.split() for line in text.splitlines() if line.split()[:1] == ["Asia/Kolkata"])
    opened, registered = expected["Asia/Kolkata"]
    assert kolkata[1:5] == [
        str(sum(opened.values())),
        peak(opened).replace(":00", "h"),
        str(sum(registered.values())),
        peak(registered).replace(":00", "h") if registered else "-",
    ]
    assert [int(n) for n in kolkata[5:]] == [sum(opened[h] for h in range(s, s + 4)) for s in range(0, 24, 4)]

    _, html = write_report(db, tmp_path)
    rows = parse(html).rows("local-hours")
    assert {zone: int(cells[0]) for zone, cells in rows.items()} == {
        "(none)" if zone is None else zone: sum(o.values()) for zone, (o, _) in expected.items()
    }
    assert rows["Asia/Kolkata"][1] == peak(opened)
    assert [int(n) for n in rows["Asia/Kolkata"][4:]] == [
        sum(opened[h] for h in range(s, s + 4)) for s in range(0, 24, 4)
    ]


def test_advice_on_when_to_send_names_an_hour_only_when_it_stands_out(db: Database) -> None:
    # One registration in each of five hours says nothing about when to send (an analyst saw the earliest of such
    # a tie advised as "when to send next time").
    tied = [0] * 24
    for hour in (2, 9, 11, 15, 20):
        tied[hour] = 1
    clear = list(tied)
    clear[9] = 3
    assert clear_peak(tied) is None
    assert clear_peak(clear) == 9
    assert clear_peak([0] * 24) is None
    zone = ZoneHours("Asia/Manila", tuple(clear), tuple(tied))
    assert (zone.advised_open_hour, zone.advised_registration_hour) == (9, None)
    assert (zone.peak_open_hour, zone.peak_registration_hour) == (9, 2)  # the tables' column: earliest of equals
    _, together = zone_rows([zone])
    assert together is not None
    assert (together.advised_open_hour, together.advised_registration_hour) == (9, None)
    seed(db)
    doc = report_document(campaign_report(db, "c", local_hours=True))
    manila = {
        "zone": "Asia/Manila",
        "opened": tied,
        "registered": clear,
        "peak_open_hour": 2,
        "peak_registration_hour": 9,
    }
    html = report_html({**doc, "local_hours": [manila]})
    assert "People opened most at no hour yet" in html
    assert "registered most between 09:00 and 10:00" in html
