"""``campaign attendees ...``: a webinar platform's attendee report, imported: who joined the event."""

from __future__ import annotations

from pathlib import Path

import click

from campaign.cli.app import App, pass_app
from campaign.cli.registrants import delimiter_of, export_parameters, print_platform_import
from campaign.rules.wording import counted
from campaign.services.attendee_import import AttendeeImportReport, import_attendees


@click.group("attendees")
def attendees_group() -> None:
    """Import a webinar platform's attendee report: who joined the event."""


@attendees_group.command("import")
@export_parameters
@pass_app
def attendees_import(
    app: App, event: str, file: Path, zone: str | None, encoding: str | None, delimiter: str | None
) -> None:
    """Record the attendees in a Zoom or Webex attendee report FILE who are contacts as having joined EVENT (slug
    or id).

    Zoom's sectioned report: only its "Attendee Details" and "Other Attended" sections count (hosts and panelists
    are not invitees). Columns read: email (required), attended (Yes/No), join time, time in session / duration,
    role. A person's rows (each rejoin is one) make one attendance: first join, minutes added up. Attendees who
    are not contacts are listed in FILE.not-contacts.csv, rejected rows in FILE.rejects.csv; the rest imports.
    Re-importing changes nothing.
    """
    sep = delimiter_of(delimiter)
    report = import_attendees(app.database(), event, file, zone=zone, encoding=encoding, delimiter=sep)
    print_import(report)


def print_import(report: AttendeeImportReport) -> None:
    """Print an attendee import's counts, its first rejected rows and non-contacts, and where the lists are."""
    skipped = ", ".join(f"{count} {reason}" for reason, count in sorted(report.skipped.items()))
    print_platform_import(
        report,
        "Attendee",
        f"{counted(report.attendees, 'attendee')} ({counted(report.rejoins, 'rejoin row')} merged): "
        f"{report.added} added, {report.updated} updated, {report.known} already known, "
        f"{counted(report.not_contacts, 'not a contact', 'not contacts')}; "
        f"{counted(sum(report.skipped.values()), 'row')} skipped{f' ({skipped})' if skipped else ''}",
    )
