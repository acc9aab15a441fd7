"""``campaign waves list|add|edit|remove``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from campaign.cli.app import App, pass_app
from campaign.cli.output import local_time, table
from campaign.services.waves import (
    WAITS_FOR_ATTENDANCE,
    WaveLine,
    WaveOptions,
    add_wave,
    edit_wave,
    list_waves,
    remove_wave,
)


@click.group("waves")
def waves_group() -> None:
    """A campaign's waves: the invitation, reminders, last chance, follow-up."""


@waves_group.command("list")
@click.argument("campaign")
@pass_app
def list_command(app: App, campaign: str) -> None:
    """List a CAMPAIGN's waves: timing, planned time (organiser's zone and UTC), audience, window, expiry, status.

    A wave whose own time passes before the launch shows that time, marked "passes before launch" in a draft
    and "skipped at launch" once launched: it is not sent with the invitation."""
    plan = list_waves(app.database(), campaign)
    zone = plan.event.timezone
    rows = [
        (
            w.name, w.kind, w.timing, _planned(w, zone), _utc(w.planned),
            w.audience, w.window or "", _utc(w.expires), status_text(w), w.missed_reason or "",
        )
        for w in plan.waves
    ]  # fmt: skip
    click.echo(f"{plan.campaign.name} ({plan.campaign.status}); times in {zone} and UTC")
    table(("wave", "kind", "timing", "planned", "UTC", "audience", "window", "expires (UTC)", "status", "missed"), rows)


def _wave_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options ``add`` and ``edit`` share."""
    for option in reversed(
        [
            click.option("--kind", help="invitation, reminder, last-chance or follow-up (update and cancellation "
                         "waves come from `campaign events update` and `events cancel`)."),
            click.option("--at", "at", help="When: an offset from the event start (-7d, -1h, +1d), an instant "
                         "(2026-06-19T09:00+02:00) or 'launch'."),
            click.option("--audience", help="all, registered, not-registered, opened, not-opened, clicked, "
                         "not-clicked, attended, not-attended, invited (adding: all by default)."),
            click.option("--window", help="Send window in each recipient's local time ('mon-fri 09:00-17:00'); "
                         "'none' for none (adding: waves.window by default)."),
            click.option("--subject", help="Subject, instead of the template's."),
            click.option("--expires", help="Not sent after: an offset from the event start, an instant, or "
                         "'default' (the event start; for a follow-up 14 days after its end)."),
            click.option("--template", help="Template name (adding: the kind by default, templates/email/KIND.*)."),
        ]
    ):  # fmt: skip
        command = option(command)
    return command


@waves_group.command("add")
@click.argument("campaign")
@click.argument("name")
@_wave_options
@pass_app
def add_command(app: App, /, campaign: str, name: str, **options: str | None) -> None:
    """Add wave NAME to a CAMPAIGN (before or after launch): --kind and --at are required."""
    line = add_wave(app.database(), app.settings, campaign, name, WaveOptions(**options))
    click.echo(f"Added wave {_describe(line)}")


@waves_group.command("edit")
@click.argument("campaign")
@click.argument("name")
@_wave_options
@pass_app
def edit_command(app: App, /, campaign: str, name: str, **options: str | None) -> None:
    """Change a CAMPAIGN's wave NAME that has not fired yet; options not given stay as they are."""
    line = edit_wave(app.database(), app.settings, campaign, name, WaveOptions(**options))
    click.echo(f"Changed wave {_describe(line)}")


@waves_group.command("remove")
@click.argument("campaign")
@click.argument("name")
@pass_app
def remove_command(app: App, campaign: str, name: str) -> None:
    """Remove a CAMPAIGN's wave NAME that has not fired yet (the invitation only from a draft)."""
    remove_wave(app.database(), campaign, name)
    click.echo(f"Removed wave {name} of {campaign}")


def status_text(line: WaveLine) -> str:
    """``pending``, or ``pending (waits for the attendee report: campaign attendees import)``."""
    if line.waits == WAITS_FOR_ATTENDANCE:
        return f"{line.status} (waits for {line.waits}: `campaign attendees import`)"
    return str(line.status)


def _describe(line: WaveLine) -> str:
    window = f", window {line.window}" if line.window else ""
    return f"{line.name}: {line.kind} at {line.timing} to {line.audience}{window}, planned {_utc(line.planned)}"


def _planned(line: WaveLine, zone: str) -> str:
    """The planned time in the organiser's zone, marked when the wave's time passes before the launch."""
    planned = local_time(line.planned, zone) if line.planned else ""
    return f"{planned} ({line.note})" if line.note else planned


def _utc(instant: Any) -> str:
    return local_time(instant, "UTC") if instant else ""
