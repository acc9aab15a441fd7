"""The recipient's own calendar file, as the ``/ics/{token}`` link of a message serves it.

Contract: :func:`message_calendar` builds, for one outbox message, the same calendar the message carried as
its attachment (the same UID: the event's, this database's installation and ``mail.domain``; the event's
current SEQUENCE, so a file fetched after an update or a cancellation is that update or cancellation):
METHOD:PUBLISH, or REQUEST with the recipient as ATTENDEE when ``render.calendar_method`` is REQUEST; a
cancelled event's file says STATUS:CANCELLED (:func:`~campaign.render.calendar.build_ics`).
"""

from __future__ import annotations

from datetime import datetime

from campaign.config import Settings
from campaign.render.calendar import CalendarMethod, build_ics
from campaign.store import contacts as contact_store
from campaign.store import events as event_store
from campaign.store import recipients as recipient_store
from campaign.store.engine import Database


def message_calendar(
    db: Database, settings: Settings, installation: str, message_id: int, stamp: datetime
) -> bytes | None:
    """The .ics of message ``message_id`` for its recipient (DTSTAMP ``stamp``); None when the message, its
    contact or its event no longer exists. ``installation`` is :func:`~campaign.services.installation.
    installation_id` of ``db`` (read once by the caller)."""
    with db.read() as conn:
        facts = recipient_store.of_message(conn, message_id)
        if facts is None:
            return None
        event = event_store.find(conn, str(facts.event_id))
        contact = contact_store.by_ids(conn, [facts.contact_id]).get(facts.contact_id)
    if event is None or contact is None:
        return None
    method = CalendarMethod(settings.render.calendar_method)
    return build_ics(
        event,
        domain=settings.mail.domain,
        installation=installation,
        method=method,
        stamp=stamp,
        attendee=(contact.email, contact.display_name) if method is CalendarMethod.REQUEST else None,
    )
