"""``campaign demo``: the whole pipeline on sample data, in a fresh demo database."""

from __future__ import annotations

import click

from campaign.cli.app import App, pass_app
from campaign.cli.contacts import print_report
from campaign.cli.events import when
from campaign.cli.output import table
from campaign.services.demo import DEMO_LIST, reset_demo_database, run_demo


@click.command("demo")
@pass_app
def demo_command(app: App) -> None:
    """Run the demo on data/contacts.csv and the sample event, in a fresh database under data/demo/."""
    data_dir = app.settings.data_dir
    db = reset_demo_database(data_dir)
    try:
        result = run_demo(db, data_dir)
    finally:
        db.dispose()
    click.echo(f"Demo database: {result.database}\n")
    for report in result.imports:
        print_report(report)
        click.echo()
    click.echo(f"Event {result.event.slug}: {result.event.title}")
    click.echo(f"  moved into the near future, same wall-clock time: {when(result.event)}\n")
    click.echo(f"Audience of list {DEMO_LIST!r} by time zone:")
    table(("time zone", "contacts"), sorted(result.zones.items()))
    click.echo("\nLook around in the demo database, for example:")
    click.echo(f"  CAMPAIGN_DATABASE_URL={result.database} campaign contacts list --list {DEMO_LIST}")
