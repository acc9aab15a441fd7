"""``campaign events ...``."""

from __future__ import annotations

from pathlib import Path

import click

from campaign.cli.app import App, pass_app
from campaign.cli.output import local_time, table
from campaign.models import Event
from campaign.services.events import add_event, get_event, list_events, read_event_file


@click.group("events")
def events_group() -> None:
    """Add and inspect events."""


@events_group.command("add")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@pass_app
def events_add(app: App, file: Path) -> None:
    """Add the event described in a TOML FILE (see data/events/ for an example)."""
    event = add_event(app.database(), read_event_file(file))
    click.echo(f"Added event {event.slug} (id {event.id}): {event.title}")
    click.echo(f"  {when(event)}")


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
    end = local_time(event.ends_at, event.timezone)
    return (
        f"{local_time(event.starts_at, event.timezone)} to {end} ({event.timezone}); "
        f"{local_time(event.starts_at, 'UTC')} to {local_time(event.ends_at, 'UTC')}"
    )
