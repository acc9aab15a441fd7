"""``campaign registrants ...``: a webinar platform's registrants, imported and counted."""

from __future__ import annotations

from pathlib import Path

import click

from campaign.cli.app import App, pass_app
from campaign.cli.contacts import print_issues
from campaign.cli.output import table
from campaign.models import RegistrationSource
from campaign.services.events import get_event
from campaign.services.registrant_import import RegistrantImportReport, import_registrants
from campaign.services.registrations import registration_counts


@click.group("registrants")
def registrants_group() -> None:
    """Import a webinar platform's registrants; count who registered."""


@registrants_group.command("import")
@click.argument("event")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--timezone", "zone", help="Zone of the export's times (default: the event organiser's).")
@click.option("--encoding", help="File encoding when not UTF-8, e.g. cp1252 or latin-1.")
@click.option("--delimiter", type=click.Choice([",", ";", "tab"]), help="Override the sniffed delimiter.")
@pass_app
def registrants_import(
    app: App, event: str, file: Path, zone: str | None, encoding: str | None, delimiter: str | None
) -> None:
    """Record the approved registrants in a Zoom or Webex export FILE as registered for EVENT (slug or id).

    Columns read: email (required), registration time, approval status; a report's title rows before the
    header are skipped. Registrants who are not contacts are listed in FILE.not-contacts.csv, rejected rows in
    FILE.rejects.csv; the rest imports.
    """
    sep = "\t" if delimiter == "tab" else delimiter
    report = import_registrants(app.database(), event, file, zone=zone, encoding=encoding, delimiter=sep)
    print_import(report)


def print_import(report: RegistrantImportReport) -> None:
    """Print an import's counts, its first rejected rows and non-contacts, and where the full lists are."""
    skipped = sum(report.skipped.values())
    by_status = ", ".join(f"{count} {status}" for status, count in sorted(report.skipped.items()))
    click.echo(
        f"{report.path}: {report.rows} rows for event {report.event.slug!r}: {report.added} added, "
        f"{report.known} already known, {report.not_contacts} not contacts, {skipped} skipped by status"
        f"{f' ({by_status})' if by_status else ''}, {report.rejected} rejected"
    )
    print_issues("Rejected", report.rejections, report.rejected)
    print_issues("Registrant", report.strangers, report.not_contacts)
    if report.rejects_path:
        click.echo(f"Rejected rows, with line and reason: {report.rejects_path}")
    if report.not_contacts_path:
        click.echo(f"Registrants who are not contacts (not added): {report.not_contacts_path}")
    for warning in report.warnings:
        click.echo(f"Warning: {warning}", err=True)


@registrants_group.command("list")
@click.argument("event")
@pass_app
def registrants_list(app: App, event: str) -> None:
    """How many contacts registered for EVENT (slug or id), in all and by source."""
    db = app.database()
    found = get_event(db, event)
    counts = registration_counts(db, found)
    click.echo(f"{counts.contacts} contacts registered for event {found.slug!r}")
    table(("source", "contacts"), [(source.value, counts.by_source.get(source, 0)) for source in RegistrationSource])
