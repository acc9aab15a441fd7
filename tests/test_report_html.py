"""The HTML report (``campaign report --format html``, :mod:`campaign.render.report_html`): its numbers equal counts
this test computes itself from the rows it inserted (the world of tests/test_reports.py); data stay text and cannot
leave their JSON island; the file names no other resource and its policy allows exactly its own scripts and style;
in headless Chromium, offline from a file, the chart draws without a console error, and print shows the tables.

The charts' library is uPlot, vendored from npm: the files in the package are the ones its VERSION file records.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from selenium.webdriver.chromium.webdriver import ChromiumDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait
from sqlalchemy import update

from campaign.cli import cli
from campaign.models import RegistrationSource
from campaign.render import charts
from campaign.render.figures import duration, percent
from campaign.services.report_documents import report_document
from campaign.services.reports import campaign_report
from campaign.store.engine import Database
from campaign.store.tables import contacts, links, waves
from tests.conftest import cli_ok
from tests.test_browser import WAIT_SECONDS, browser
from tests.test_reports import FORMULA, World, config_for, expected_tally, seed, through_link
from tests.test_web import Running, web

__all__ = ["browser", "web"]  # fixtures used here

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
HOSTILE = '</script><script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
UNDELIVERED = ("deferred", "bounced", "failed", "expired")
# Every element the report's template writes: data that became markup would add another (an <img>, an <a>).
TEMPLATE_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "dl", "dt", "dd", "main", "section", "h2",
    "div", "table", "caption", "thead", "tbody", "tr", "th", "td", "span", "br", "svg", "rect", "figure",
    "figcaption", "script", "p", "code", "footer",
}  # fmt: skip
# Attributes that make a browser fetch or navigate.
FETCHING = {"src", "href", "srcset", "action", "formaction", "data", "poster", "xlink:href", "background", "ping"}


class _Any:
    """Equal to anything (the instant a report was generated at)."""

    def __eq__(self, other: object) -> bool:
        return True


ANY: Any = _Any()


# --- reading the file as a browser's parser does -------------------------------------------------------------------


@dataclass
class Page:
    """What an HTML parser finds in the file: every element with its attributes, the rows of each section's tables
    (cell text, whitespace collapsed), the section headings, the scripts and the style."""

    tags: list[tuple[str, dict[str, str | None]]] = field(default_factory=list)
    tables: dict[str, list[list[str]]] = field(default_factory=dict)
    headings: list[str] = field(default_factory=list)
    scripts: list[tuple[dict[str, str | None], str]] = field(default_factory=list)
    styles: list[str] = field(default_factory=list)

    def rows(self, section: str) -> dict[str, list[str]]:
        """The body rows of the section's table, by their first cell."""
        return {row[0]: row[1:] for row in self.tables[section][1:]}

    def island(self, element_id: str) -> Any:
        [text] = [text for attrs, text in self.scripts if attrs.get("id") == element_id]
        return json.loads(text)


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self.section: str | None = None
        self.row: list[str] | None = None
        self.text: list[str] | None = None  # of a cell or heading
        self.raw: list[str] | None = None  # of a script or style

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.page.tags.append((tag, dict(attrs)))
        if tag == "section":
            self.section = dict(attrs).get("id")
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th", "h2"):
            self.text = []
        elif tag in ("script", "style"):
            self.raw = []
        elif tag == "br" and self.text is not None:
            self.text.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.text is not None and self.row is not None:
            self.row.append(" ".join("".join(self.text).split()))
            self.text = None
        elif tag == "h2" and self.text is not None:
            self.page.headings.append(" ".join("".join(self.text).split()))
            self.text = None
        elif tag == "tr" and self.row is not None:
            assert self.section is not None
            self.page.tables.setdefault(self.section, []).append(self.row)
            self.row = None
        elif tag == "script" and self.raw is not None:
            self.page.scripts.append((self._last("script"), "".join(self.raw)))
            self.raw = None
        elif tag == "style" and self.raw is not None:
            self.page.styles.append("".join(self.raw))
            self.raw = None

    def _last(self, tag: str) -> dict[str, str | None]:
        return next(attrs for name, attrs in reversed(self.page.tags) if name == tag)

    def handle_data(self, data: str) -> None:
        if self.raw is not None:
            self.raw.append(data)
        elif self.text is not None:
            self.text.append(data)


