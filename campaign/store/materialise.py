"""SQL that turns a wave into message rows: who of the list is in its audience, at what instant in each recipient's
zone, and which rows are born suppressed or expired; and moving the rows still waiting when the event moves.

Contract: each write is one statement, and those that add rows are idempotent on the outbox's (wave, contact)
key, so a firing that is repeated (a restart, a second scheduler racing the first) adds only the rows missing:

* :func:`enqueue_wave`: every member of a list, ``queued`` or ``suppressed`` (the plain invitation of ``campaign
  send``; bench/enqueue.py);
* :func:`materialise_wave`: the members in an :class:`~campaign.models.Audience` (:func:`audience_condition`),
  each at its zone's instant (:class:`ZoneSchedule`), ``suppressed`` for a suppressed address or one that asked
  for no more mail about the event (:data:`~campaign.store.outbox.EVENT_UNSUBSCRIBED`), ``expired`` where its
  zone has no instant before the wave's expiry; with ``added_since``, a top-up of late joiners;
* :func:`retime_waiting`: the rows not yet attempted, moved to their zone's new instant.

The database computes nothing per recipient that is the same for many: the send instants are computed once per
zone (:func:`stored_zones` reads one index entry per zone, a loose index scan, where reading the list's members
cost a fifth of a second for a million) and travel as one JSON parameter joined on the contact's zone
(bench/waves.py: a million-member wave over 400 zones). Claiming the rows, and recording what became of them, is
:mod:`campaign.store.outbox`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, Text, and_, case, exists, func, literal, or_, select, update

from campaign.models import Audience, MessageStatus, TrackingKind, WaveKind
from campaign.store.dialect import insert_ignoring_conflicts, json_rows
from campaign.store.outbox import EVENT_UNSUBSCRIBED, REACHED
from campaign.store.tables import (
    UTCDateTime,
    attendances,
    campaigns,
    contacts,
    event_unsubscribes,
    list_members,
    messages,
    registrations,
    suppressions,
    tracking_events,
    waves,
)


def enqueue_wave(conn: Connection, *, wave_id: int, list_id: int, scheduled_at: datetime, now: datetime) -> int:
    """One row per member of the list: ``queued``, or ``suppressed`` with the reason. Returns rows added.

    A single INSERT ... SELECT, idempotent thanks to the (wave, contact) key: running it again adds only
    contacts that joined the list since.
    """
    suppressed = suppressions.c.reason.is_not(None)
    source = (
        select(
            literal(wave_id).label("wave_id"),
            list_members.c.contact_id,
            case((suppressed, MessageStatus.SUPPRESSED.value), else_=MessageStatus.QUEUED.value).label("status"),
            literal(scheduled_at, type_=messages.c.scheduled_at.type).label("scheduled_at"),
            literal(0).label("attempts"),
            suppressions.c.reason.label("last_error"),
            literal(now, type_=messages.c.created_at.type).label("created_at"),
            literal(now, type_=messages.c.updated_at.type).label("updated_at"),
        )
        .join(contacts, contacts.c.id == list_members.c.contact_id)
        .outerjoin(suppressions, suppressions.c.email_key == contacts.c.email_key)
        .where(list_members.c.list_id == list_id)
    )
    columns = ["wave_id", "contact_id", "status", "scheduled_at", "attempts", "last_error", "created_at", "updated_at"]
    stmt = insert_ignoring_conflicts(conn, messages).from_select(columns, source)
    # SQLAlchemy 2.1 keeps an INSERT's row count only when asked.
    return conn.execute(stmt, execution_options={"preserve_rowcount": True}).rowcount


# Which tracking event an audience looks for; the "not-" audiences are the list members without one.
# A person's click implies they opened the message: with images blocked, no open is ever recorded.
_OPENED = (TrackingKind.OPEN.value, TrackingKind.CLICK.value)
_CLICKED = (TrackingKind.CLICK.value,)
_AUDIENCE_EVENTS: dict[Audience, tuple[tuple[str, ...], bool]] = {
    Audience.OPENED: (_OPENED, True),
    Audience.NOT_OPENED: (_OPENED, False),
    Audience.CLICKED: (_CLICKED, True),
    Audience.NOT_CLICKED: (_CLICKED, False),
}

# The audiences of rows naming the campaign's event and a contact: registrations (any source), attendances.
_AUDIENCE_ROWS: dict[Audience, tuple[Table, bool]] = {
    Audience.REGISTERED: (registrations, True),
    Audience.NOT_REGISTERED: (registrations, False),
    Audience.ATTENDED: (attendances, True),
    Audience.NOT_ATTENDED: (attendances, False),
}


def audience_condition(audience: Audience, campaign_id: int, contact: Any = None) -> Any:
    """The condition on ``list_members.contact_id`` that selects ``audience``: for ``registered``, a
    registration of that contact for the campaign's event, from any source, with or without a message (see
    :mod:`campaign.store.registrations`); for ``attended``, an attendance of that contact at the campaign's event
    (its attendee report imported, :mod:`campaign.store.attendances`); for ``opened`` (``clicked``), an ``open``
    (``click``) tracking event on a message of this campaign to that contact, by a person (machines do not
    count; a person's click counts as an open too); for the ``not-`` audiences, none; for ``invited``, an
    invitation of this campaign sent or being sent to that contact. None for ``all``. ``contact``: the column
    of the contact instead (a message's, :func:`drop_left_audience`)."""
    if contact is None:
        contact = list_members.c.contact_id
    if audience is Audience.ALL:
        return None
    if audience is Audience.INVITED:
        return contact.in_(_invited(campaign_id))
    if audience in _AUDIENCE_ROWS:
        table, present = _AUDIENCE_ROWS[audience]
        # A probe of the unique (event, contact[, source]) index per member, its first two columns: NOT EXISTS,
        # not NOT IN, as PostgreSQL plans NOT IN over a subquery too big for its memory as a scan per row.
        found = exists(
            # A column of the index, not *: the probe then reads the index alone, never the table.
            select(table.c.contact_id).where(
                table.c.event_id == _event_of(campaign_id),
                table.c.contact_id == contact,
            )
        )
        return found if present else ~found
    kinds, present = _AUDIENCE_EVENTS[audience]
    sent = messages.alias("acted_on")
    acted = (
        select(sent.c.contact_id)
        .join(tracking_events, tracking_events.c.message_id == sent.c.id)
        .where(
            sent.c.wave_id.in_(select(waves.c.id).where(waves.c.campaign_id == campaign_id).scalar_subquery()),
            tracking_events.c.kind.in_(kinds),
            # Opens and clicks by privacy proxies and link scanners say nothing about the person.
            tracking_events.c.is_machine.is_(False),
        )
    )
    return contact.in_(acted) if present else contact.not_in(acted)


def drop_left_audience(
    conn: Connection, wave_id: int, campaign_id: int, audience: Audience, reason: str, now: datetime
) -> int:
    """Cancel, with ``reason``, the wave's messages not sent yet (queued or deferred: none a worker holds) whose
    contact is no longer in ``audience`` (:func:`audience_condition`, the contact being the message's); returns
    how many. For the ``not-`` audiences, which a contact leaves for good (a registration, an open, a click, an
    attendance); not for the others, which a purge of old tracking events or a withdrawn registration would empty."""
    stmt = (
        update(messages)
        .where(*_left_audience(wave_id, campaign_id, audience))
        .values(status=MessageStatus.CANCELLED.value, last_error=reason, next_attempt_at=None, updated_at=now)
    )
    return int(conn.execute(stmt).rowcount)


def any_left_audience(conn: Connection, wave_id: int, campaign_id: int, audience: Audience) -> bool:
    """Whether :func:`drop_left_audience` would cancel a message of the wave: asked in a read transaction first,
    since the usual answer is no, and on SQLite a write transaction would take the database's one write lock."""
    return conn.scalar(select(exists().where(*_left_audience(wave_id, campaign_id, audience)))) is True


def _left_audience(wave_id: int, campaign_id: int, audience: Audience) -> list[Any]:
    """The wave's messages not sent yet whose contact is no longer in ``audience`` (a ``not-`` one)."""
    condition = audience_condition(audience, campaign_id, messages.c.contact_id)
    assert condition is not None, "every audience but all has a condition"
    waiting = (MessageStatus.QUEUED.value, MessageStatus.DEFERRED.value)
    return [messages.c.wave_id == wave_id, messages.c.status.in_(waiting), ~condition]


def _event_of(campaign_id: int) -> Any:
    """The campaign's event id, as a subquery the database evaluates once per statement."""
    return select(campaigns.c.event_id).where(campaigns.c.id == campaign_id).scalar_subquery()


def _invited(campaign_id: int) -> Any:
    """Contacts whose invitation from this campaign was sent or is being sent (``invited``)."""
    invitation = messages.alias("invitation")
    invitations = select(waves.c.id).where(
        waves.c.campaign_id == campaign_id, waves.c.kind == WaveKind.INVITATION.value
    )
    return select(invitation.c.contact_id).where(
        invitation.c.wave_id.in_(invitations.scalar_subquery()), invitation.c.status.in_(REACHED)
    )


@dataclass(frozen=True, slots=True)
class ZoneSchedule:
    """When the recipients of one zone get a wave (None: no instant inside its window before its expiry, and
    then ``error`` says why); ``zone`` is a contact's ``timezone`` column, None for contacts without one."""

    zone: str | None
    scheduled_at: datetime | None
    error: str | None = None


def materialise_wave(
    conn: Connection,
    *,
    wave_id: int,
    campaign_id: int,
    list_id: int,
    audience: Audience,
    zones: Sequence[ZoneSchedule],
    fallback_at: datetime,
    now: datetime,
    added_since: datetime | None = None,
) -> Counter[str]:
    """One row per member of the list in ``audience`` (see :func:`audience_condition`), each scheduled at its
    zone's instant: ``queued``; ``suppressed`` with the reason for a suppressed address, or with
    :data:`EVENT_UNSUBSCRIBED` for one that asked for no more mail about the campaign's event; ``expired`` with
    the zone's ``error`` when its zone has no instant (its ``scheduled_at`` is then ``fallback_at``). A zone
    missing from ``zones`` is treated so too. Returns the rows added by status.

    One ``INSERT ... SELECT``, idempotent on the (wave, contact) key; the per-zone instants travel as one JSON
    parameter joined on the contact's zone, so the database computes nothing per recipient. ``added_since``
    limits it to members who joined the list since then (a top-up of late additions); without it, the wave has
    no rows yet (its compare-and-set to ``enqueued`` just succeeded), so its rows are the ones added.
    """
    rows, zone = _zone_table(conn, zones)
    suppressed = suppressions.c.reason.is_not(None)
    opted_out = event_unsubscribes.c.id.is_not(None)
    no_instant = zone.c.scheduled_at.is_(None)
    fallback = literal(fallback_at, type_=messages.c.scheduled_at.type)
    status = case(
        (or_(suppressed, opted_out), MessageStatus.SUPPRESSED.value),
        (no_instant, MessageStatus.EXPIRED.value),
        else_=MessageStatus.QUEUED.value,
    )
    last_error = case(
        (suppressed, suppressions.c.reason),
        (opted_out, EVENT_UNSUBSCRIBED),
        (no_instant, func.coalesce(zone.c.error, "no send instant in the recipient's zone")),
        else_=None,
    )
    source = (
        select(
            literal(wave_id).label("wave_id"),
            list_members.c.contact_id,
            status.label("status"),
            func.coalesce(zone.c.scheduled_at, fallback).label("scheduled_at"),
            literal(0).label("attempts"),
            last_error.label("last_error"),
            literal(now, type_=messages.c.created_at.type).label("created_at"),
            literal(now, type_=messages.c.updated_at.type).label("updated_at"),
        )
        .join(contacts, contacts.c.id == list_members.c.contact_id)
        .outerjoin(suppressions, suppressions.c.email_key == contacts.c.email_key)
        # Those who asked for no more mail about this event: a probe of its unique (event, address) index.
        .outerjoin(
            event_unsubscribes,
            and_(
                event_unsubscribes.c.event_id == _event_of(campaign_id),
                event_unsubscribes.c.email_key == contacts.c.email_key,
            ),
        )
        # On this expression, not the column itself: joined on the column, SQLite 3.40 reads every zone row for
        # every recipient (five times slower at 400 zones); on the expression it looks each one up in an
        # automatic index on the zones (tests/test_scheduling.py checks the plan).
        .outerjoin(zone, zone.c.zone == func.coalesce(contacts.c.timezone, ""))
        .where(list_members.c.list_id == list_id)
    )
    if (condition := audience_condition(audience, campaign_id)) is not None:
        source = source.where(condition)
    columns = ["wave_id", "contact_id", "status", "scheduled_at", "attempts", "last_error", "created_at", "updated_at"]
    if added_since is not None:
        # A top-up adds few rows: they come back as they are inserted.
        source = source.where(list_members.c.added_at >= added_since)
        stmt = insert_ignoring_conflicts(conn, messages).from_select(columns, source).returning(messages.c.status)
        return Counter(conn.execute(stmt, {"zones": rows}).scalars())
    stmt = insert_ignoring_conflicts(conn, messages).from_select(columns, source)
    # SQLAlchemy 2.1 keeps an INSERT's row count only when asked.
    added = conn.execute(stmt, {"zones": rows}, execution_options={"preserve_rowcount": True}).rowcount
    # The few rows not queued are counted from the due index (wave, status, ...), two short ranges of it, and
    # the queued ones are the rest: counting them there too would read an index entry per recipient again.
    unsent = (MessageStatus.SUPPRESSED.value, MessageStatus.EXPIRED.value)
    counted = (
        select(messages.c.status, func.count())
        .where(messages.c.wave_id == wave_id, messages.c.status.in_(unsent))
        .group_by(messages.c.status)
    )
    counts = Counter({row[0]: row[1] for row in conn.execute(counted)})
    if queued := added - counts.total():
        counts[MessageStatus.QUEUED.value] = queued
    return counts


def retime_waiting(conn: Connection, wave_id: int, zones: Sequence[ZoneSchedule], now: datetime) -> int:
    """Move the wave's messages that wait for their first attempt to their zone's instant in ``zones`` (the
    event moved: a reminder queued for the old time goes at the new one); a zone without an instant keeps its
    time (the wave's expiry, moved with the event, then decides). Returns how many messages were moved.

    One ``UPDATE``; the instants travel as one JSON parameter, as in :func:`materialise_wave`."""
    rows, zone = _zone_table(conn, zones)
    instant = (
        select(zone.c.scheduled_at)
        .select_from(contacts)
        .join(zone, zone.c.zone == func.coalesce(contacts.c.timezone, ""))
        .where(contacts.c.id == messages.c.contact_id, zone.c.scheduled_at.is_not(None))
        .scalar_subquery()
    )
    stmt = (
        update(messages)
        .where(
            messages.c.wave_id == wave_id,
            messages.c.status == MessageStatus.QUEUED.value,
            messages.c.attempts == 0,
            # A message in a worker's hands is being sent as it stands.
            messages.c.lease_owner.is_(None),
        )
        .values(scheduled_at=func.coalesce(instant, messages.c.scheduled_at), updated_at=now)
    )
    moved: int = conn.execute(stmt, {"zones": rows}, execution_options={"preserve_rowcount": True}).rowcount
    return moved


def _zone_table(conn: Connection, zones: Sequence[ZoneSchedule]) -> tuple[str, Any]:
    """``zones`` as the JSON parameter ``zones`` and the subquery that reads it (zone, scheduled_at, error); a
    contact without a zone matches the zone ``""``."""
    dialect = conn.dialect
    to_db = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)

    def stored(instant: datetime | None) -> Any:
        # Copied from the SELECT as is, no type processing on the way: the backend's own storage form.
        if instant is None:
            return None
        value = to_db(instant) if to_db else instant
        return value.isoformat() if isinstance(value, datetime) else value

    rows = json.dumps([[z.zone or "", stored(z.scheduled_at), z.error] for z in zones])
    zone = json_rows(dialect.name, "zones", [("zone", Text()), ("scheduled_at", UTCDateTime()), ("error", Text())])
    return rows, zone


def audience_zones(conn: Connection, list_id: int, added_since: datetime | None = None) -> list[str | None]:
    """The distinct zones of the list's members (None for those without one): each gets its instant once."""
    stmt = (
        select(contacts.c.timezone)
        .distinct()
        .join(list_members, list_members.c.contact_id == contacts.c.id)
        .where(list_members.c.list_id == list_id)
    )
    if added_since is not None:
        stmt = stmt.where(list_members.c.added_at >= added_since)
    return list(conn.scalars(stmt))


def stored_zones(conn: Connection) -> list[str | None]:
    """The distinct zones of all contacts, and None (a contact without one): a superset of any list's zones.

    A firing computes one send instant per zone, so a few zones more than the list's cost nothing, whereas
    :func:`audience_zones` for a whole list reads every member and its contact (a fifth of a second for a
    million). This reads one index entry per zone instead: a recursive "next zone after this one" through
    ``ix_contacts_timezone`` (a loose index scan, on SQLite and PostgreSQL alike).
    """
    after = select(func.min(contacts.c.timezone).label("zone")).cte("zones", recursive=True)
    following = select(func.min(contacts.c.timezone)).where(contacts.c.timezone > after.c.zone).scalar_subquery()
    after = after.union_all(select(following.label("zone")).where(after.c.zone.is_not(None)))
    # None stands for the zoneless (and an empty zone, which the materialising join takes for none).
    return [zone for zone in conn.scalars(select(after.c.zone)) if zone] + [None]


def joined_since(conn: Connection, list_id: int, since: datetime) -> bool:
    """Whether a member joined the list at or after ``since``: an EXISTS on an index range of
    ``ix_list_members_list_id_added_at``, cheap enough for every tick of every fired invitation."""
    stmt = select(exists().where(list_members.c.list_id == list_id, list_members.c.added_at >= since))
    return bool(conn.scalar(stmt))
