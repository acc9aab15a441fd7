"""``campaign registrants ...``: a webinar platform's registrants, imported and counted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from campaign.cli.app import App, pass_app
from campaign.cli.contacts import print_issues
from campaign.cli.output import table
from campaign.models import RegistrationSource
from campaign.rules.wording import counted
from campaign.services.events import get_event
from campaign.services.platform_import import PlatformImportReport
from campaign.services.registrant_import import RegistrantImportReport, import_registrants
from campaign.services.registrations import registration_counts


@click.group("registrants")
def registrants_group() -> None:
    """Import a webinar platform's registrants; count who registered."""


_Command = TypeVar("_Command", bound=Callable[..., Any])
_EXPORT_PARAMETERS = (
    click.argument("event"),
    click.argument("file", type=click.Path(path_type=Path, dir_okay=False)),
    click.option("--timezone", "zone", help="Zone of the file's times (default: the event organiser's)."),
    click.option("--encoding", help="File encoding when not UTF-8, e.g. cp1252 or latin-1."),
    click.option("--delimiter", type=click.Choice([",", ";", "tab"]), help="Override the sniffed delimiter."),
)


def export_parameters(command: _Command) -> _Command:
    """The parameters of an import of a platform's export: EVENT, FILE, --timezone, --encoding, --delimiter (its
    value as :func:`delimiter_of` reads it)."""
    for parameter in reversed(_EXPORT_PARAMETERS):
        command = parameter(command)
    return command


def delimiter_of(option: str | None) -> str | None:
    """The delimiter ``--delimiter`` names (``tab`` is a tab), or None to sniff it."""
    return "\t" if option == "tab" else option


@registrants_group.command("import")
@export_parameters
@pass_app
def registrants_import(
    app: App, event: str, file: Path, zone: str | None, encoding: str | None, delimiter: str | None
) -> None:
    """Record the approved registrants in a Zoom or Webex export FILE as registered for EVENT (slug or id).

    Columns read: email (required), registration time, approval status; a report's title rows before the
    header are skipped. Registrants who are not contacts are listed in FILE.not-contacts.csv, rejected rows in
    FILE.rejects.csv; the rest imports.
    """
    sep = delimiter_of(delimiter)
    report = import_registrants(app.database(), event, file, zone=zone, encoding=encoding, delimiter=sep)
    print_import(report)


def print_import(report: RegistrantImportReport) -> None:
    """Print a registrant import's counts, its first rejected rows and non-contacts, and where the lists are."""
    skipped = sum(report.skipped.values())
    by_status = ", ".join(f"{count} {status}" for status, count in sorted(report.skipped.items()))
    print_platform_import(
        report,
        "Registrant",
        f"{report.added} added, {report.known} already known, "
        f"{counted(report.not_contacts, 'not a contact', 'not contacts')}, {skipped} skipped by status"
        f"{f' ({by_status})' if by_status else ''}",
    )


def print_platform_import(report: PlatformImportReport, who: str, counts: str) -> None:
    """Print an import of a platform's export: its ``counts`` (what became of the rows), the first rejected rows
    and people who are not contacts (``who``: ``Registrant``), and where the full lists are."""
    click.echo(
        f"{report.path}: {counted(report.rows, 'row')} for event {report.event.slug!r}: {counts}, "
        f"{report.rejected} rejected"
    )
    print_issues("Rejected", report.rejections, report.rejected)
    print_issues(who, report.strangers, report.not_contacts)
    if report.rejects_path:
        click.echo(f"Rejected rows, with line and reason: {report.rejects_path}")
    if report.not_contacts_path:
        click.echo(f"{who}s who are not contacts (not added): {report.not_contacts_path}")
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
    click.echo(f"{counted(counts.contacts, 'contact')} registered for event {found.slug!r}")
    table(("source", "contacts"), [(source.value, counts.by_source.get(source, 0)) for source in RegistrationSource])