def parse(html: str) -> Page:
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser.page


def count(cell: str) -> int:
    """The count of a cell (``57 43%`` is 57, its rate after it)."""
    return int(cell.split()[0])


def rate_of(cell: str) -> str:
    return cell.split(maxsplit=1)[1]


# --- what the test expects, from its own rows -----------------------------------------------------------------------


def expected_cells(e: dict[str, Any]) -> dict[str, int]:
    """A tally the test computed (tests/test_reports.expected_tally), by the labels of the report's rows."""
    s = e["statuses"]
    return {
        "Targeted": sum(s.values()),
        **{"Delivered (sent)" if k == "sent" else k.capitalize(): n for k, n in s.items()},
        "Attempted": s["sent"] + s["deferred"] + s["bounced"] + s["failed"] + e["expired_after_attempts"],
        "Opened by people": e["human_opened"],
        "Opened by machines": e["machine_opened"],
        "Clicked by people": e["human_clicked"],
        "Clicked by machines": e["machine_clicked"],
        "Clicked Register": e["register_clicked"],
        "Registered": e["registered"],
        **{f"Registered: {source.value}": e["by_source"].get(source.value, 0) for source in RegistrationSource},
        "Registered: confirmed": e["confirmed"],
        "Unsubscribed": e["unsubscribed"],
    }


def write_report(db: Database, tmp_path: Path, *args: str) -> tuple[Path, str]:
    out = tmp_path / "report.html"
    cli_ok(config_for(tmp_path, db))("report", "c", "--format", "html", "-o", str(out), "--force", *args)
    return out, out.read_text(encoding="utf-8")


def human_clicks(world: World) -> list[dict[str, Any]]:
    return [h for h in world.hits if h["kind"] == "click" and not h["is_machine"]]


# --- the numbers --------------------------------------------------------------------------------------------------


