"""``campaign demo``: the whole pipeline on sample data, in a fresh database under data/demo/."""

from __future__ import annotations

import asyncio
import sys
import time

import click

from campaign.cli.app import App, pass_app
from campaign.cli.contacts import print_report
from campaign.cli.delivery import check_errors_shown, print_summary
from campaign.cli.events import when
from campaign.cli.output import local_time, table
from campaign.cli.status import state_counts
from campaign.config import Settings
from campaign.rules import routes
from campaign.services.demo import DEMO_LIST, REGISTERING_EVERY, DemoResult, run_demo


@click.command("demo")
@pass_app
def demo_command(app: App) -> None:
    """Run the whole pipeline on data/contacts.csv and the sample webinar, in a fresh data/demo/ database."""
    started = time.monotonic()
    with check_errors_shown():
        result = asyncio.run(run_demo(app.settings, app.settings.data_dir))
    click.echo(f"Demo database: {result.database}\n")
    for report in result.imports:
        print_report(report)
        click.echo()
    click.echo(f"Event {result.event.slug}: {result.event.title}")
    click.echo(f"  moved into the near future, same wall-clock time: {when(result.event)}\n")
    click.echo(f"What the audience of list {DEMO_LIST!r} sees, zone by zone:")
    table(
        ("time zone", "contacts", "local time line"), [(z.zone or "(none)", z.contacts, z.line) for z in result.zones]
    )
    click.echo(
        f"\nLaunched {result.launch.campaign}: checks passed for {result.launch.report.contacts} contacts; "
        f"{result.launch.queued} queued, {result.launch.suppressed} suppressed."
    )
    click.echo(
        f"Then {result.registered} contacts (one in {REGISTERING_EVERY}) registered: a registration by the link in "
        "their invitation each, as a click on Register records; the reminders go to them, the last chance to the "
        "others."
    )
    click.echo(
        "The waves ran on a compressed clock: it jumped to each wave's time, where the scheduler's code fired it, "
        "and to each time a message was scheduled for, where the delivery worker, on the same clock, sent it."
    )
    zone = result.event.timezone
    table(
        ("wave", "kind", "fired at (demo clock)", "audience", "messages"),
        [(w.name, w.kind, local_time(w.fired_at, zone), w.audience, state_counts(w.counts)) for w in result.waves],
    )
    click.echo()
    print_summary(result.delivery)
    click.echo(f"\nDone in {time.monotonic() - started:.1f} s. Look at what was sent:")
    click.echo(f"  the captured messages (.eml): {result.mailbox}")
    click.echo(f"  one contact's invitation as HTML: {result.preview.html_path}")
    command = sys.argv[0] if sys.argv[0].endswith("campaign") else "campaign"
    click.echo(f"  or list them: CAMPAIGN_SMTP_MAILBOX={result.mailbox} {command} mailbox")
    for line in browser_lines(app.settings, result, command):
        click.echo(line)


def browser_lines(settings: Settings, result: DemoResult, command: str) -> list[str]:
    """How to open the demo's campaign in the browser: the staff pages on the demo's own database, key and
    mailbox (three settings from the environment), a user to log in with, and the campaign page's address."""
    demo = result.data_dir
    environment = (
        f"CAMPAIGN_DATABASE_URL=sqlite:///{demo / 'campaign.db'} CAMPAIGN_PATHS_DATA={demo} "
        f"CAMPAIGN_SMTP_MAILBOX={result.mailbox}"
    )
    host = settings.web.host
    shown = f"[{host}]" if ":" in host else host
    page = routes.CAMPAIGN_MANAGE.path(campaign=str(result.campaign_id))
    return [
        "",
        "Open the demo in the browser (the staff pages, on the demo's own database):",
        f"  export {environment}",
        f"  {command} users add demo --role admin   # once: a user to log in with (it asks for a password)",
        f"  {command} web                           # the pages only: nothing is sent",
        f"  then open http://{shown}:{settings.web.port}{page} and log in as demo",
    ]
