"""``campaign contacts ...`` and ``campaign lists``."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click

from campaign.cli.app import COUNT, POSITIVE_COUNT, App, pass_app
from campaign.cli.output import table
from campaign.cli.status import instant
from campaign.models import AuditAction
from campaign.rules.wording import counted
from campaign.services import audit
from campaign.services.contact_import import ImportReport, RowIssue, import_contacts
from campaign.services.contacts import (
    contact_details,
    export_contacts,
    export_contacts_to_file,
    find_contacts,
    list_lists,
)
from campaign.services.unsubscribe import unsubscribe_addresses

_SHOWN_ISSUES = 10


@click.group("contacts")
def contacts_group() -> None:
    """Import, list, show and export contacts."""


@contacts_group.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--list", "list_name", required=True, help="List to add the contacts to (created if needed).")
@click.option("--encoding", help="File encoding when not UTF-8, e.g. cp1252 or latin-1.")
@click.option("--delimiter", type=click.Choice([",", ";", "tab"]), help="Override the sniffed delimiter.")
@pass_app
def contacts_import(app: App, file: Path, list_name: str, encoding: str | None, delimiter: str | None) -> None:
    """Import contacts from a CSV FILE into a list.

    Columns: email (required), name, first_name, last_name, timezone, country, locale, organisation;
    any other column becomes a custom attribute. Rejected rows are reported with their line number and
    written to FILE.rejects.csv; the rest imports. Exits 1 only when nothing could be imported.
    """
    db = app.database()
    sep = "\t" if delimiter == "tab" else delimiter
    batch_size = app.settings.contacts.import_batch_size
    if sys.stderr.isatty():
        with click.progressbar(length=max(file.stat().st_size, 1), label="Importing", file=sys.stderr) as bar:
            done = 0

            def advance(read: int, _total: int) -> None:
                nonlocal done
                bar.update(read - done)
                done = read

            report = import_contacts(
                db, file, list_name, encoding=encoding, delimiter=sep, batch_size=batch_size, progress=advance
            )
    else:
        report = import_contacts(db, file, list_name, encoding=encoding, delimiter=sep, batch_size=batch_size)
    # In the audit log as an import through the pages is (no user: the command line), so the list's page shows
    # every file that went into it.
    audit.record(
        db,
        AuditAction.CONTACTS_IMPORTED,
        user_id=None,
        target=report.list_name,
        details=report.audit_details(file.name),
    )
    print_report(report)
    if report.imported == 0:
        raise click.ClickException(f"nothing imported from {file}")


def print_report(report: ImportReport) -> None:
    """Print an import's counts, its first rejected and flagged rows, and where the rejects file is."""
    click.echo(
        f"{report.path}: {report.rows} row{'s' if report.rows != 1 else ''} into list {report.list_name!r}: "
        f"{report.new} new, "
        f"{report.updated} updated, {report.unchanged} unchanged, {report.duplicates} duplicates merged, "
        f"{report.rejected} rejected, {report.flagged} flagged"
    )
    if report.suppressed:
        click.echo(f"{report.suppressed} of them are suppressed (unsubscribed or bounced) and stay suppressed.")
    print_issues("Rejected", report.rejections, report.rejected)
    print_issues("Flagged", report.flags, report.flagged)
    if report.rejects_path:
        click.echo(f"Rejected rows, with line and reason: {report.rejects_path}")
    if report.rejects_error:
        click.echo(f"Warning: {report.rejects_error}", err=True)


def print_issues(title: str, issues: Sequence[RowIssue], total: int) -> None:
    """Print the first of an import's ``total`` issues of a kind (``Rejected line 12 ann@example.org: reason``)
    and how many more there are."""
    for issue in issues[:_SHOWN_ISSUES]:
        who = f" {issue.email}" if issue.email else ""
        click.echo(f"  {title} line {issue.line}{who}: {issue.reason}")
    if total > _SHOWN_ISSUES:
        click.echo(f"  ... and {total - _SHOWN_ISSUES} more {title.lower()} rows")


@contacts_group.command("list")
@click.option("--list", "list_name", help="Only contacts in this list.")
@click.option("--search", help="Only contacts whose address, name or organisation contains this text.")
@click.option("--no-timezone", is_flag=True, help="Only contacts without a time zone (flagged at import).")
@click.option("--limit", type=POSITIVE_COUNT, default=50, show_default=True, help="How many to show.")
@click.option("--offset", type=COUNT, default=0, help="How many to skip.")
@pass_app
def contacts_list(
    app: App, list_name: str | None, search: str | None, no_timezone: bool, limit: int, offset: int
) -> None:
    """List contacts in address order."""
    found = find_contacts(
        app.database(), list_name=list_name, text=search, without_timezone=no_timezone, limit=limit, offset=offset
    )
    rows = [(c.email, c.display_name, c.timezone, c.locale, c.country, c.organisation) for c in found]
    table(("email", "name", "timezone", "locale", "country", "organisation"), rows)


@contacts_group.command("show")
@click.argument("email")
@pass_app
def contacts_show(app: App, email: str) -> None:
    """Show one contact: fields, custom attributes, lists and suppression."""
    details = contact_details(app.database(), email)
    c = details.contact
    for label, value in (
        ("email", c.email),
        ("name", c.name),
        ("first name", c.first_name),
        ("last name", c.last_name),
        ("time zone", c.timezone or "(none: sees the organiser's time and UTC)"),
        ("country", c.country),
        ("locale", c.locale),
        ("organisation", c.organisation),
        ("attributes", json.dumps(dict(c.attributes), ensure_ascii=False) if c.attributes else None),
        ("lists", ", ".join(details.lists) or None),
        ("suppressed", details.suppressed),
        ("added", c.created_at and instant(c.created_at)),
        ("updated", c.updated_at and instant(c.updated_at)),
    ):
        if value is not None:
            click.echo(f"{label + ':':<14}{value}")


@contacts_group.command("unsubscribe")
@click.argument("emails", nargs=-1, required=True)
@pass_app
def contacts_unsubscribe(app: App, emails: tuple[str, ...]) -> None:
    """Unsubscribe EMAILS from everything, as their unsubscribe link would: for requests that came by mail."""
    for address, already in unsubscribe_addresses(app.database(), emails, datetime.now(UTC)):
        click.echo(f"{address}: {'unsubscribed' if already is None else f'already suppressed ({already.value})'}")


@contacts_group.command("export")
@click.option("--list", "list_name", help="Only contacts in this list.")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    help="File (default, or -: stdout).",
)
@click.option("--force", is_flag=True, help="Overwrite the output file if it exists.")
@pass_app
def contacts_export(app: App, list_name: str | None, output: Path | None, force: bool) -> None:
    """Export contacts as CSV, in the import format.

    The output file appears whole or not at all, and an existing one is only replaced with --force.
    """
    db = app.database()
    if output is None or str(output) == "-":  # `-` is standard output, as for most commands that write files
        export_contacts(db, sys.stdout, list_name=list_name)
        return
    count = export_contacts_to_file(db, output, list_name=list_name, overwrite=force)
    click.echo(f"{counted(count, 'contact')} written to {output}", err=True)


@click.command("lists")
@pass_app
def lists_command(app: App) -> None:
    """Show contact lists and their sizes."""
    table(
        ("list", "contacts", "created"),
        [(cl.name, cl.size, cl.created_at and instant(cl.created_at)) for cl in list_lists(app.database())],
    )
