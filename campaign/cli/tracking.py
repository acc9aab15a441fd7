"""``campaign tracking``: what the web service recorded, kept only as long as configured."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from campaign.cli.app import App, pass_app
from campaign.config import MAX_RETENTION_DAYS
from campaign.services.tracking import purge_tracking


@click.group("tracking")
def tracking_group() -> None:
    """Tracking events (opens, clicks, calendar downloads, unsubscribes)."""


@tracking_group.command("purge")
@click.option(
    "--days",
    type=click.IntRange(0, MAX_RETENTION_DAYS),
    default=None,
    help="Delete events older than this many days (default: tracking.retention_days; 0 deletes nothing).",
)
@pass_app
def purge_command(app: App, days: int | None) -> None:
    """Delete tracking events older than the retention period (run it daily, e.g. from cron)."""
    kept = app.settings.tracking.retention_days if days is None else days
    if kept == 0:
        click.echo("Retention is 0 days (kept for ever): nothing deleted.")
        return
    deleted = purge_tracking(app.database(), app.settings.tracking, datetime.now(UTC), days)
    click.echo(f"Deleted {deleted} tracking events older than {kept} days.")