def test_every_number_of_the_html_report_equals_a_count_of_the_inserted_rows(db: Database, tmp_path: Path) -> None:
    world = seed(db)
    _, html = write_report(db, tmp_path, "--by", "attr:job_title")
    page = parse(html)
    by_wave = {
        name: expected_tally(world, [m for m in world.messages if world.waves[m["wave_id"]] == name])
        for name in world.waves.values()
    }
    total = expected_tally(world, world.messages)

    # Per wave, a column each, then the total; a row per count.
    header, *_ = page.tables["waves"]
    assert header[1:] == ["invitation invitation, enqueued", "reminder reminder, enqueued", "Total"]
    expected = [expected_cells(by_wave["invitation"]), expected_cells(by_wave["reminder"]), expected_cells(total)]
    assert {label: [count(c) for c in cells] for label, cells in page.rows("waves").items()} == {
        label: [e[label] for e in expected] for label in expected[0]
    }
    # Rates over their base: attempted, targeted, delivered.
    t = expected[2]
    totals = {label: cells[-1] for label, cells in page.rows("waves").items()}
    assert rate_of(totals["Delivered (sent)"]) == percent(t["Delivered (sent)"] / t["Attempted"])
    assert rate_of(totals["Bounced"]) == percent(t["Bounced"] / t["Attempted"])
    assert rate_of(totals["Suppressed"]) == percent(t["Suppressed"] / t["Targeted"])
    assert rate_of(totals["Registered"]) == percent(t["Registered"] / t["Delivered (sent)"])
    assert totals["Expired"] == str(t["Expired"])  # a count without a rate

    # The invitation's funnel: its recipients at each step.
    invitation = expected_cells(by_wave["invitation"])
    funnel = page.rows("funnel")
    assert {step: count(cells[1]) for step, cells in funnel.items()} == {
        "Delivered": invitation["Delivered (sent)"],
        "Opened": invitation["Opened by people"],
        "Clicked Register": invitation["Clicked Register"],
        # The platform's registrations are known: those, of the people who clicked Register in the wave.
        "Registered": len(
            through_link(world, [m for m in world.messages if world.waves[m["wave_id"]] == "invitation"])[1]
        ),
    }
    assert funnel["Opened"][2] == percent(invitation["Opened by people"] / invitation["Delivered (sent)"])
    assert {label: count(cells[1]) for label, cells in page.rows("people-and-machines").items()} == {
        label: t[label]
        for label in ("Opened by people", "Opened by machines", "Clicked by people", "Clicked by machines")
    }

    # The breakdown by job title: a row per title (none as "(none)"), the formula as its text.
    groups: dict[Any, list[dict[str, Any]]] = {}
    for m in world.messages:
        groups.setdefault(world.contacts[m["contact_id"]]["attributes"].get("job_title"), []).append(m)
    breakdown_header = page.tables["breakdown"][0]
    assert breakdown_header[0] == "attr:job_title"
    assert {key: [count(c) for c in cells] for key, cells in page.rows("breakdown").items()} == {
        "(none)" if key is None else key: [
            expected_cells(expected_tally(world, chosen))[h] for h in breakdown_header[1:]
        ]
        for key, chosen in groups.items()
    }
    assert FORMULA in page.rows("breakdown")

    # The hourly series: each message's first open and click by a person, each registration, in one hour; the
    # chart draws the same numbers as the table.
    hourly = page.rows("hourly")
    assert [sum(count(cells[i]) for cells in hourly.values()) for i in range(3)] == [
        t["Opened by people"],
        t["Clicked by people"],
        t["Registered"],
    ]
    chart = page.island("hourly-chart-data")
    assert chart["zone"] == "Europe/Zurich"
    assert {s["label"]: sum(s["values"]) for s in chart["series"]} == {
        "Opened": t["Opened by people"],
        "Clicked": t["Clicked by people"],
        "Registered": t["Registered"],
    }
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:00 \+0[12]:00", hour) for hour in hourly)

    # Timing: a wait per message opened by a person, one per person registered.
    report = campaign_report(db, "c")
    timing = page.rows("timing")
    assert timing["From delivery to first open"] == [
        str(t["Opened by people"]),
        duration(report.to_open.median),
        duration(report.to_open.p90),
    ]
    assert count(timing["From delivery to registration"][0]) == t["Registered"]

    # Links: people's clicks, and the messages clicked in (per link), by people and by machines.
    clicks = human_clicks(world)
    link_rows = page.tables["links"][1:]  # a row per link of each wave
    assert sum(count(row[-1]) for row in link_rows) == len(clicks)
    assert sum(count(row[-3]) for row in link_rows) == len({(h["message_id"], h["link_index"]) for h in clicks})
    machine = {(h["message_id"], h["link_index"]) for h in world.hits if h["kind"] == "click" and h["is_machine"]}
    assert sum(count(row[-2]) for row in link_rows) == len(machine)

    # Who did not get it: all of them counted, the latest 20 listed.
    failed = [m for m in world.messages if m["status"] in UNDELIVERED]
    assert f"Not delivered: {len(failed)}" in page.headings
    assert len(page.tables["undelivered"]) - 1 == min(20, len(failed))

    # The JSON document travels in the file, as --format json gives it.
    document = json.loads(cli_ok(config_for(tmp_path, db))("report", "c", "--format", "json", "--by", "attr:job_title"))
    inside = page.island("report-data")
    assert {k: v for k, v in inside.items() if k != "generated_at"} == {
        k: v for k, v in document.items() if k != "generated_at"
    }


def test_a_report_of_no_messages_is_a_page_of_zeros(db: Database, tmp_path: Path) -> None:
    seed(db, people=4)
    with db.write() as conn:
        conn.execute(update(waves).where(waves.c.name == "reminder").values(name="later"))
    _, html = write_report(db, tmp_path, "--wave", "later", "--since", "2030-01-01")
    page = parse(html)
    assert "No opens, clicks or registrations yet." in html
    assert "hourly-chart" not in html
    assert page.rows("waves")["Targeted"] == ["0", "0"]
    result = CliRunner().invoke(cli, ["--config", str(config_for(tmp_path, db)), "report", "--all", "--format", "html"])
    assert result.exit_code == 2
    assert "html is one campaign's report" in result.output


