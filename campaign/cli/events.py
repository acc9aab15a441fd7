"""``campaign events ...``."""

from __future__ import annotations

from pathlib import Path

import click

from campaign.cli.app import App, pass_app
from campaign.cli.output import local_time, table
from campaign.models import Event
from campaign.rules.wording import counted
from campaign.services.events import (
    RESCHEDULING_FIELDS,
    EventChange,
    add_event,
    cancel_event,
    get_event,
    list_events,
    read_event_file,
    update_event,
)


@click.group("events")
def events_group() -> None:
    """Add, inspect, update and cancel events."""


@events_group.command("add")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@pass_app
def events_add(app: App, file: Path) -> None:
    """Add the event described in a TOML FILE (see data/events/ for an example)."""
    event = add_event(app.database(), read_event_file(file))
    click.echo(f"Added event {event.slug} (id {event.id}): {event.title}")
    click.echo(f"  {when(event)}")


@events_group.command("update")
@click.argument("event")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@pass_app
def events_update(app: App, event: str, file: Path) -> None:
    """Update EVENT (slug or id) from FILE (the format of `events add`; the same slug). A new time or place
    raises the calendar SEQUENCE and sends an update to everyone already invited."""
    change = update_event(app.database(), app.settings, event, read_event_file(file))
    e = change.event
    if not change.changed:
        click.echo(f"Event {e.slug}: nothing changed")
        return
    click.echo(f"Updated event {e.slug} (sequence {e.sequence}): {', '.join(change.changed)}")
    click.echo(f"  {when(e)}")
    if not any(name in RESCHEDULING_FIELDS for name in change.changed):
        click.echo("  time and place unchanged: saved without a notice (the next message carries it)")
        return
    _report(change)


@events_group.command("cancel")
@click.argument("event")
@pass_app
def events_cancel(app: App, event: str) -> None:
    """Cancel EVENT (slug or id): a calendar cancellation to everyone already invited; pending waves and unsent
    messages of its campaigns are cancelled."""
    change = cancel_event(app.database(), app.settings, event)
    click.echo(f"Cancelled event {change.event.slug} (sequence {change.event.sequence})")
    _report(change)
    if change.cancelled_waves or change.cancelled_messages:
        messages = counted(change.cancelled_messages, "unsent message")
        click.echo(f"  cancelled: {counted(change.cancelled_waves, 'wave')}, {messages}")


def _report(change: EventChange) -> None:
    if not change.campaigns:
        click.echo("  no campaign of this event to tell")
    for notice in change.campaigns:
        if notice.wave is None:
            click.echo(f"  {notice.campaign}: {notice.note}")
            continue
        counts = f"{notice.queued} queued" + (f", {notice.suppressed} suppressed" if notice.suppressed else "")
        click.echo(f"  {notice.campaign}: wave {notice.wave}, " + (notice.note or counts))


@events_group.command("list")
@pass_app
def events_list(app: App) -> None:
    """List events, soonest first."""
    rows = [(e.id, e.slug, local_time(e.starts_at, e.timezone), e.timezone, e.status, e.title[:60])
            for e in list_events(app.database())]  # fmt: skip
    table(("id", "slug", "starts", "zone", "status", "title"), rows)


@events_group.command("show")
@click.argument("event")
@pass_app
def events_show(app: App, event: str) -> None:
    """Show one EVENT (slug or id) in full."""
    e = get_event(app.database(), event)
    click.echo(f"{e.title}\n")
    click.echo(f"slug:          {e.slug} (id {e.id}, {e.status}, sequence {e.sequence})")
    click.echo(f"when:          {when(e)}")
    for label, value in (
        ("registration:", e.registration_url),
        ("join:", e.join_url),
        (
            "organiser:",
            " ".join(filter(None, (e.organiser_name, f"<{e.organiser_email}>" if e.organiser_email else None))),
        ),
        ("language:", e.language),
    ):
        if value:
            click.echo(f"{label:<15}{value}")
    if e.speakers:
        click.echo("speakers:")
        for speaker in e.speakers:
            click.echo(f"  - {speaker.name}" + (f", {speaker.role}" if speaker.role else ""))
    if e.description:
        click.echo(f"\n{e.description}")


def when(event: Event) -> str:
    """The event's start and end on the organiser's clock, with the zone's CLDR name and IANA name, then in UTC."""
    start = local_time(event.starts_at, event.timezone, named=True)
    end = local_time(event.ends_at, event.timezone, named=True)
    return (
        f"{start} to {end} ({event.timezone}); "
        f"{local_time(event.starts_at, 'UTC')} to {local_time(event.ends_at, 'UTC')}"
    )
