"""``campaign launch|pause|resume|cancel|retry|test-send|send|mailbox``."""

from __future__ import annotations

import asyncio
import email
import email.policy
import sys
import webbrowser
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import click

from campaign.cli.app import POSITIVE_COUNT, App, pass_app
from campaign.cli.output import table
from campaign.cli.status import print_campaign
from campaign.mail.capture import mailbox
from campaign.models import CampaignStatus
from campaign.services.delivery_request import DeliveryRequest
from campaign.services.dispatch import due_count, send_due
from campaign.services.dispatch_summary import DispatchSummary
from campaign.services.lifecycle import CheckFailedError, launch, move, retry_deferred, retry_failed
from campaign.services.parallel import MAX_PROCESSES, send_parallel
from campaign.services.progress import CampaignProgress, campaign_progress, progress_after_send
from campaign.services.sending import send_test
from campaign.services.transport import smtp_servers


@click.command("launch")
@click.argument("campaign")
@pass_app
def launch_command(app: App, campaign: str) -> None:
    """Check a CAMPAIGN, then enqueue its invitation and start sending (`campaign send` delivers it; `campaign
    serve` fires the later waves at their time). Waves skipped at launch are listed with the reason."""
    with check_errors_shown():
        result = launch(app.database(), app.settings, app.signing_key(), campaign)
    for warning in result.report.warnings:  # what `campaign check` warns about does not stop a launch
        click.echo(f"warning: {warning}")
    click.echo(f"Launched {result.campaign}: {result.queued} messages queued, {result.suppressed} suppressed.")
    for missed in result.missed:
        click.echo(f"Missed wave {missed.wave}: {missed.reason}")
    send = f"campaign send --campaign {result.campaign}"
    if result.pending:
        count = len(result.pending)
        waves = f"{count} wave{'s' if count != 1 else ''} still to come ({', '.join(result.pending)})"
        click.echo(f"Next: {waves}: `campaign serve` sends each at its time; `{send}` delivers what is queued now.")
    else:
        click.echo(f"Next: {send}")


@contextmanager
def check_errors_shown() -> Iterator[None]:
    """Print each error of a refused launch before the one-line refusal."""
    try:
        yield
    except CheckFailedError as exc:
        for error in exc.report.errors:
            click.echo(f"error: {error}")
        raise


def _move(app: App, campaign: str, target: CampaignStatus, verb: str) -> None:
    details = move(app.database(), campaign, target)
    click.echo(f"{verb} {details.campaign.name}: now {details.campaign.status}")


@click.command("pause")
@click.argument("campaign")
@pass_app
def pause_command(app: App, campaign: str) -> None:
    """Pause a CAMPAIGN: workers send nothing more of it until it is resumed."""
    _move(app, campaign, CampaignStatus.PAUSED, "Paused")


@click.command("resume")
@click.argument("campaign")
@pass_app
def resume_command(app: App, campaign: str) -> None:
    """Resume a paused CAMPAIGN (also one that paused itself after repeated failures)."""
    _move(app, campaign, CampaignStatus.SENDING, "Resumed")


@click.command("cancel")
@click.argument("campaign")
@pass_app
def cancel_command(app: App, campaign: str) -> None:
    """Cancel a CAMPAIGN: its unsent messages are cancelled."""
    _move(app, campaign, CampaignStatus.CANCELLED, "Cancelled")


@click.command("retry")
@click.argument("campaign")
@click.option("--failed", is_flag=True, help="Re-queue failed and expired messages.")
@click.option("--deferred", is_flag=True, help="Make deferred messages due now, not at their retry time.")
@pass_app
def retry_command(app: App, campaign: str, failed: bool, deferred: bool) -> None:
    """Retry a CAMPAIGN's failed and expired messages (--failed), its deferred ones now (--deferred), or both."""
    if not (failed or deferred):
        raise click.UsageError("say what to retry: --failed, --deferred, or both")
    db = app.database()
    if failed:
        click.echo(f"{retry_failed(db, campaign)} failed or expired messages queued again")
    if deferred:
        click.echo(f"{retry_deferred(db, campaign)} deferred messages are due now")
    progress = campaign_progress(db, campaign)
    name = progress.campaign.name
    if (why := progress.hold()) is not None:
        click.echo(f"Not sent yet: {why}")
    elif progress.unfinished:
        click.echo(f"Next: campaign send --campaign {name}")


@click.command("test-send")
@click.argument("campaign")
@click.option("--to", "to", required=True, help="Staff address to send the test message to.")
@click.option("--as", "as_contact", help="Render as this contact (default: the first of the audience).")
@pass_app
def test_send_command(app: App, campaign: str, to: str, as_contact: str | None) -> None:
    """Send one rendered message of a CAMPAIGN to a staff address (not counted in reports)."""
    with smtp_servers(app.settings) as servers:
        result = asyncio.run(
            send_test(app.database(), app.settings, app.signing_key(), servers, campaign, to, as_contact)
        )
    click.echo(f"Sent a test of {campaign} as {result.rendered_as} to {result.to}: {result.reply}")
    if app.settings.smtp.mode == "capture":
        click.echo(f"Captured in {app.settings.resolve(app.settings.smtp.mailbox)}")