# --- data stay text; nothing is loaded -----------------------------------------------------------------------------


def hostile_world(db: Database) -> World:
    """The seeded world with markup where data go: a wave's name, a custom attribute, a link's address."""
    world = seed(db)
    with db.write() as conn:
        conn.execute(update(waves).where(waves.c.name == "reminder").values(name=HOSTILE))
        first = min(world.contacts)
        conn.execute(update(contacts).where(contacts.c.id == first).values(attributes={"job_title": HOSTILE}))
        conn.execute(update(links).where(links.c.name == "join").values(url="javascript:window.pwned=3"))
    return world


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_data_stay_text_and_the_file_loads_nothing_but_its_own_scripts(db: Database, tmp_path: Path) -> None:
    hostile_world(db)
    _, html = write_report(db, tmp_path, "--by", "attr:job_title")
    page = parse(html)

    # No value became an element: the elements are the template's own, the scripts its four.
    assert {tag for tag, _ in page.tags} <= TEMPLATE_TAGS
    kinds = [(attrs.get("type"), attrs.get("id")) for attrs, _ in page.scripts]
    assert kinds == [
        ("application/json", "hourly-chart-data"),
        ("application/json", "report-data"),
        (None, None),
        (None, None),
    ]
    # Each value is shown as the text it is, and travels in the JSON island whole.
    assert page.tables["waves"][0][2] == f"{HOSTILE} reminder, enqueued"
    assert HOSTILE in page.rows("breakdown")
    assert FORMULA in page.rows("breakdown")
    assert ["join", "javascript:window.pwned=3"] in [row[1:3] for row in page.tables["links"]]
    assert HOSTILE not in html
    assert "&lt;/script&gt;&lt;script&gt;" in html
    document = page.island("report-data")
    assert document["waves"][1]["name"] == HOSTILE
    assert HOSTILE in {row["key"] for row in document["breakdown"]["rows"]}
    report = campaign_report(db, "c", by="attr:job_title", local_hours=True)
    assert document == {**report_document(report), "generated_at": ANY}

    # Nothing names another resource: no attribute that fetches or navigates, no address in any attribute, no
    # url() or @import in the style (addresses in the data are cell text, above).
    assert [(tag, name) for tag, attrs in page.tags for name in attrs if name in FETCHING] == []
    assert [value for _, attrs in page.tags for value in attrs.values() if value and "://" in value] == []
    [style] = page.styles
    assert "url(" not in style
    assert "@import" not in style

    # The policy allows exactly the file's own inline scripts and style, by hash, and no source.
    [policy] = [attrs["content"] for tag, attrs in page.tags if tag == "meta" and attrs.get("http-equiv")]
    assert policy is not None
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    executed = [text for attrs, text in page.scripts if attrs.get("type") is None]
    assert directives["default-src"] == "'none'"
    assert directives["script-src"].split() == [sha256_source(text) for text in executed]
    assert directives["style-src"] == sha256_source(style)
    assert directives["img-src"] == "data:"


# --- in a browser ---------------------------------------------------------------------------------------------------


def console(browser: WebDriver) -> list[dict[str, Any]]:
    """What pages logged to the console since the last call (errors, and what the policy refused)."""
    assert isinstance(browser, ChromiumDriver)
    entries: list[dict[str, Any]] = browser.get_log("browser")  # type: ignore[no-untyped-call]  # untyped upstream
    return entries


