"""What the staff pages show of lists and contacts, and suppressing an address by hand.

* :func:`list_page`: one page of a list's contacts by keyset (the id after which it starts), never an OFFSET,
  so the millionth contact's page costs what the first one's does (:func:`campaign.store.contacts.list_page`).
* :func:`contact_history`: a contact with its lists, suppression, newest messages and tracking events.
* :func:`suppress_by_hand` / :func:`unsuppress_by_hand`: a staff member stops (or lets again) mail to an
  address; the change and its audit entry are written in one transaction, so neither exists without the other.
  Only what staff could have decided is lifted by hand: a suppression by hand and a bounce (the address was
  fixed). An unsubscribe or a complaint is the person's own wish and stays (the person re-subscribes from
  their own message's page).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection

from campaign.exceptions import NotFoundError, ValidationError
from campaign.models import AuditAction, Contact, ContactList, SuppressionReason
from campaign.rules.contact_fields import email_key
from campaign.store import audit as audit_store
from campaign.store import contact_history as history_store
from campaign.store import contacts as contact_store
from campaign.store import lists as list_store
from campaign.store import suppressions as suppression_store
from campaign.store.contact_history import Activity, SentMessage
from campaign.store.engine import Database

PAGE_SIZE = 50
"""Contacts on one page of a list."""
HISTORY_SIZE = 200
"""The newest messages, and tracking events, a contact's page shows."""
LIFTABLE = frozenset({SuppressionReason.MANUAL, SuppressionReason.BOUNCED})
"""The suppressions staff may lift by hand (see the module doc)."""


@dataclass(frozen=True, slots=True)
class ContactPage:
    """One page of a list's contacts; ``next_after`` is the key of the next page (None on the last one)."""

    contact_list: ContactList
    contacts: list[Contact]
    next_after: int | None


@dataclass(frozen=True, slots=True)
class ContactHistory:
    """A contact, its lists, its suppression, and its newest messages and tracking events."""

    contact: Contact
    lists: list[str]
    suppressed: SuppressionReason | None
    messages: list[SentMessage]
    activity: list[Activity]

    @property
    def liftable(self) -> bool:
        """Whether staff may lift the contact's suppression by hand."""
        return self.suppressed in LIFTABLE


def get_list_by_id(db: Database, list_id: int) -> ContactList:
    """The list with this id and its size; raises :class:`NotFoundError`."""
    with db.read() as conn:
        found = list_store.by_id(conn, list_id)
    if found is None:
        raise NotFoundError(f"no list with id {list_id}")
    return found


def list_page(
    db: Database, list_id: int, *, prefix: str | None = None, after: int | None = None, size: int = PAGE_SIZE
) -> ContactPage:
    """The contacts of the list after the id ``after``, whose address or name starts with ``prefix`` (any case)."""
    contact_list = get_list_by_id(db, list_id)
    with db.read() as conn:
        # One more than the page: whether there is a next page, without counting.
        found = contact_store.list_page(conn, list_id, prefix=prefix or None, after=after, limit=size + 1)
    shown = found[:size]
    return ContactPage(contact_list, shown, shown[-1].id if len(found) > size else None)


def contact_history(db: Database, contact_id: int) -> ContactHistory:
    """The contact with this id and its history; raises :class:`NotFoundError`."""
    with db.read() as conn:
        contact = contact_store.by_id(conn, contact_id)
        if contact is None:
            raise NotFoundError(f"no contact with id {contact_id}")
        return ContactHistory(
            contact=contact,
            lists=contact_store.lists_of(conn, contact.id),
            suppressed=suppression_store.reason_for(conn, email_key(contact.email)),
            messages=history_store.messages_of(conn, contact.id, HISTORY_SIZE),
            activity=history_store.activity_of(conn, contact.id, HISTORY_SIZE),
        )


def suppress_by_hand(db: Database, contact_id: int, *, user_id: int | None, address: str | None) -> bool:
    """Suppress the contact's address (reason ``manual``), audited; False when it was suppressed already (kept as
    it was: its reason says more than "by hand"). Raises :class:`NotFoundError`."""
    now = datetime.now(UTC)
    with db.write() as conn:
        contact = _contact(conn, contact_id)
        added = suppression_store.add(conn, email_key(contact.email), SuppressionReason.MANUAL, None, None, now)
        if added:
            audit_store.insert_entry(
                conn,
                now,
                AuditAction.CONTACT_SUPPRESSED.value,
                user_id=user_id,
                target=contact.email,
                details={"address": address},
            )
    return added


def unsuppress_by_hand(db: Database, contact_id: int, *, user_id: int | None, address: str | None) -> bool:
    """Lift the contact's suppression when staff may (:data:`LIFTABLE`), audited; False when there was none.
    Raises :class:`NotFoundError`, or :class:`ValidationError` for an unsubscribe or a complaint."""
    now = datetime.now(UTC)
    with db.write() as conn:
        contact = _contact(conn, contact_id)
        key = email_key(contact.email)
        reason = suppression_store.reason_for(conn, key)
        if reason is None:
            return False
        if reason not in LIFTABLE:
            raise ValidationError(
                f"{contact.email} is suppressed because they {reason.value}: only they can undo that "
                "(from a message's unsubscribe page)"
            )
        lifted = suppression_store.lift(conn, key, reason)
        if lifted:
            audit_store.insert_entry(
                conn,
                now,
                AuditAction.CONTACT_UNSUPPRESSED.value,
                user_id=user_id,
                target=contact.email,
                details={"reason": reason.value, "address": address},
            )
    return lifted


def _contact(conn: Connection, contact_id: int) -> Contact:
    contact = contact_store.by_id(conn, contact_id)
    if contact is None:
        raise NotFoundError(f"no contact with id {contact_id}")
    return contact
