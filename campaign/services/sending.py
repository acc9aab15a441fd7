"""One-off test messages to staff: rendered like the real thing, sent at once, never recorded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from campaign.config import Settings
from campaign.exceptions import NotFoundError, ValidationError
from campaign.mail.smtp import ServerChooser, SmtpConnection, SmtpServer
from campaign.render.identifiers import message_id_for
from campaign.rules.contact_fields import email_key, normalise_email
from campaign.services.campaigns import get_campaign
from campaign.services.contacts import contact_details, find_contacts
from campaign.services.installation import installation_id
from campaign.services.rendering import wave_renderer
from campaign.store import suppressions as suppression_store
from campaign.store.engine import Database


@dataclass(frozen=True, slots=True)
class TestSendResult:
    """Where the test went and what the server said."""

    to: str
    rendered_as: str
    reply: str


async def send_test(
    db: Database,
    settings: Settings,
    key: bytes,
    servers: Sequence[SmtpServer],
    campaign_ref: str,
    to: str,
    as_contact: str | None = None,
) -> TestSendResult:
    """Render the campaign's first wave for a contact of its audience and send it to ``to``, marked [TEST]."""
    details = get_campaign(db, campaign_ref)
    address = normalise_email(to)
    with db.read() as conn:
        reason = suppression_store.reason_for(conn, email_key(address))
    if reason is not None:
        # A test is a staff member's look at the message, never a way to reach someone who asked not to be mailed.
        raise ValidationError(
            f"{address} is suppressed ({reason.value}): a test is never sent to a suppressed address; "
            "give your own address",
            field="to",
        )
    if as_contact:
        contact = contact_details(db, as_contact).contact
    else:
        first = next(iter(find_contacts(db, list_name=details.campaign.list_name, limit=1)), None)
        if first is None:
            raise NotFoundError(f"list {details.campaign.list_name!r} has no contacts to render as")
        contact = first
    stamp = datetime.now(UTC)
    renderer = wave_renderer(settings, key, details, details.waves[0], installation_id(db), stamp=stamp)
    connection = SmtpConnection(ServerChooser(servers))
    try:
        eight_bit = await connection.accepts_8bit()
        # The recipient is the staff address; everything else is rendered as the contact would see it.
        message = renderer.build(
            replace(contact, email=address),
            message_id_for(f"test.{details.campaign.id}.{stamp:%Y%m%d%H%M%S%f}", renderer.sender),
            date=stamp,
            subject_prefix="[TEST] ",
            eight_bit=eight_bit,
        )
        reply = await connection.send(settings.mail.from_address, address, message, eight_bit=eight_bit)
    finally:
        await connection.close()
    return TestSendResult(address, contact.email, f"250 {reply}")
