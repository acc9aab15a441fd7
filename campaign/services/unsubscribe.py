"""Unsubscribing, from one event or from everything, and subscribing again: what the ``/u/{token}`` page and
RFC 8058 one-click POSTs do, given the message id of a verified UNSUBSCRIBE token.

Contract:

* :func:`unsubscribe_everything` suppresses the message's address (reason ``unsubscribed``) across every
  campaign, at once: the outbox checks suppressions when it claims a message, so messages already queued to
  the address are not sent (they become ``suppressed``). An address already suppressed keeps its suppression
  as it is (a bounce stays a bounce).
* :func:`unsubscribe_event` records that the address wants no more mail about the message's event
  (``event_unsubscribes``); the outbox honours it when a wave is materialised and when a message is claimed.
  Every other event's mail still goes.
* :func:`resubscribe` lifts the suppression the address's own unsubscribe created (reason ``unsubscribed``
  only: never a bounce, a complaint or a suppression by hand) and its opt-out of the message's event.
* :func:`unsubscribe_addresses` does for addresses what the first does for a message's: for requests that came
  another way (a reply saying "unsubscribe", a mail to ``mail.unsubscribe_mailto``), from the command line;
  audited, and, tied to no message, counted in no campaign's report.
* Each is idempotent, and a message that does not exist (a token may outlive its message) is None: the page
  then says nothing about anyone.
* An unsubscribe that changes something is recorded as an ``unsubscribe`` tracking event on the message, in the
  same transaction as the change (so the count and the suppressions cannot disagree), as a person's: an RFC
  8058 one-click POST is made by the mailbox provider's server on the reader's behalf, which the scanner rules
  of :mod:`campaign.rules.machines` would take for a machine. Unsubscribes are rare, so they are not batched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from campaign.exceptions import ValidationError
from campaign.models import AuditAction, SuppressionReason, TrackingKind
from campaign.rules.contact_fields import FieldError, email_key, normalise_email
from campaign.store import audit as audit_store
from campaign.store import event_unsubscribes as event_unsubscribe_store
from campaign.store import recipients as recipient_store
from campaign.store import suppressions as suppression_store
from campaign.store import tracking as tracking_store
from campaign.store.engine import Database
from campaign.store.recipients import Recipient


@dataclass(frozen=True, slots=True)
class Subscription:
    """What the address of a message gets: its recipient, its suppression (if any) and whether it left the
    message's event."""

    recipient: Recipient
    suppressed: SuppressionReason | None
    left_event: bool

    @property
    def unsubscribed(self) -> bool:
        """Unsubscribed from everything by its own choice (the page then offers to subscribe again)."""
        return self.suppressed is SuppressionReason.UNSUBSCRIBED

    @property
    def blocked(self) -> bool:
        """Suppressed for another reason (bounced, complained, by hand): no mail, and no re-subscribing here."""
        return self.suppressed is not None and not self.unsubscribed


@dataclass(frozen=True, slots=True)
class Change:
    """The subscription after a request, and whether the request changed it (False: it was already so)."""

    subscription: Subscription
    changed: bool


@dataclass(frozen=True, slots=True)
class Visitor:
    """What is recorded of whoever unsubscribed: the IP as ``tracking.ip`` keeps it, and the user agent."""

    ip: str | None = None
    user_agent: str | None = None


def subscription(db: Database, message_id: int) -> Subscription | None:
    """The subscription of the message's address, or None when there is no such message. Changes nothing."""
    with db.read() as conn:
        return _subscription(conn, message_id)


def unsubscribe_everything(
    db: Database, message_id: int, now: datetime, visitor: Visitor | None = None
) -> Change | None:
    """Suppress the message's address from every campaign, at once (see the module doc)."""
    with db.write() as conn:
        recipient = recipient_store.of_message(conn, message_id)
        if recipient is None:
            return None
        changed = suppression_store.add(
            conn, recipient.email_key, SuppressionReason.UNSUBSCRIBED, "unsubscribe link", message_id, now
        )
        if changed:
            _record(conn, message_id, now, visitor)
        return Change(_state(conn, recipient), changed)


def unsubscribe_addresses(
    db: Database, addresses: Sequence[str], now: datetime
) -> list[tuple[str, SuppressionReason | None]]:
    """Suppress each of ``addresses`` (reason ``unsubscribed``) from every campaign at once, as their own
    unsubscribe link would; returns each address (normalised) with the reason it was already suppressed for,
    None when this suppressed it. A malformed address raises :class:`ValidationError` before anything changes."""
    normalised = []
    for address in addresses:
        try:
            normalised.append(normalise_email(address))
        except FieldError as exc:
            raise ValidationError(f"{address!r} is not an email address: {exc.reason}") from None
    done: list[tuple[str, SuppressionReason | None]] = []
    with db.write() as conn:
        for address in dict.fromkeys(normalised):
            key = email_key(address)
            already = suppression_store.reason_for(conn, key)
            if already is None:
                suppression_store.add(conn, key, SuppressionReason.UNSUBSCRIBED, "by request", None, now)
                audit_store.insert_entry(
                    conn,
                    now,
                    AuditAction.CONTACT_SUPPRESSED.value,
                    user_id=None,
                    target=address,
                    details={"reason": SuppressionReason.UNSUBSCRIBED.value},
                )
            done.append((address, already))
    return done


def unsubscribe_event(db: Database, message_id: int, now: datetime, visitor: Visitor | None = None) -> Change | None:
    """No more mail to the message's address about the message's event (see the module doc)."""
    with db.write() as conn:
        recipient = recipient_store.of_message(conn, message_id)
        if recipient is None:
            return None
        changed = event_unsubscribe_store.add(conn, recipient.event_id, recipient.email_key, message_id, now)
        if changed:
            _record(conn, message_id, now, visitor)
        return Change(_state(conn, recipient), changed)


def resubscribe(db: Database, message_id: int) -> Change | None:
    """Lift the address's own unsubscribe and its opt-out of the message's event; a bounce, a complaint or a
    suppression by hand stays."""
    with db.write() as conn:
        recipient = recipient_store.of_message(conn, message_id)
        if recipient is None:
            return None
        lifted = suppression_store.lift(conn, recipient.email_key, SuppressionReason.UNSUBSCRIBED)
        rejoined = event_unsubscribe_store.remove(conn, recipient.event_id, recipient.email_key)
        return Change(_state(conn, recipient), lifted or rejoined)


def _subscription(conn: Connection, message_id: int) -> Subscription | None:
    recipient = recipient_store.of_message(conn, message_id)
    return None if recipient is None else _state(conn, recipient)


def _state(conn: Connection, recipient: Recipient) -> Subscription:
    return Subscription(
        recipient,
        suppression_store.reason_for(conn, recipient.email_key),
        event_unsubscribe_store.has_left(conn, recipient.event_id, recipient.email_key),
    )


def _record(conn: Connection, message_id: int, now: datetime, visitor: Visitor | None) -> None:
    visitor = visitor or Visitor()
    tracking_store.insert_events(
        conn,
        [
            {
                "message_id": message_id,
                "kind": TrackingKind.UNSUBSCRIBE.value,
                "is_machine": False,
                "ip": visitor.ip,
                "user_agent": visitor.user_agent[:1000] if visitor.user_agent else None,
                "occurred_at": now,
            }
        ],
    )
