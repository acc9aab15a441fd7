"""What the staff web's campaign pages show that the command line prints differently: nothing decided here.

Contract:

* :func:`preview_parts`: one contact's invitation as :func:`campaign.services.rendering.preview_contact` writes
  it (the same files ``campaign preview --contact`` writes), read back as its subject, HTML and text part, so a
  page can show all three.
* :func:`launch_summary`: what a launch confirmation states: the audience (the list's size), how many of them
  get a ``suppressed`` row instead of a message (:func:`campaign.store.launch_counts.suppressed_members`, the
  condition the invitation is written with), the first wave and its planned time
  (:func:`campaign.services.waves.list_waves`), and the launch checks
  (:func:`campaign.services.rendering.check_campaign`, the gate :func:`~campaign.services.lifecycle.launch` runs).
* :func:`send_test_message`: ``campaign test-send`` from a worker thread (its own event loop, the servers of the
  settings for the send's duration).
* :func:`audience_sample`: the first addresses of the audience, for a page's picker (bounded: a list may hold a
  million).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage

from campaign.config import Settings
from campaign.services.campaigns import get_campaign
from campaign.services.contacts import find_contacts, get_list
from campaign.services.rendering import CheckReport, check_campaign, preview_contact
from campaign.services.sending import TestSendResult, send_test
from campaign.services.transport import smtp_servers
from campaign.services.waves import PASSES_BEFORE_LAUNCH, WaveLine, list_waves
from campaign.store import launch_counts
from campaign.store.engine import Database

AUDIENCE_SAMPLE = 200
"""The most addresses :func:`audience_sample` returns."""
_NEVER = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class PreviewParts:
    """One contact's invitation: its subject, HTML and text part, and its size as sent."""

    email: str
    subject: str
    html: str
    text: str
    size: int


@dataclass(frozen=True, slots=True)
class LaunchSummary:
    """What launching a campaign now would do (see the module doc)."""

    campaign: str
    audience: int
    suppressed: int
    first_wave: WaveLine | None
    check: CheckReport
    skipped: tuple[WaveLine, ...] = ()
    """The waves a launch now would skip, their time passed (each with why): said before the launch, not after."""
    event_passed: bool = False
    """Whether the event has started already (the launch is not refused: a follow-up may still be meant)."""


def preview_parts(db: Database, settings: Settings, key: bytes, campaign_ref: str, address: str) -> PreviewParts:
    """The invitation of the contact at ``address`` (one of the campaign's audience; else NotFoundError)."""
    preview = preview_contact(db, settings, key, campaign_ref, address)
    message = email.message_from_bytes(preview.eml_path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    text = message.get_body(preferencelist=("plain",))
    return PreviewParts(
        email=address,
        subject=preview.subject,
        html=preview.html_path.read_text(encoding="utf-8"),
        text="" if text is None else str(text.get_content()),
        size=preview.size,
    )


def launch_summary(db: Database, settings: Settings, key: bytes, campaign_ref: str) -> LaunchSummary:
    """The numbers a launch confirmation states, and the checks the launch would run."""
    details = get_campaign(db, campaign_ref)
    campaign = details.campaign
    audience = get_list(db, campaign.list_name).size
    with db.read() as conn:
        suppressed = launch_counts.suppressed_members(conn, campaign.list_id, campaign.event_id)
    lines = list_waves(db, str(campaign.id)).waves
    waves = [line for line in lines if line.to_come]
    first = min(waves, key=lambda line: line.planned or _NEVER, default=None)
    check = check_campaign(db, settings, key, str(campaign.id))
    skipped = tuple(line for line in lines if line.note == PASSES_BEFORE_LAUNCH)
    started = details.event.starts_at <= datetime.now(UTC)
    return LaunchSummary(campaign.name, audience, suppressed, first, check, skipped, started)


def send_test_message(
    db: Database, settings: Settings, key: bytes, campaign_ref: str, to: str, as_contact: str
) -> TestSendResult:
    """``campaign test-send``: the campaign's first wave rendered as ``as_contact`` (empty: the first of the
    audience) and sent, marked [TEST], to ``to`` through the configured servers (the capture server, started for
    the send, in capture mode). Blocking: for a worker thread."""
    with smtp_servers(settings) as servers:
        return asyncio.run(send_test(db, settings, key, servers, campaign_ref, to, as_contact or None))


def audience_sample(db: Database, campaign_ref: str, limit: int = AUDIENCE_SAMPLE) -> list[str]:
    """The first ``limit`` addresses of the campaign's list, in address order."""
    details = get_campaign(db, campaign_ref)
    return [contact.email for contact in find_contacts(db, list_name=details.campaign.list_name, limit=limit)]
