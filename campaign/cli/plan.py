"""``campaign status`` and ``campaign plan``: where a campaign's waves stand, and what is still to come, zone by
zone (see :mod:`campaign.services.plan`)."""

from __future__ import annotations

from datetime import datetime

import click

from campaign.cli.app import App, pass_app
from campaign.cli.output import local_time, table
from campaign.cli.status import state_counts, waiting_lines
from campaign.cli.waves import status_text
from campaign.config import Settings
from campaign.rules.wording import counted
from campaign.services.plan import PlannedWave, WaveState, campaign_plan, campaign_status
from campaign.services.service_status import running_service
from campaign.services.waves import PASSES_BEFORE_LAUNCH, WaveLine
from campaign.services.workers import leader, registry, running_workers
from campaign.store.engine import Database


@click.command("status")
@click.argument("campaign")
@pass_app
def status_command(app: App, campaign: str) -> None:
    """Show where a CAMPAIGN's waves stand: planned time, audience size, messages by state, next send, expiry;
    a wave the launch skips (its time had passed) is marked so, with why."""
    db = app.database()
    state = campaign_status(db, campaign)
    c, zone = state.campaign, state.event.timezone
    reason = f" ({c.status_reason})" if c.status_reason else ""
    click.echo(f"Campaign {c.name}: {c.status}{reason}; event {state.event.slug}; times in {zone} and UTC")
    click.echo(_service_line(db, app.settings))
    if state.due_now:
        click.echo(f"Next send: {counted(state.due_now, 'message')} due now")
    elif state.next_send is not None:
        click.echo(f"Next send: {local_time(state.next_send, zone)} ({_utc(state.next_send)})")
    else:
        click.echo("Next send: nothing waits")
    rows = [_status_row(w, zone) for w in state.waves]
    table(("wave", "kind", "planned", "UTC", "audience", "size", "messages", "next send (UTC)", "expires (UTC)",
           "status"), rows)  # fmt: skip
    for w in state.waves:
        if w.line.skipped:  # missed for this reason once fired: said once, as a skip
            click.echo(f"{w.line.name} {_skip(w.line)}: {w.line.skipped}")
        elif w.line.missed_reason:
            click.echo(f"{w.line.name} missed: {w.line.missed_reason}")
    for line in waiting_lines(state.progress):
        click.echo(line)
    if (remedy := state.progress.remedy()) is not None:
        click.echo(remedy)


def _service_line(db: Database, settings: Settings) -> str:
    """``Scheduler service: ...``: whether one runs, its leader (from the ``workers`` registry) and how many
    delivery workers are alive."""
    states = registry(db, settings)
    workers = len(running_workers(states))
    alive = f"; {workers} delivery worker{'s' if workers != 1 else ''} alive (`campaign workers`)" if workers else ""
    if (lead := leader(states)) is not None:
        r = lead.record
        return f"Scheduler service: running, leader {r.name} (pid {r.pid} on {r.host}){alive}"
    pid = running_service(db)
    if pid is not None:
        return "Scheduler service: running" + (f" (pid {pid})" if pid else "") + alive
    return f"Scheduler service: not running (`campaign serve` fires each wave at its time){alive}"


def _status_row(w: WaveState, zone: str) -> tuple[object, ...]:
    line = w.line
    if w.waiting.due_now:
        next_send = f"{w.waiting.due_now} due now"
    else:
        next_send = _utc(w.next_send) if w.next_send is not None else ""
    return (
        line.name, line.kind, local_time(line.planned, zone) if line.planned else "", _utc(line.planned),
        line.audience, w.audience_size, state_counts(w.counts) if w.counts else "", next_send, _utc(line.expires),
        _skipped_status(line) if line.skipped else status_text(line),
    )  # fmt: skip


def _skipped_status(line: WaveLine) -> str:
    """The status shown for a wave the launch skips (a draft's: would skip, launched now)."""
    return "skipped if launched now" if line.note == PASSES_BEFORE_LAUNCH else "skipped at launch"


def _skip(line: WaveLine) -> str:
    """``is skipped if launched now`` (a draft) or ``was skipped at launch``."""
    return "is skipped if launched now" if line.note == PASSES_BEFORE_LAUNCH else "was skipped at launch"


@click.command("plan")
@click.argument("campaign")
@pass_app
def plan_command(app: App, campaign: str) -> None:
    """Show a CAMPAIGN's waves still to come, in time order, with each time zone's send time (local and UTC);
    first, those the launch skips (in a draft, those a launch now would skip) and why."""
    plan = campaign_plan(app.database(), app.settings, campaign)
    c = plan.campaign
    click.echo(f"Campaign {c.name}: {c.status}; organiser's zone {plan.event.timezone}; local times in {plan.locale}")
    if not plan.waves:
        click.echo(f"Nothing is still to come: no wave is left to send (see `campaign status {c.name}`).")
    if (remedy := plan.progress.remedy()) is not None:
        click.echo(remedy)
    for line in plan.skipped:
        click.echo(f"{line.name} ({line.kind}, {line.timing}) {_skip(line)}: {line.skipped}")
    for wave in plan.waves:
        click.echo()
        _print_wave(wave, plan.event.timezone)


def _print_wave(wave: PlannedWave, organiser: str) -> None:
    line = wave.line
    click.echo(
        f"{line.name} ({line.kind}, {line.timing}) to {line.audience}, {counted(wave.audience_size, 'contact')} now: "
        f"{wave.local} ({organiser}) = {wave.utc} UTC; expires {_utc(line.expires)}"
    )
    if line.window:
        click.echo(f"  send window {line.window}, in each recipient's local time:")
        for z in wave.zones:
            who = f"{z.shown_zone} ({z.zone_name})" if z.zone else f"no zone, the organiser's {z.shown_zone}"
            when = f"{z.local} local = {z.utc} UTC" if z.at else f"not sent: {z.error}"
            click.echo(f"  {who}: {when} ({counted(z.contacts, 'contact')} now)")
        return
    earliest, latest = wave.earliest_local, wave.latest_local
    if earliest is None or latest is None:
        click.echo(f"  everyone at {wave.utc} UTC")
        return
    click.echo(f"  no send window: everyone at {wave.utc} UTC, in {counted(len(wave.zones), 'zone')}")
    click.echo(f"  earliest local time: {earliest.local} in {earliest.shown_zone} ({earliest.zone_name})")
    click.echo(f"  latest local time:   {latest.local} in {latest.shown_zone} ({latest.zone_name})")


def _utc(instant: datetime | None) -> str:
    return local_time(instant, "UTC") if instant is not None else ""
