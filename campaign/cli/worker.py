"""``campaign worker`` (a delivery worker process) and ``campaign workers`` (the registry of those running)."""

from __future__ import annotations

import sys

import click

from campaign.cli.app import App, pass_app
from campaign.cli.delivery import print_summary
from campaign.cli.output import table
from campaign.cli.status import instant
from campaign.rules.wording import counted
from campaign.services.transport import smtp_servers
from campaign.services.workers import STALE, WorkerState, registry, running_workers
from scheduler.display import configure_output
from scheduler.worker import WorkerService


@click.command("worker")
@click.option("--campaign", "campaign", help="Only this campaign (default: every campaign that is sending).")
@click.option("--name", "name", help="This worker's name in `campaign workers` (default: host:pid:random).")
@pass_app
def worker_command(app: App, campaign: str | None, name: str | None) -> None:
    """Deliver messages until SIGTERM or Ctrl-C (then finish what is in hand): a worker process alone, without
    the scheduler or the web service. Run any number, on any number of machines, against one PostgreSQL
    database: they share the queue, and a dead one's messages are sent by the others once its lease expires
    (delivery.lease_seconds). Each logs to stderr and shows in `campaign workers`."""
    app.database()  # the usual one-line error on a missing schema, before anything starts
    configure_output(sys.stderr, terminal=False)
    with smtp_servers(app.settings) as servers:
        summary = WorkerService(app, name=name, campaign_ref=campaign).run(servers)
    print_summary(summary)


@click.command("workers")
@click.option("--all", "show_all", is_flag=True, help="Also processes stopped or gone (kept for a day).")
@pass_app
def workers_command(app: App, show_all: bool) -> None:
    """List the worker and scheduler processes: each one's role, state (alive, leader, standby, stale: no
    heartbeat for a lease's time; stopped, gone), heartbeat age, messages in hand, counts since it started
    and its recent rate."""
    states = registry(app.database(), app.settings)
    shown = [s for s in states if show_all or s.running or s.state == STALE]
    table(
        ("name", "role", "state", "heartbeat", "in hand", "claimed", "sent", "failed", "lost", "msg/s", "started"),
        [_row(s) for s in shown],
    )
    hidden = len(states) - len(shown)
    note = f"; {hidden} stopped or gone not shown (--all)" if hidden else ""
    click.echo(f"{counted(len(running_workers(states)), 'worker')} alive{note}")


def _row(s: WorkerState) -> tuple[object, ...]:
    r = s.record
    return (
        r.name, r.role, s.state, f"{s.age_seconds:.1f} s ago", r.in_hand, r.claimed, r.sent, r.failed, r.lost,
        f"{r.rate:.1f}", instant(r.started_at),
    )  # fmt: skip
