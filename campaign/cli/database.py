"""``campaign init`` and ``campaign db``."""

from __future__ import annotations

import click

from campaign.cli.app import App, pass_app
from campaign.secrets import signing_key
from campaign.services.database import init_database, schema_status, upgrade_database


@click.command("init")
@pass_app
def init_command(app: App) -> None:
    """Create the data directory, the database schema (or upgrade it) and the signing key."""
    db = app.database(check_schema=False)
    revision = init_database(db)
    signing_key(app.settings.data_dir, create=True)
    click.echo(f"Database ready: {db.describe()} (schema {revision})")
    click.echo(f"Data directory: {app.settings.data_dir}")


@click.group("db")
def db_group() -> None:
    """Database schema: upgrade and status."""


@db_group.command("upgrade")
@pass_app
def db_upgrade(app: App) -> None:
    """Upgrade the database schema to the newest revision (safe to run again)."""
    db = app.database(check_schema=False)
    click.echo(f"{db.describe()}: schema {upgrade_database(db)}")


@db_group.command("status")
@pass_app
def db_status(app: App) -> None:
    """Show the database's schema revision and the one this code needs."""
    db = app.database(check_schema=False)
    current, head = schema_status(db)
    state = "up to date" if current == head else "run `campaign db upgrade`" if current else "run `campaign init`"
    click.echo(f"{db.describe()}: schema {current or 'none'}, code needs {head} ({state})")