def test_in_a_browser_offline_the_chart_draws_without_an_error_and_print_shows_the_tables(
    browser: WebDriver, sqlite_db: Database, tmp_path: Path
) -> None:
    # On SQLite only: the file's numbers are checked against both backends above; the browser runs its scripts
    # offline, the same file either way, and costs seconds.
    hostile_world(sqlite_db)
    report, _ = write_report(sqlite_db, tmp_path, "--by", "attr:job_title")
    console(browser)  # what earlier pages logged
    browser.execute_cdp_cmd("Network.enable", {})
    offline = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", offline)
    try:
        browser.set_window_size(1100, 900)
        browser.get(report.as_uri())
        canvas = WebDriverWait(browser, WAIT_SECONDS).until(
            lambda b: b.find_elements(By.CSS_SELECTOR, "#hourly-chart canvas")
        )[0]
        assert canvas.size["width"] > 300
        assert canvas.size["height"] > 100
        assert browser.execute_script("return [document.querySelector('#hourly-chart canvas').width > 0]") == [True]
        legend = browser.find_element(By.CSS_SELECTOR, "#hourly-chart .u-legend").text
        assert all(label in legend for label in ("Opened", "Clicked", "Registered"))
        # No error (a script or style the policy refused would be one), nothing fetched, no value ran.
        assert console(browser) == []
        assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
        assert browser.execute_script("return window.pwned === undefined")
        ARTIFACTS.mkdir(exist_ok=True)
        browser.set_window_size(1100, 5000)
        browser.save_screenshot(str(ARTIFACTS / "report.png"))

        # On paper: the tables (the same numbers), not the chart.
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        shown = "return getComputedStyle(document.querySelector(arguments[0])).display"
        assert browser.execute_script(shown, ".chart") == "none"
        assert browser.execute_script(shown, "#hourly > .scroll > table") == "table"
        browser.save_screenshot(str(ARTIFACTS / "report-print.png"))
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", {**offline, "offline": False})
        browser.set_window_size(1100, 900)


# --- the chart files -------------------------------------------------------------------------------------------------


def test_the_web_app_serves_the_chart_files_the_report_inlines(web: Running) -> None:
    for name in ("uPlot.iife.min.js", "uPlot.min.css", "charts.js", "charts.css"):
        reply = web.get(f"/static/{name}")
        assert reply.status == 200, name
        assert reply.body.encode() == charts.assets()[name]
        assert reply.headers["content-type"].startswith("text/javascript" if name.endswith(".js") else "text/css")


def test_the_vendored_uplot_is_the_npm_release_its_version_file_and_the_makefile_name() -> None:
    folder = ROOT / "campaign" / "render" / "vendor" / "uplot"
    record = (folder / "VERSION").read_text()
    makefile = (ROOT / "Makefile").read_text()
    version = re.search(r"^UPLOT_VERSION := (\S+)$", makefile, re.M)
    integrity = re.search(r"^UPLOT_INTEGRITY := (\S+)$", makefile, re.M)
    assert version
    assert integrity
    assert record.startswith(f"uPlot {version[1]} (MIT), from the npm registry")
    assert f"integrity {integrity[1]}\n" in record
    recorded = {line.split()[2]: line.split()[1] for line in record.splitlines() if line.startswith("sha256 ")}
    assert recorded == {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
        for name in ("uPlot.iife.min.js", "uPlot.min.css", "LICENSE")
    }
    assert "MIT License" in (folder / "LICENSE").read_text()
    assert f"/*! https://github.com/leeoniya/uPlot (v{version[1]}) */" in (folder / "uPlot.iife.min.js").read_text()


def test_a_time_series_falls_to_zero_across_quiet_hours() -> None:
    start = datetime(2026, 6, 1, 7, tzinfo=UTC)
    hours = [start, start + timedelta(hours=1), start + timedelta(hours=3), start + timedelta(hours=9)]
    data = charts.time_series("Asia/Kolkata", hours, {"Opened": [1, 2, 3, 4], "Clicked": [0, 1, 0, 1]})
    at = int(start.timestamp())
    h = charts.HOUR
    assert data["zone"] == "Asia/Kolkata"
    assert data["x"] == [at - h, at, at + h, at + 2 * h, at + 3 * h, at + 4 * h, at + 8 * h, at + 9 * h, at + 10 * h]
    assert data["series"] == [
        {"label": "Opened", "values": [0, 1, 2, 0, 3, 0, 0, 4, 0]},
        {"label": "Clicked", "values": [0, 0, 1, 0, 0, 0, 0, 1, 0]},
    ]
    assert charts.time_series("UTC", [], {"Opened": []}) == {
        "zone": "UTC",
        "x": [],
        "series": [{"label": "Opened", "values": []}],
    }
