"""The plain standard-library build of a message: the reference the fast path must equal.

It is what most tools do per message (``EmailMessage`` + ``policy.SMTP``), about 2 ms on this machine class.
``tests/test_mime.py`` proves :class:`~campaign.render.mime.MessageSkeleton` equivalent to it, and
``bench/render.py`` measures both in the same run.
"""

from __future__ import annotations

from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from campaign.render.mime import Sender


def reference_message(
    *,
    sender: Sender,
    list_id: str,
    campaign_id: str,
    message_id: str,
    to_address: str,
    to_name: str | None,
    subject: str,
    text: str,
    html: str,
    unsubscribe_url: str,
    unsubscribe_mailto: str | None,
    date: datetime,
    calendar: bytes | None,
    calendar_method: str = "PUBLISH",
) -> bytes:
    """The same message as :meth:`MessageSkeleton.build`, built the ordinary way."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = f"<{message_id}>"
    msg["From"] = Address(sender.from_name or "", addr_spec=sender.from_address)
    if sender.reply_to:
        msg["Reply-To"] = sender.reply_to
    msg["List-Id"] = list_id
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["X-Campaign-ID"] = campaign_id
    msg["To"] = Address(to_name or "", addr_spec=to_address)
    msg["Subject"] = subject
    unsubscribe = f"<{unsubscribe_url}>"
    if unsubscribe_mailto:
        unsubscribe += f", <mailto:{unsubscribe_mailto}?subject=unsubscribe>"
    msg["List-Unsubscribe"] = unsubscribe
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    if calendar is not None:
        msg.add_alternative(
            calendar, maintype="text", subtype="calendar", params={"method": calendar_method, "charset": "utf-8"}
        )
        msg.add_attachment(calendar, maintype="application", subtype="ics", filename="invite.ics")
    return msg.as_bytes()
