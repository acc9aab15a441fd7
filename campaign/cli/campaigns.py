"""``campaign create|list|show|preview|check``."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import click

from campaign.cli.app import App, pass_app
from campaign.cli.events import when
from campaign.cli.output import table
from campaign.cli.status import instant, state_counts, waiting_lines
from campaign.rules.wording import counted
from campaign.services.campaigns import get_campaign, list_campaigns
from campaign.services.progress import campaign_progress
from campaign.services.rendering import check_campaign, preview_contact, preview_zones
from campaign.services.waves import create_with_waves


@click.command("create")
@click.option("--event", "event_ref", required=True, help="Event slug or id.")
@click.option("--list", "list_name", required=True, help="The contact list to invite.")
@click.option(
    "--template", "template_dir", type=click.Path(path_type=Path, file_okay=False), help="Own template directory."
)
@click.option("--name", help="Campaign name (default: EVENT-LIST).")
@click.option(
    "--waves",
    "waves",
    type=click.Choice(["default", "none"]),
    default="default",
    show_default=True,
    help="Besides the invitation: the waves of config.toml [waves] default, or none.",
)
@click.option(
    "--track-opens/--no-track-opens",
    default=True,
    show_default=True,
    help="Put an open-tracking image in its messages.",
)
@click.option(
    "--track-clicks/--no-track-clicks",
    default=True,
    show_default=True,
    help="Send its links through the web service, which records clicks (and registrations by link).",
)
@pass_app
def create_command(
    app: App,
    event_ref: str,
    list_name: str,
    template_dir: Path | None,
    name: str | None,
    waves: str,
    track_opens: bool,
    track_clicks: bool,
) -> None:
    """Create a draft campaign with an invitation wave and (unless --waves none) the default waves, each checked
    as `campaign waves add` checks a wave (its template exists, it could be sent before it expires)."""
    details = create_with_waves(
        app.database(),
        app.settings,
        event_ref=event_ref,
        list_name=list_name,
        name=name,
        template_dir=template_dir,
        default_waves=waves == "default",
        track_opens=track_opens,
        track_clicks=track_clicks,
    )
    c = details.campaign
    click.echo(f"Created campaign {c.name} (id {c.id}, {c.status}): {details.event.title}")
    click.echo(f"  audience: list {c.list_name}; waves: {', '.join(w.name for w in details.waves)}")
    click.echo(f"  tracking: opens {'on' if c.track_opens else 'off'}, clicks {'on' if c.track_clicks else 'off'}")
    click.echo(f"Next: campaign preview {c.name} --zones   and   campaign check {c.name}")


@click.command("list")
@pass_app
def list_command(app: App) -> None:
    """List campaigns, newest first."""
    rows = [
        (c.id, c.name, c.status, c.list_name, instant(c.created_at) if c.created_at else "")
        for c in list_campaigns(app.database())
    ]
    if not rows:
        click.echo("No campaigns yet: create one with `campaign create --event EVENT --list LIST`")
        return
    table(("id", "name", "status", "list", "created"), rows)


@click.command("show")
@click.argument("campaign")
@pass_app
def show_command(app: App, campaign: str) -> None:
    """Show a CAMPAIGN (name or id): its event, audience, status, messages by state, and waves."""
    details = get_campaign(app.database(), campaign)
    progress = campaign_progress(app.database(), campaign)
    c = progress.campaign
    click.echo(f"{c.name} (id {c.id}): {c.status}" + (f" — {c.status_reason}" if c.status_reason else ""))
    click.echo(f"event:     {details.event.slug}: {details.event.title}")
    click.echo(f"when:      {when(details.event)}")
    click.echo(f"audience:  list {c.list_name}")
    click.echo(f"templates: {c.template_dir or '(default)'}")
    click.echo(f"messages:  {state_counts(progress.counts)}")
    for line in waiting_lines(progress):
        click.echo(f"  {line}")
    # One column per state any wave has a message in, in the order of MessageStatus.
    states = list(progress.counts)
    table(("wave", "kind", "template", "audience", "status", *states),
          [(w.wave.name, w.wave.kind, w.wave.template, w.wave.audience, w.wave.status,
            *(w.counts.get(s, 0) for s in states)) for w in progress.waves])  # fmt: skip


@click.command("preview")
@click.argument("campaign")
@click.option("--contact", "email", help="Write this contact's invitation as HTML and .eml.")
@click.option("--zones", is_flag=True, help="Show the local-time line for each time zone of the audience.")
@click.option("--open", "open_browser", is_flag=True, help="Open the HTML preview in a browser.")
@pass_app
def preview_command(app: App, campaign: str, email: str | None, zones: bool, open_browser: bool) -> None:
    """Preview a CAMPAIGN: one contact's message, or the session time in every zone of the audience."""
    if not email and not zones:
        raise click.UsageError("give --contact EMAIL or --zones")
    db = app.database()
    if zones:
        rows = [(z.zone or "(no zone)", z.contacts, z.line) for z in preview_zones(db, app.settings, campaign)]
        table(("time zone", "contacts", "what they see"), rows)
    if email:
        preview = preview_contact(db, app.settings, app.signing_key(), campaign, email)
        click.echo(f"Subject: {preview.subject}")
        click.echo(f"HTML:    {preview.html_path}")
        click.echo(f".eml:    {preview.eml_path} ({preview.size / 1024:.1f} KB)")
        if open_browser:
            webbrowser.open(preview.html_path.as_uri())


@click.command("check")
@click.argument("campaign")
@pass_app
def check_command(app: App, campaign: str) -> None:
    """Check a CAMPAIGN before launch: templates, every contact renders, text part, https links, alt texts, size;
    warn about subjects longer than inboxes show."""
    report = check_campaign(app.database(), app.settings, app.signing_key(), campaign)
    for error in report.errors:
        click.echo(f"error: {error}")
    for warning in report.warnings:
        click.echo(f"warning: {warning}")
    summary = f"{report.campaign}: {counted(report.contacts, 'contact')} checked"
    if report.largest_message:  # nothing was built when every render failed
        summary += f", largest message {report.largest_message / 1024:.1f} KB"
    warned = f", {counted(len(report.warnings), 'warning')}" if report.warnings else ""
    if not report.ok:
        raise click.ClickException(f"{summary}; {counted(len(report.errors), 'error')}{warned}")
    click.echo(f"{summary}; no errors{warned}")
