"""``campaign report``: a campaign's delivery and engagement report as terminal tables, CSV, JSON or an HTML file.

The numbers are :mod:`campaign.services.reports`'s; this module only lays them out. Tables are drawn by rich
to fit 80 columns (wider on a wider terminal, or when their numbers cannot fit: :func:`_print_table`); every value
that comes from data (names, attributes, server replies) is shown as plain text, never as markup or terminal
control codes. The HTML file is the JSON document laid out by :mod:`campaign.render.report_html`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import click
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from campaign.cli.app import COUNT, App, pass_app
from campaign.cli.output import local_time
from campaign.cli.status import instant
from campaign.models import MessageStatus
from campaign.render.figures import (
    FUNNEL_JOINED_NOTE,
    FUNNEL_REGISTERED_NOTES,
    duration,
    funnel_elsewhere_note,
    percent,
)
from campaign.render.report_html import report_html
from campaign.services.files import atomic_text_file
from campaign.services.local_hours import BUCKET_HOURS, zone_rows
from campaign.services.report_documents import lines_document, report_document, write_lines_csv, write_report_csv
from campaign.services.report_model import CampaignLine, CampaignReport, Delays, Tally
from campaign.services.reports import UNDELIVERED_SHOWN, campaign_lines, campaign_report

FORMATS = ("table", "csv", "json", "html")


@click.command("report")
@click.argument("campaign", required=False)
@click.option("--all", "every", is_flag=True, help="One line per campaign instead of one campaign's report.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True, help="Output format.")
@click.option(
    "--by",
    multiple=True,
    help="Break the tallies down by zone, country, organisation, locale or attr:NAME; repeat for several.",
)
@click.option("--wave", help="Only this wave's messages.")
@click.option("--since", help="Only messages sent (or due) from this date or time (ISO; the --zone's wall clock).")
@click.option("--until", help="Only messages sent (or due) before this date or time.")
@click.option(
    "--zone", help="IANA zone of the hourly series and of dates without an offset (default: the organiser's)."
)
@click.option(
    "--undelivered",
    type=COUNT,
    default=UNDELIVERED_SHOWN,
    show_default=True,
    help="How many recipients who did not get a message to list (latest first).",
)
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write to this file.")
@click.option("--force", is_flag=True, help="Overwrite the output file if it exists.")
@pass_app
def report_command(
    app: App,
    campaign: str | None,
    every: bool,
    fmt: str,
    by: tuple[str, ...],
    wave: str | None,
    since: str | None,
    until: str | None,
    zone: str | None,
    undelivered: int,
    output: Path | None,
    force: bool,
) -> None:
    """Delivery and engagement report of CAMPAIGN (name or id), or of every campaign with --all.

    Per wave and in all: messages by state, unique opens and clicks by people and by machines, registrations by
    source, unsubscribes, each with its rate; the funnel; clicks per link; activity per local hour; people's
    activity by their own zone and hour of day; time to open and to register; the recipients who did not get it,
    with the server's reply.
    """
    if every and campaign is not None:
        raise click.UsageError("give a CAMPAIGN or --all (one line per campaign), not both")
    if not every and campaign is None:
        raise click.UsageError("give a CAMPAIGN, or --all for one line per campaign")
    if every and (by or any(v is not None for v in (wave, since, until, zone))):
        raise click.UsageError("--all takes only --format, -o and --force")
    if every and fmt == "html":
        raise click.UsageError("--all gives --format table, csv or json; html is one campaign's report")
    db = app.database()
    if every:
        lines = campaign_lines(db)
        now = datetime.now(UTC)
        writers: dict[str, Callable[[TextIO], None]] = {
            "table": lambda out: _print_lines(lines, out),
            "csv": lambda out: write_lines_csv(lines, out),
            "json": lambda out: _print_json(lines_document(lines, now), out),
        }
    else:
        assert campaign is not None
        report = campaign_report(
            db,
            campaign,
            wave=wave,
            since=since,
            until=until,
            by=list(by),
            zone=zone,
            undelivered=undelivered,
            local_hours=fmt != "csv",  # the CSV is the tallies' table alone
        )
        writers = {
            "table": lambda out: _print_report(report, out),
            "csv": lambda out: write_report_csv(report, out),
            "json": lambda out: _print_json(report_document(report), out),
            "html": lambda out: _print_html(report, out),
        }
    with _destination(output, force) as out:
        writers[fmt](out)
    if output is not None:
        click.echo(f"Report written to {output}", err=True)


@contextmanager
def _destination(output: Path | None, force: bool) -> Iterator[TextIO]:
    """Standard output, or the file asked for (whole or not at all, never over one unless forced)."""
    if output is None:
        yield sys.stdout
        return
    with atomic_text_file(output, overwrite=force) as fh:
        yield fh


def _print_json(document: object, out: TextIO) -> None:
    out.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")


def _print_html(report: CampaignReport, out: TextIO) -> None:
    out.write(report_html(report_document(report)))


# --- tables ----------------------------------------------------------------------------------------------------


def _console(out: TextIO) -> Console:
    # Standard output on a terminal takes its width; anything else (a pipe, a file) 80 columns.
    width = None if out is sys.stdout and out.isatty() else 80
    return Console(file=out, width=width, highlight=False, emoji=False, markup=False)


def _print_table(console: Console, table: Table) -> None:
    """Print ``table`` (of :func:`_table`'s numbers: no free text but in its first column) in the console's width,
    or wider when its numbers (never wrapped) do not fit with its first column (names) folded to its minimum: Rich
    would squeeze the last columns to nothing, silently (the campaigns table lost its bounces in 80 columns so).
    A table with free text elsewhere (links, replies) is printed as Rich fits it, its text cut short."""
    first = table.columns[0]
    names = max([cell_len(str(first.header)), *(cell_len(str(cell)) for cell in first.cells)])
    whole = Measurement.get(console, console.options.update(width=10_000), table).maximum
    needed = whole - names + min(names, first.min_width or names)  # with its names folded as far as they go
    width = console.width
    console.width = max(width, needed)
    try:
        console.print(table)
    finally:
        console.width = width


def _plain(value: object) -> Text:
    """Data as a table cell: plain text (no markup), control characters (escape sequences) as spaces."""
    text = "" if value is None else str(value)
    return Text("".join(c if c.isprintable() else " " for c in text))


def _with_rate(count: int, value: float | None) -> str:
    """``57 43%``; a count of none, or over nothing, alone."""
    return f"{count} {percent(value)}" if count and value is not None else str(count)


def _table(title: str, headers: Sequence[str], names: Sequence[str] = ()) -> Table:
    """A table whose first column is names (left; as wide as the longest of ``names`` up to 20 characters, then
    folded) and the others numbers (right, never wrapped), one space apart: 80 columns hold eight."""
    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, expand=False, padding=(0, 0, 0, 1)
    )
    widest = max((len(name) for name in (headers[0], *names)), default=0)
    for i, header in enumerate(headers):
        if i == 0:
            table.add_column(header, justify="left", overflow="fold", min_width=min(20, max(8, widest)))
        else:
            table.add_column(header, justify="right", no_wrap=True)
    return table


def _delays_line(what: str, delays: Delays) -> str:
    if not delays.count:
        return f"{what}: none yet"
    return f"{what}: median {duration(delays.median)}, 90% within {duration(delays.p90)} ({delays.count})"


def _print_report(report: CampaignReport, out: TextIO) -> None:
    console = _console(out)
    c, e, f = report.campaign, report.event, report.filters
    console.print(Text.assemble("Campaign ", _plain(c.name), f" ({c.status.value}) · list ", _plain(c.list_name)))
    console.print(Text.assemble("Event ", _plain(e.slug), f" · {instant(e.starts_at)}"))
    scope = [f"wave {f.wave}" if f.wave else "all waves"]
    # On the zone's clock, as --since and --until were given.
    if f.since:
        scope.append(f"from {local_time(f.since, f.zone)}")
    if f.until:
        scope.append(f"until {local_time(f.until, f.zone)}")
    console.print(_plain(f"{', '.join(scope)} · hours in {f.zone}"))
    lines = [(w.wave.name, w.tally) for w in report.waves]
    _print_table(console, _delivery_table(lines, report.totals))
    _print_table(console, _engagement_table("Engagement (messages; rates over delivered)", lines, report.totals))
    if report.funnel_wave is not None:
        funnel = _table(f"Funnel of {report.funnel_wave}", ("step", "recipients", "of delivered", "of previous"))
        for step in report.funnel:
            funnel.add_row(
                step.step.replace("_", " "), str(step.count), percent(step.of_delivered), percent(step.of_previous)
            )
        _print_table(console, funnel)
        console.print(_plain(funnel_elsewhere_note(*report.funnel_elsewhere, attendance=bool(report.attendees))))
        console.print(_plain(FUNNEL_REGISTERED_NOTES[report.funnel_registered]))
    if report.attendees:
        console.print(_plain(FUNNEL_JOINED_NOTE))
        _print_table(console, _joined_table(lines, report.totals))
    console.print(_delays_line("Time to first open", report.to_open))
    console.print(_delays_line("Time to registration", report.to_registration))
    for breakdown in report.breakdowns:
        rows = [("(none)" if g.key is None else g.key, g.tally) for g in breakdown.rows]
        _print_table(console, _engagement_table(f"By {breakdown.by}", rows, None, first=breakdown.by))
    if report.links:
        table = _table("Links (messages clicked in; clicks)", ("wave", "link", "people", "machines", "clicks"))
        for link in report.links:
            table.add_row(
                _plain(link.wave),
                _plain(link.name or link.url or f"#{link.index}"),
                str(link.clicked_human),
                str(link.clicked_machine),
                str(link.clicks_human),
            )
        console.print(table)  # link names and addresses: text, cut to fit
    if report.hourly:
        table = _table(f"Per hour in {f.zone}", ("hour", "opened", "clicked", "registered"))
        for hour in report.hourly:
            table.add_row(
                hour.start.strftime("%Y-%m-%d %H:%M %z"), str(hour.opened), str(hour.clicked), str(hour.registered)
            )
        _print_table(console, table)
    _print_local_hours(report, console)
    if report.undelivered_total:
        shown = len(report.undelivered)
        title = f"Not delivered: {report.undelivered_total}" + (
            f" (latest {shown})" if shown < report.undelivered_total else ""
        )
        table = _table(title, ("recipient", "wave", "status", "reply"))
        for u in report.undelivered:
            table.add_row(_plain(u.email), _plain(u.wave), u.status, _plain(u.smtp_reply or u.error or ""))
        console.print(table)  # servers' replies: text, cut to fit


def _print_local_hours(report: CampaignReport, console: Console) -> None:
    """People's opens and registrations by their zone and hour of the day there: when to send next time."""
    rows, together = zone_rows(report.local_hours or ())
    if together is None:
        return
    buckets = [f"{h:02d}-\n{h + BUCKET_HOURS:02d}" for h in range(0, 24, BUCKET_HOURS)]
    headers = ("zone", "opened", "peak", "regis-\ntered", "peak", *buckets)
    names = [r.zone or "" for r in rows]
    table = _table(f"In people's own zone and hour of day (opens per {BUCKET_HOURS} hours)", headers, names)
    for r in [*rows, together]:
        name = (
            "all"
            if r is together
            else f"{r.others} others"
            if r.others
            else r.zone or f"(none: {report.event.timezone})"
        )
        table.add_row(
            _plain(name),
            str(r.opened),
            _hour(r.peak_open_hour),
            str(r.registered),
            _hour(r.peak_registration_hour),
            *map(str, r.buckets),
        )
    _print_table(console, table)


def _hour(hour: int | None) -> str:
    return "-" if hour is None else f"{hour:02d}h"


# The delivery table's own columns (with their rates over attempted); the other states are listed beside them.
_ATTEMPT_COLUMNS = {
    MessageStatus.SENT: "delivered",
    MessageStatus.DEFERRED: "deferred",
    MessageStatus.BOUNCED: "bounced",
    MessageStatus.FAILED: "failed",
}


def _delivery_table(lines: Sequence[tuple[str, Tally]], totals: Tally) -> Table:
    headers = ("wave", "targeted", *_ATTEMPT_COLUMNS.values(), "other")
    table = _table("Delivery (messages; rates over attempted)", headers, [name for name, _ in lines])
    # The other states, one a line: few messages are in them, mostly none.
    table.columns[-1].justify = "left"
    table.columns[-1].min_width = len("suppressed 9999")
    for name, t in [*lines, ("total", totals)]:
        r = t.rates()
        rates = [_with_rate(t.statuses[s], r[column]) for s, column in _ATTEMPT_COLUMNS.items()]
        other = "\n".join(f"{s.value} {n}" for s, n in t.statuses.items() if n and s not in _ATTEMPT_COLUMNS)
        table.add_row(_plain(name), str(t.targeted), *rates, other)
    return table


def _joined_table(lines: Sequence[tuple[str, Tally]], totals: Tally) -> Table:
    """Per wave, its recipients who joined the event, over those registered and those delivered."""
    headers = ("wave", "delivered", "registered", "joined", "of registered", "of delivered")
    table = _table("Joined (recipients who attended)", headers, [name for name, _ in lines])
    for name, t in [*lines, ("total", totals)]:
        table.add_row(
            _plain(name), str(t.delivered), str(t.registered), str(t.joined), percent(t.joined_of_registered),
            percent(t.rates()["joined"]),
        )  # fmt: skip
    return table


def _engagement_table(
    title: str, lines: Sequence[tuple[str, Tally]], totals: Tally | None, first: str = "wave"
) -> Table:
    headers = (
        first,
        "deliv-\nered",
        "opened\npeople",
        "opened\nmachine",
        "clicked\npeople",
        "clicked\nmachine",
        "regis-\ntered",
        "unsub-\nscribed",
    )
    table = _table(title, headers, [name for name, _ in lines])
    for name, t in [*lines, *([("total", totals)] if totals is not None else [])]:
        r = t.rates()
        table.add_row(
            _plain(name),
            str(t.delivered),
            _with_rate(t.human_opened, r["opened_human"]),
            str(t.machine_opened),
            _with_rate(t.human_clicked, r["clicked_human"]),
            str(t.machine_clicked),
            _with_rate(t.registered, r["registered"]),
            str(t.unsubscribed),
        )
    return table


def _print_lines(lines: Sequence[CampaignLine], out: TextIO) -> None:
    console = _console(out)
    table = _table(
        "Campaigns (opens and clicks by people; rates over delivered)",
        ("campaign", "status", "targeted", "delivered", "opened", "clicked", "registered", "bounced"),
        [line.campaign.name for line in lines],
    )
    for line in lines:
        t = line.tally
        r = t.rates()
        table.add_row(
            _plain(line.campaign.name),
            line.campaign.status.value,
            str(t.targeted),
            str(t.delivered),
            _with_rate(t.human_opened, r["opened_human"]),
            _with_rate(t.human_clicked, r["clicked_human"]),
            _with_rate(t.registered, r["registered"]),
            str(t.statuses[MessageStatus.BOUNCED]),
        )
    _print_table(console, table)
