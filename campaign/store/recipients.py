"""SQL for a message's recipient: who a message went to and what it was about, for the pages its links lead to
(the unsubscribe page names the address and the event)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from campaign.store.tables import campaigns, contacts, events, messages, waves


@dataclass(frozen=True, slots=True)
class Recipient:
    """A message's contact, campaign and event."""

    message_id: int
    contact_id: int
    email: str
    email_key: str
    name: str | None
    locale: str | None
    campaign_id: int
    event_id: int
    event_title: str
    event_slug: str


_RECIPIENT = (
    select(
        messages.c.id,
        contacts.c.id,
        contacts.c.email,
        contacts.c.email_key,
        contacts.c.name,
        contacts.c.locale,
        campaigns.c.id,
        events.c.id,
        events.c.title,
        events.c.slug,
    )
    .join(contacts, contacts.c.id == messages.c.contact_id)
    .join(waves, waves.c.id == messages.c.wave_id)
    .join(campaigns, campaigns.c.id == waves.c.campaign_id)
    .join(events, events.c.id == campaigns.c.event_id)
)


def of_message(conn: Connection, message_id: int) -> Recipient | None:
    """The recipient of the message, or None when there is no such message (a token may outlive its message)."""
    row = conn.execute(_RECIPIENT.where(messages.c.id == message_id)).first()
    if row is None:
        return None
    message, contact, address, key, name, locale, campaign, event, title, slug = row
    return Recipient(message, contact, address, key, name, locale, campaign, event, title, slug)
