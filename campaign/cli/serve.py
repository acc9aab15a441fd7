"""``campaign serve``: the scheduler service in the foreground (see :mod:`scheduler.service`), with the web service
(:mod:`campaign.web.server`) in the same event loop when ``web.enabled``."""

from __future__ import annotations

import asyncio
import contextlib
import sys

import click

from campaign.cli.app import App, pass_app
from campaign.cli.delivery import print_summary
from campaign.cli.status import instant
from campaign.cli.web import route_server_log
from campaign.models import WaveStatus
from campaign.services.dispatch import worker_name
from campaign.services.leadership import Leadership
from campaign.services.scheduling import Fired
from campaign.web.server import WebServer
from scheduler.display import configure_output, counted, fields, log
from scheduler.lock import ServiceLock
from scheduler.service import SchedulerService


@click.command("serve")
@click.option("--once", is_flag=True, help="Run one tick: fire the waves due, deliver what is due, then exit (cron).")
@pass_app
def serve_command(app: App, once: bool) -> None:
    """Fire each wave at its time and deliver messages, until SIGTERM or Ctrl-C (then finish what is in hand).

    With web.enabled (the default) it also runs the web service, as `campaign web` does (not with --once).
    On a terminal a status line shows what comes next and what was delivered; otherwise each wave fired or
    missed and each delivery summary is a log line on stderr. One service per SQLite database: a second one
    is refused. On PostgreSQL any number may run: one leads and fires the waves, the others stand by (they
    deliver and serve the web) and take over within seconds when it dies; `--once` is refused while another leads.
    """
    db = app.database()
    with ServiceLock(db), contextlib.ExitStack() as stack:
        leadership = Leadership(db, app.settings, worker_name())
        stack.callback(leadership.release)  # the lock given back, the registry row stopped, however it ends
        # Listening before anything is sent: a port in use stops the service here, with one line.
        web = stack.enter_context(WebServer(app)) if app.settings.web.enabled and not once else None
        servers = stack.enter_context(app.smtp_servers())
        status = configure_output(sys.stderr, terminal=not once and sys.stderr.isatty())
        if web is not None:
            route_server_log()
            log.info(fields("web listening", url=web.url))
        leadership.start(wait=not once)  # after the output is set up: it logs whether it leads or stands by
        if once:
            leadership.refuse_unless_leading()
        service = SchedulerService(app, status=status, leadership=leadership)
        if once:
            report, summary = service.run_once(servers, handle_signals=True)
            for fired in report.fired:
                click.echo(fired_line(fired))
            if (next_wave := report.next_wave) is not None:
                click.echo(f"Next wave: {next_wave.campaign}/{next_wave.wave} at {instant(next_wave.fires_at)}")
        else:
            summary = asyncio.run(service.run(servers, handle_signals=True, companions=[web] if web else []))
    print_summary(summary)


def fired_line(fired: Fired) -> str:
    """What ``serve --once`` says about one wave fired, missed or topped up (newcomers invited)."""
    name = f"{fired.campaign}/{fired.wave}"
    if fired.status is WaveStatus.MISSED:
        return f"Missed {name}: {fired.reason}"
    counts = ", ".join(
        [counted(fired.queued, "message") + " queued"]
        + [f"{n} {what}" for n, what in ((fired.suppressed, "suppressed"), (fired.expired, "expired")) if n]
    )
    if fired.topped_up:
        return f"Invited {fired.queued} who joined the list since: {name}, {counts}"
    return f"Fired {name}: {counts}"
