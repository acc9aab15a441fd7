"""The ``campaign`` command: a thin layer over :mod:`campaign.services`.

Each command parses its arguments, calls one service, and prints. Library errors (:class:`CampaignError`)
become one line on stderr and exit status 1 here, at the edge, and nowhere else; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from campaign import __version__
from campaign.cli.app import App
from campaign.cli.attendees import attendees_group
from campaign.cli.campaigns import check_command, create_command, list_command, preview_command, show_command
from campaign.cli.contacts import contacts_group, lists_command
from campaign.cli.database import db_group, init_command
from campaign.cli.delivery import (
    cancel_command,
    launch_command,
    mailbox_command,
    pause_command,
    resume_command,
    retry_command,
    send_command,
    test_send_command,
)
from campaign.cli.demo import demo_command
from campaign.cli.events import events_group
from campaign.cli.plan import plan_command, status_command
from campaign.cli.registrants import registrants_group
from campaign.cli.report import report_command
from campaign.cli.serve import serve_command
from campaign.cli.tracking import tracking_group
from campaign.cli.users import users_group
from campaign.cli.waves import waves_group
from campaign.cli.web import web_command
from campaign.cli.worker import worker_command, workers_command
from campaign.config import DEFAULT_CONFIG_NAME, env_variable
from campaign.exceptions import CampaignError, StorageError


class _Group(click.Group):
    """Turns library errors into one clear line and exit status 1 (a traceback with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CampaignError as exc:
            if isinstance(ctx.obj, App) and ctx.obj.debug:
                raise
            raise click.ClickException(str(exc) + _without_config(ctx.obj, exc)) from exc


def _without_config(app: object, exc: CampaignError) -> str:
    """For a database error when no config.toml was found: that the defaults applied, and where. Run outside the
    project's folder, a command said "data/campaign.db does not exist: run `campaign init`", whose init then made
    a second, empty database there (a new user's review)."""
    settings = app.settings_given if isinstance(app, App) else None
    if not isinstance(exc, StorageError) or settings is None or settings.config_file is not None:
        return ""
    if env_variable("database", "url") in os.environ:
        return ""
    return (
        f" (no {DEFAULT_CONFIG_NAME} in {settings.root} or above, so the defaults apply there: run the command in "
        f"the project's folder, or give --config)"
    )


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Configuration file (default: the nearest config.toml in this directory or above).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(__version__, prog_name="campaign")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, debug: bool) -> None:
    """Email invitation and reminder campaigns for events, in each recipient's own time zone."""
    ctx.obj = App(config_path=config_path, debug=debug)


cli.add_command(init_command)
cli.add_command(db_group)
cli.add_command(contacts_group)
cli.add_command(lists_command)
cli.add_command(events_group)
cli.add_command(registrants_group)
cli.add_command(attendees_group)
cli.add_command(create_command)
cli.add_command(list_command)
cli.add_command(show_command)
cli.add_command(preview_command)
cli.add_command(check_command)
cli.add_command(waves_group)
cli.add_command(status_command)
cli.add_command(plan_command)
cli.add_command(report_command)
for command in (
    launch_command,
    pause_command,
    resume_command,
    cancel_command,
    retry_command,
    test_send_command,
    send_command,
    mailbox_command,
):
    cli.add_command(command)
cli.add_command(serve_command)
cli.add_command(worker_command)
cli.add_command(workers_command)
cli.add_command(web_command)
cli.add_command(tracking_group)
cli.add_command(users_group)
cli.add_command(demo_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="campaign")
