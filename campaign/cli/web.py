"""``campaign web``: the web service alone, in the foreground (see :mod:`campaign.web.server`)."""

from __future__ import annotations

import logging
import sys

import click

from campaign.cli.app import App, pass_app
from campaign.config import check_listen_host
from campaign.web.server import WebServer
from scheduler.display import LIBRARY_LOGGER, configure_output


def _host(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--host`` under the rule of ``web.host``."""
    if value is None:
        return None
    try:
        return check_listen_host(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("web")
@click.option(
    "--host", callback=_host, help="Address to listen on: a host name or an IP address (default: web.host, 127.0.0.1)."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 takes any free port (default: web.port, 8080).",
)
@pass_app
def web_command(app: App, host: str | None, port: int | None) -> None:
    """Run the web service, which the links in messages lead to, until SIGTERM or Ctrl-C.

    Prints the URL it listens on. On SIGTERM or Ctrl-C it stops taking connections, lets the requests in
    progress finish and exits 0; a second signal stops at once. Log lines (a failed request, the database
    becoming unhealthy) go to stderr. `campaign serve` runs the same service beside the scheduler (web.enabled).
    """
    server = WebServer(app, host=host, port=port)
    with server:
        configure_output(sys.stderr, terminal=False)
        route_server_log()
        server.run(ready=lambda: click.echo(f"Listening on {server.url}"))
    click.echo("Stopped.")


def route_server_log() -> None:
    """uvicorn's warnings and errors (a failed request's traceback) where :func:`configure_output` sends the
    library's log lines, in the same format (call it after that)."""
    server_log = logging.getLogger("uvicorn")
    server_log.handlers[:] = logging.getLogger(LIBRARY_LOGGER).handlers
    server_log.setLevel(logging.WARNING)  # not its start-up chatter: the command says where it listens
    server_log.propagate = False