@click.command("send")
@click.option("--campaign", "campaign", help="Only this campaign (default: every campaign that is sending).")
@click.option("--wait", is_flag=True, help="Keep running: wait for retries and newly queued messages.")
@click.option(
    "--processes",
    type=click.IntRange(1, MAX_PROCESSES),
    default=1,
    show_default=True,
    help=f"Sender processes sharing the queue (at most {MAX_PROCESSES}).",
)
@pass_app
def send_command(app: App, campaign: str | None, wait: bool, processes: int) -> None:
    """Deliver queued messages in the foreground, then print what is left of each campaign.

    Exits 1 when a campaign paused itself during the run, or when the CAMPAIGN asked for is held back (a
    draft, cancelled, or paused with messages waiting); deferred messages alone are normal operation.
    """
    if wait and campaign is not None and (why := campaign_progress(app.database(), campaign).hold()) is not None:
        click.echo(f"note: {why}; waiting", err=True)
    if processes > 1:
        with smtp_servers(app.settings) as servers:
            db = app.database()  # fail early, with the usual message, on a missing schema; then fork
            db.dispose()
            request = DeliveryRequest(db, app.settings, app.signing_key(), servers, campaign_ref=campaign, wait=wait)
            summary = send_parallel(request, processes)
    else:
        summary = deliver(app, campaign, wait)
    reports = progress_after_send(app.database(), campaign, summary.finished)
    print_summary(summary, reports, explicit=campaign is not None)
    fail_unless_sending(summary, reports, campaign)


def deliver(app: App, campaign: str | None, wait: bool = False) -> DispatchSummary:
    """Run the delivery worker with a progress display on a terminal."""
    db, settings = app.database(), app.settings
    with smtp_servers(settings) as servers:
        request = DeliveryRequest(db, settings, app.signing_key(), servers, campaign_ref=campaign, wait=wait)
        if not sys.stderr.isatty():
            return asyncio.run(send_due(request))
        total = due_count(db, campaign)
        with click.progressbar(length=max(total, 1), label="Sending", file=sys.stderr, show_pos=True) as bar:
            return asyncio.run(send_due(replace(request, progress=lambda _: bar.update(1))))


def print_summary(
    summary: DispatchSummary, reports: list[CampaignProgress] | None = None, *, explicit: bool = False
) -> None:
    """One line of what this run did; then, given ``reports``, every state left of each campaign and when the
    rest is due (else only the campaigns paused and finished). What :func:`fail_unless_sending` makes the error
    line (a campaign that paused itself; the ``explicit`` campaign held back) is not said twice."""
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.counts.items())) or "nothing was sent"
    click.echo(f"Delivery: {counts}")
    if reports is None:
        for paused in summary.paused.values():
            click.echo(f"Paused {paused.name}: {paused.reason}")
        for name in summary.finished:
            click.echo(f"Campaign {name} is sent.")
        return
    for report in reports:
        paused_itself = _paused_itself(summary, report.campaign.id)
        hold = paused_itself is None and not (explicit and report.held)
        print_campaign(report, paused_itself=paused_itself, hold=hold)


def fail_unless_sending(summary: DispatchSummary, reports: list[CampaignProgress], campaign: str | None) -> None:
    """Exit 1 (one line on stderr) when a campaign paused itself during the run, or when the campaign asked for
    with ``--campaign`` is held back: nothing more of it is sent until someone acts."""
    paused = [(r.campaign.name, why) for r in reports if (why := _paused_itself(summary, r.campaign.id))]
    if len(paused) == 1:
        name, why = paused[0]
        raise click.ClickException(f"{name} paused itself ({why}); once the cause is fixed: `campaign resume {name}`")
    if paused:
        names = ", ".join(name for name, _ in paused)
        raise click.ClickException(f"{names} paused themselves (reasons above); then `campaign resume NAME`")
    if campaign is not None and reports[0].held:
        raise click.ClickException(str(reports[0].hold()))


def _paused_itself(summary: DispatchSummary, campaign_id: int) -> str | None:
    """The reason the campaign paused itself during the run (its entry in ``summary.paused``), if it did."""
    paused = summary.paused.get(campaign_id)
    return paused.reason if paused is not None else None


@click.command("mailbox")
@click.option("--show", "show", type=int, help="Print message number N (from the list).")
@click.option("--open", "open_n", type=int, help="Open message number N's HTML part in a browser.")
@click.option("--limit", type=POSITIVE_COUNT, default=50, show_default=True, help="How many of the latest.")
@pass_app
def mailbox_command(app: App, show: int | None, open_n: int | None, limit: int) -> None:
    """List the messages captured by the built-in SMTP server (to, subject, time), or print or open one."""
    directory = app.settings.resolve(app.settings.smtp.mailbox)
    messages = mailbox(directory)
    if show is not None or open_n is not None:
        number = show if show is not None else open_n
        assert number is not None
        if not 1 <= number <= len(messages):
            raise click.ClickException(f"no message {number} (the mailbox has {len(messages)})")
        path = messages[number - 1].path
        if show is not None:
            click.echo(path.read_bytes().decode("utf-8", "replace"))
        else:
            _open_html(path)
        return
    first = max(len(messages) - limit, 0)
    rows = [(n, m.date, m.to, m.subject[:70]) for n, m in enumerate(messages, 1)][first:]
    table(("#", "date", "to", "subject"), rows)
    click.echo(f"{len(messages)} messages in {directory}")


def _open_html(path: Path) -> None:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    body = message.get_body(("html",))
    if body is None:
        raise click.ClickException(f"{path} has no HTML part")
    html_path = path.with_suffix(".html")
    html_path.write_text(body.get_content(), encoding="utf-8")
    webbrowser.open(html_path.as_uri())
    click.echo(f"Opened {html_path}")
