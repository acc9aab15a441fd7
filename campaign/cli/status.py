"""How ``campaign send`` and ``campaign show`` print what is left of a campaign (see services.progress)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from campaign.models import GIVEN_UP_MESSAGES, CampaignStatus
from campaign.services.progress import CampaignProgress, Waiting


def instant(moment: datetime) -> str:
    """``2025-06-01 14:05:03 CEST (12:05:03 UTC)``: this machine's local time, then UTC."""
    local = moment.astimezone()  # the machine's zone: where the person running the command is, usually
    in_utc = moment.astimezone(UTC)
    if local.utcoffset() == timedelta(0):
        return f"{in_utc:%Y-%m-%d %H:%M:%S} UTC"
    shown = f"{local:%Y-%m-%d %H:%M:%S %Z}"
    same_day = in_utc.date() == local.date()
    return f"{shown} ({in_utc:%H:%M:%S} UTC)" if same_day else f"{shown} ({in_utc:%Y-%m-%d %H:%M:%S} UTC)"


def state_counts(counts: dict[str, int]) -> str:
    """``queued 3 · sent 57 · deferred 20``, or ``no messages``."""
    return " · ".join(f"{status} {n}" for status, n in counts.items()) or "no messages"


def waiting_lines(progress: CampaignProgress) -> list[str]:
    """When the queued and deferred messages are due, and how to retry the ones that can be retried."""
    name = progress.campaign.name
    lines = []
    queued = _when_due(progress.queued, "next due at")
    if queued:
        if not progress.queued.due_now and progress.queued.next_due is not None:
            # Held for their send window (or a wave's time): a one-off send has nothing to do until then.
            queued += "; `campaign serve` sends each at its time (or `campaign send --wait`)"
        lines.append(f"queued: {queued}")
    deferred = _when_due(progress.deferred, "next retry at")
    if deferred:
        lines.append(f"deferred: {deferred}; `campaign retry {name} --deferred` retries them now")
    given_up = sum(progress.counts.get(s.value, 0) for s in GIVEN_UP_MESSAGES)
    if given_up:
        lines.append(f"failed or expired: {given_up}; `campaign retry {name} --failed` queues them again")
    return lines


def _when_due(waiting: Waiting, next_label: str) -> str:
    """``2 due now; next retry at ...`` (the counts in all are on the line above)."""
    parts = []
    if waiting.due_now:
        parts.append(f"{waiting.due_now} due now")
    if waiting.next_due is not None:
        parts.append(f"{next_label} {instant(waiting.next_due)}")
    return "; ".join(parts)


def print_campaign(progress: CampaignProgress, *, paused_itself: str | None = None, hold: bool = True) -> None:
    """A campaign after a send: its status (and why), every state its messages are in, and when the rest is due.

    ``paused_itself`` is the reason when it paused itself during the run; ``hold=False`` leaves out what holds
    it back and the command that sends it (the caller makes that its error line instead).
    """
    c = progress.campaign
    if paused_itself is not None:
        click.echo(f"Campaign {c.name} paused itself during this run: {paused_itself}")
    elif c.status is CampaignStatus.PAUSED and c.status_reason:
        click.echo(f"Campaign {c.name} is paused: {c.status_reason}")
    else:
        article = "a " if c.status is CampaignStatus.DRAFT else ""
        click.echo(f"Campaign {c.name} is {article}{c.status}.")
    click.echo(f"  messages: {state_counts(progress.counts)}")
    for line in waiting_lines(progress):
        click.echo(f"  {line}")
    if c.status is CampaignStatus.SENT and not progress.unfinished:
        click.echo("  nothing is left to send")
    elif hold and (remedy := progress.remedy()) is not None:
        click.echo(f"  {remedy}")
