"""SQL for the outbox: claiming message rows under a lease, recording results (the rows are made from waves by
:mod:`campaign.store.materialise`).

Claiming is the queue's heart. On PostgreSQL due rows are selected ``FOR UPDATE SKIP LOCKED``, so many
workers share one queue without waiting on each other. On SQLite a claim is ``UPDATE ... WHERE id IN (SELECT
... LIMIT n) RETURNING`` statements inside one ``BEGIN IMMEDIATE`` transaction (see :mod:`campaign.store.engine`):
one writer at a time, no lost updates. A claimed row is ``sending`` with a lease; a row whose lease expired (its
worker died) is due again, so nothing is ever stranded.

What a message costs PostgreSQL (server CPU, bench/scale.py with one worker, 20,000 messages; the machine shared
and loaded, so ±10%): 53 to 170 µs, depending on the statistics, before the statements below were made
independent of them; 28 to 31 µs once they were; 21 to 23 µs since migration 0012 (one core coordinates about
44,000 to 47,600 msg/s; on a quiet machine 21 µs against 28 for the code before it, run for run). Measured per
statement from the backend's own CPU time (/proc/<pid>/schedstat around each statement of a counted worker): the
claim 11 to 12.5, the record of its result 6, BEGIN/COMMIT 1.9, the reads rendering needs 1.5, the status checks
and heartbeats 0.5. The claim then lost its probe of the event opt-outs while no address opted out of a sending
campaign's event (see :func:`_suppression_reason_of_key`): about 1.5 µs less, 19.5 to 20.5 µs in all (0.020 s
per 1,000 messages in three runs against 0.022 to 0.0225 for the code before, interleaved on the same machine).

The plans were the first cost: right after a launch ``messages`` and ``contacts`` have no statistics, or statistics
that say every message is ``queued``, and the claim, the contacts' read and the result update each had a plan that
scans a whole table for every batch once the statistics misled it (see :func:`_due_in_order`,
:func:`_claim_in_one`, :func:`_mark_sent_postgresql`). Then index upkeep: a message makes two row versions
(claimed, then sent), neither a HOT update since both change ``status``, an indexed column, so each puts an entry
into every index of ``messages`` it belongs to. Migration 0012 cut that on PostgreSQL from five indexes to three
(one unique (contact, wave) index for the key and the contacts' look-ups; no unique Message-ID; ``ix_messages_due``
partial, without the ``sent`` rows, see :data:`~campaign.store.tables.due_indexed`): 5 entries a message instead
of 10; and gave the table a fillfactor of 70, so a row's next version mostly stays on its page. A loop of claims
and results alone over 20,000 messages: 27 µs a message before, 21.5 with the three indexes, 18.5 with the
fillfactor too. Left, roughly per message: the heap update and its WAL twice, the claim's row lock (its own WAL
record), five index entries at about 1 µs each, the look-ups by primary key, and the commits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    String,
    Text,
    and_,
    any_,
    bindparam,
    case,
    column,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
    update,
    values,
)
from sqlalchemy.dialects import postgresql

from campaign.models import (
    REACHED_MESSAGES,
    UNFINISHED_MESSAGES,
    WAITING_MESSAGES,
    CampaignStatus,
    Contact,
    MessageStatus,
    WaveKind,
)
from campaign.store.contacts import CONTACT_FIELDS
from campaign.store.dialect import json_rows
from campaign.store.tables import (
    UTCDateTime,
    campaigns,
    contacts,
    due_at,
    due_indexed,
    event_unsubscribes,
    messages,
    suppressions,
    waves,
)

# The sets of campaign.models as the column's values, in MessageStatus order: a fixed order, so one SQL text
# per statement, and the claim's IN list stays queued before deferred.
PENDING = tuple(s.value for s in MessageStatus if s in WAITING_MESSAGES)
UNFINISHED = tuple(s.value for s in MessageStatus if s in UNFINISHED_MESSAGES)
REACHED = tuple(s.value for s in MessageStatus if s in REACHED_MESSAGES)


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """A message row a worker now holds the lease on."""

    id: int
    wave_id: int
    contact_id: int
    attempts: int
    queued_at: datetime


EVENT_UNSUBSCRIBED = "unsubscribed from this event"
"""The ``last_error`` of a message not sent because its address asked for no more mail about its event."""


def _sending_waves(campaign_id: int | None) -> Any:
    """Ids of the waves of campaigns that are sending (few: the claim looks up each one's due range)."""
    query = select(waves.c.id).join(campaigns, campaigns.c.id == waves.c.campaign_id)
    query = query.where(campaigns.c.status == CampaignStatus.SENDING.value)
    return query if campaign_id is None else query.where(campaigns.c.id == campaign_id)


def _pending(now: datetime, campaign_id: int | None) -> Any:
    """Queued or deferred messages due at ``now``: a range of ``ix_messages_due`` per wave."""
    return and_(
        messages.c.wave_id.in_(_sending_waves(campaign_id).scalar_subquery()),
        messages.c.status.in_(PENDING),
        due_at <= now,
        due_indexed,  # implied by the statuses, but a parameter proves nothing to a generic plan (PostgreSQL)
    )


def _abandoned(now: datetime, campaign_id: int | None) -> Any:
    """Messages whose worker died: still ``sending``, lease expired."""
    return and_(
        messages.c.wave_id.in_(_sending_waves(campaign_id).scalar_subquery()),
        messages.c.status == MessageStatus.SENDING.value,
        due_at < now,
        due_indexed,
    )


def count_due(conn: Connection, now: datetime, campaign_id: int | None = None) -> int:
    """How many messages of sending campaigns are due at ``now``."""
    due = or_(_pending(now, campaign_id), _abandoned(now, campaign_id))
    return conn.scalar(select(func.count()).select_from(messages).where(due)) or 0


@dataclass(frozen=True, slots=True)
class Claim:
    """What one claim took: the messages to send, and how many it found suppressed instead (see :func:`claim`)."""

    messages: list[ClaimedMessage]
    suppressed: int = 0
    # The claimed messages' contacts by id, when the claim read them itself (PostgreSQL); None: the caller reads
    # them (SQLite, where a read after the claim costs no round trip).
    contacts: dict[int, Contact] | None = None


def claim(
    conn: Connection, *, owner: str, now: datetime, lease_until: datetime, limit: int, campaign_id: int | None = None
) -> Claim:
    """Lease up to ``limit`` due messages of campaigns that are sending, returned in id order: first those whose
    worker died, then due ones.

    Which due ones, when more are due than ``limit``, is the index's order, not a sort of the queue: within one
    wave and status, earliest due first; across waves, and between retries and first attempts, no promise (every
    due message is claimed in its turn). Two statements, not one with OR: an OR of the two conditions makes the
    planners give up the index range and sort the whole queue for every batch.

    A message whose address was suppressed after its wave was materialised (an unsubscribe, a bounce in another
    campaign), or that asked since for no more mail about the campaign's event, is not returned: it becomes
    ``suppressed`` with the reason in ``last_error``, its attempt not counted, and :attr:`Claim.suppressed`
    counts it. The claim itself looks, so no caller can send one by forgetting to.

    On PostgreSQL all of this is one statement (see :func:`_claim_in_one`); on SQLite, three in the caller's
    transaction (a round trip there costs a function call, and SQLite takes no row locks to skip).
    """
    if conn.dialect.name == "postgresql":
        return _claim_in_one(conn, owner, now, lease_until, limit, campaign_id)
    claimed = _lease(conn, _abandoned(now, campaign_id), owner, now, lease_until, limit)
    if len(claimed) < limit:
        claimed += _lease(conn, _pending(now, campaign_id), owner, now, lease_until, limit - len(claimed))
    if not claimed:
        return Claim([])
    # One statement per batch, whatever it holds: the claimed ids travel as one parameter, and each is a
    # primary-key look-up of the message, its contact and the suppression of that contact's key, and of its
    # wave and campaign and the opt-out of that key from the campaign's event.
    ids = json.dumps([[m.id] for m in claimed])
    suppressed = set(conn.scalars(_suppress_claimed(conn.dialect.name), {"ids": ids, "now": now}))
    return Claim(sorted((m for m in claimed if m.id not in suppressed), key=lambda m: m.id), len(suppressed))


def _lease_values(owner: str, now: datetime, lease_until: datetime) -> dict[str, Any]:
    """What a claim writes to each message it leases (on either backend's claim)."""
    return {
        "status": MessageStatus.SENDING.value,
        "lease_owner": owner,
        "lease_expires_at": lease_until,
        "attempts": messages.c.attempts + 1,
        "updated_at": now,
    }


def _lease(
    conn: Connection, condition: Any, owner: str, now: datetime, lease_until: datetime, limit: int
) -> list[ClaimedMessage]:
    chosen = select(messages.c.id).where(condition).limit(limit)
    if conn.dialect.name == "postgresql":
        chosen = chosen.with_for_update(skip_locked=True)
    stmt = (
        update(messages)
        .where(messages.c.id.in_(chosen.scalar_subquery()))
        .values(_lease_values(owner, now, lease_until))
        .returning(
            messages.c.id, messages.c.wave_id, messages.c.contact_id, messages.c.attempts, messages.c.scheduled_at
        )
    )
    return [ClaimedMessage(*row) for row in conn.execute(stmt)]


def _claim_in_one(
    conn: Connection, owner: str, now: datetime, lease_until: datetime, limit: int, campaign_id: int | None
) -> Claim:
    """:func:`claim` in one statement (PostgreSQL), a second only when some are suppressed: up to ``limit`` rows,
    abandoned ones first, locked ``FOR UPDATE SKIP LOCKED`` by two index-range subqueries (each its own, as in
    :func:`claim`, for the planners' sake) under one ``LIMIT``, which reads the second only as far as the first
    falls short; one ``UPDATE`` leases them all, joined to their contacts, and returns each one's contact (what
    rendering needs, :attr:`Claim.contacts`) and suppression reason, looked up by the contact's key beside it
    (so once a row); those with one are then set aside by :func:`_suppress_claimed` as on SQLite. One round
    trip a batch instead of three, and no read of the contacts after it.

    The contacts come with the claim, not from a second ``SELECT ... WHERE id IN (...)``: that one's plan
    depended on the contacts' statistics, and without any (a list just imported) PostgreSQL scanned the whole
    table for every batch (bench/scale.py: 12 µs of server CPU a message at 20,000 contacts, against about 2 for
    the join here, which reaches each contact by primary key from the claimed row)."""

    abandoned = _due_in_order(campaign_id, (MessageStatus.SENDING.value,), due_at < now, limit)
    pending = _due_in_order(campaign_id, PENDING, due_at <= now, limit)
    chosen = union_all(abandoned, pending).limit(limit).subquery()
    stmt = (
        update(messages)
        # = ANY(ARRAY(...)), not IN or a join: the chosen ids are collected first, then looked up by primary key
        # (as IN or a join, PostgreSQL hashed the whole table to find 200 rows of a 20,000-row queue).
        .where(messages.c.id == any_(func.array(select(chosen.c.id).scalar_subquery())))
        .where(contacts.c.id == messages.c.contact_id)
        .values(_lease_values(owner, now, lease_until))
        .returning(
            messages.c.id,
            messages.c.wave_id,
            messages.c.contact_id,
            messages.c.attempts,
            messages.c.scheduled_at,
            _suppression_reason_of_key(contacts.c.email_key, messages.c.wave_id).label("reason"),
            *(contacts.c[name] for name in CONTACT_FIELDS),
        )
    )
    rows = conn.execute(stmt).all()
    held = [row.id for row in rows if row.reason is not None]
    if held:
        ids = json.dumps([[i] for i in held])
        conn.execute(_suppress_claimed(conn.dialect.name), {"ids": ids, "now": now})
    kept = [row for row in rows if row.reason is None]
    claimed = sorted((ClaimedMessage(*row[:5]) for row in kept), key=lambda m: m.id)
    people = {
        row.contact_id: Contact(
            row.contact_id, row.email, row.name, row.first_name, row.last_name, row.timezone, row.country,
            row.locale, row.organisation, row.attributes or {},
        )
        for row in kept
    }  # fmt: skip
    return Claim(claimed, len(held), people)


def _due_in_order(campaign_id: int | None, statuses: Sequence[str], due: Any, limit: int) -> Any:
    """Ids of up to ``limit`` messages in ``statuses`` meeting ``due``, of the waves of sending campaigns, locked
    ``FOR UPDATE SKIP LOCKED`` (PostgreSQL): for each wave and status, in order of due time, a range of
    ``ix_messages_due`` read only as far as needed.

    Each (wave, status) is its own ``LATERAL`` subquery ordered by due time, the index's order within one wave
    and status, so that reading the index is the planner's only cheap way, whatever the statistics say. With the
    statistics of a fresh launch (every row ``queued``), an unordered ``status IN (...) LIMIT n`` looked cheapest
    as a scan of the table from its start, which skips every message already sent: on bench/scale.py's data
    (20,000 messages, statistics taken at launch) the claim cost 18 to 21 µs of server CPU a message instead of
    10 to 12, and the scan grows with every message sent."""
    wave = _sending_waves(campaign_id).subquery("w")
    status = values(column("status", String()), name="s").data([(value,) for value in statuses])
    chosen = (
        select(messages.c.id)
        # The status comes from the VALUES row, so only the literal condition tells PostgreSQL's planner these
        # rows are in the partial ix_messages_due.
        .where(messages.c.wave_id == wave.c.id, messages.c.status == status.c.status, due_indexed, due)
        .order_by(due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .lateral("m")
    )
    return select(chosen.c.id).select_from(wave).join(status, true()).join(chosen, true())


def _suppression_reason_of_key(email_key: Any, wave_id: Any) -> Any:
    """:func:`_suppression_reason` given the contact's ``email_key`` (a column of a contact already joined):
    probes of the suppressions' key and the unique (event, address) index, no look-up of the contact.

    The opt-out's probe runs only when some address opted out of the event of a campaign that is sending (one
    ``EXISTS`` a statement, an InitPlan PostgreSQL evaluates once; ``CASE`` evaluates its result only when the
    condition holds): without one, no claimed message can have opted out, since the claim takes messages of
    sending campaigns only, read in the same snapshot. Skipping the probe (the message's wave and campaign by
    primary key, then the (event, address) index) saves about 1.5 µs of server CPU a message: the whole claim
    9.8 to 10.2 µs instead of 11.3 to 12.1 (20,000 messages, batches of 200, the backend's schedstat around each
    claim). With 2,000 opt-outs from the event the probe runs as before, within the noise of the same figure.
    The suppressions' probe stays for every message: one index probe, about 0.2 µs."""
    suppressed = select(suppressions.c.reason).where(suppressions.c.email_key == email_key).scalar_subquery()
    opted_out = (
        select(literal(EVENT_UNSUBSCRIBED))
        .select_from(event_unsubscribes)
        .join(campaigns, campaigns.c.event_id == event_unsubscribes.c.event_id)
        .join(waves, waves.c.campaign_id == campaigns.c.id)
        .where(event_unsubscribes.c.email_key == email_key, waves.c.id == wave_id)
        .scalar_subquery()
    )
    sending_events = select(campaigns.c.event_id).where(campaigns.c.status == CampaignStatus.SENDING.value)
    any_opted_out = exists(
        select(event_unsubscribes.c.id).where(event_unsubscribes.c.event_id.in_(sending_events.scalar_subquery()))
    )
    return func.coalesce(suppressed, case((any_opted_out, opted_out)))


def _suppression_reason(contact_id: Any, wave_id: Any) -> Any:
    """Why the message of ``contact_id`` in ``wave_id`` (columns) may not be sent now, or NULL: its address is
    suppressed (the suppression's reason), or asked for no more mail about the wave's event
    (:data:`EVENT_UNSUBSCRIBED`). Primary-key look-ups of the contact, wave and campaign, and probes of the
    suppressions' key and the unique (event, address) index."""
    suppressed = (
        select(suppressions.c.reason)
        .join(contacts, contacts.c.email_key == suppressions.c.email_key)
        .where(contacts.c.id == contact_id)
        .scalar_subquery()
    )
    event_recipient = contacts.alias("event_recipient")
    opted_out = (
        select(literal(EVENT_UNSUBSCRIBED))
        .select_from(event_unsubscribes)
        .join(event_recipient, event_recipient.c.email_key == event_unsubscribes.c.email_key)
        .join(campaigns, campaigns.c.event_id == event_unsubscribes.c.event_id)
        .join(waves, waves.c.campaign_id == campaigns.c.id)
        .where(event_recipient.c.id == contact_id, waves.c.id == wave_id)
        .scalar_subquery()
    )
    return func.coalesce(suppressed, opted_out)


@cache
def _suppress_claimed(dialect_name: str) -> Any:
    """Of the messages just leased (``ids``), those whose address is suppressed now, or asked for no more mail
    about their campaign's event, become ``suppressed`` with the reason, their lease and attempt given back;
    returns their ids. Built once per backend: it runs with every claim."""
    claimed = json_rows(dialect_name, "ids", [("id", BigInteger())])
    reason = _suppression_reason(messages.c.contact_id, messages.c.wave_id)
    return (
        update(messages)
        .where(messages.c.id.in_(select(claimed.c.id)), reason.is_not(None))
        .values(
            status=MessageStatus.SUPPRESSED.value,
            last_error=reason,
            attempts=messages.c.attempts - 1,  # leased, never attempted
            lease_owner=None,
            lease_expires_at=None,
            updated_at=bindparam("now", type_=UTCDateTime()),
        )
        .returning(messages.c.id)
    )


@cache
def _sent_values(sent: Any) -> dict[str, Any]:
    """What a sent result writes to its message row, from ``sent``'s row (id, message_id, smtp_reply)."""
    return {
        "status": MessageStatus.SENT.value,
        "message_id": sent.c.message_id,
        "smtp_reply": sent.c.smtp_reply,
        "sent_at": bindparam("now", type_=UTCDateTime()),
        "last_error": None,
        "lease_owner": None,
        "lease_expires_at": None,
        "next_attempt_at": None,
        "updated_at": bindparam("now", type_=UTCDateTime()),
    }


def _mark_sent(dialect_name: str) -> Any:
    """Built once per backend: this runs on every group commit of the delivery worker."""
    if dialect_name == "postgresql":
        return _mark_sent_postgresql()
    sent = json_rows(dialect_name, "rows", [("id", BigInteger()), ("message_id", Text()), ("smtp_reply", Text())])
    return (
        update(messages)
        # Only rows still in this worker's hands: one whose lease it lost (another worker took it) keeps what the
        # other records. A message cancelled while on the wire (the cancel took it out of every worker's hands)
        # that got its 250 is sent all the same: the report says what recipients received.
        .where(
            messages.c.id == sent.c.id,
            or_(
                and_(
                    messages.c.status == MessageStatus.SENDING.value,
                    messages.c.lease_owner == bindparam("owner"),
                ),
                and_(messages.c.status == MessageStatus.CANCELLED.value, messages.c.lease_owner.is_(None)),
            ),
        )
        .values(_sent_values(sent))
        .returning(messages.c.id)
    )


def _mark_sent_postgresql() -> Any:
    """:func:`_mark_sent` on PostgreSQL: the results as three arrays (``ids``, ``message_ids``, ``replies``)
    read by ``unnest``, the rows found by primary key (``id = ANY(ids)``), the lease checked by a ``CASE``.

    Its plan must not depend on what the statistics say about ``status``: right after a launch they say every
    row is ``queued`` (or there are none), so a ``status = 'sending'`` condition the planner may use looks like
    a row or two, and it read the index range of every ``sending`` row and then each group's rows once per row
    of the group (a nested loop over the JSON rows: 24 ms for 200 results, 20,000 queued; on bench/scale.py's
    data 25 µs of server CPU a message for this statement). The ``CASE`` is no index condition, so the rows are
    found by primary key whatever the statistics say about ``status``. The ids the primary key is searched for
    are an array the statement builds from the parameter (an InitPlan), which the planner takes for a few
    ids: given the parameter itself, a constant of 200 ids, it hashed a scan of the whole table against them
    while the table had no statistics (2.6 ms for 200 at 20,000 messages, against 1.1 ms now). About 6 µs of
    server CPU a message, most of it the new row version and its two index entries (migration 0012)."""
    ids = bindparam("ids", type_=postgresql.ARRAY(BigInteger()))
    sent = (
        func.unnest(
            ids,
            bindparam("message_ids", type_=postgresql.ARRAY(Text())),
            bindparam("replies", type_=postgresql.ARRAY(Text())),
        )
        .table_valued("id", "message_id", "smtp_reply")
        .render_derived(name="r")
    )
    in_hand = case(
        (messages.c.status == MessageStatus.SENDING.value, messages.c.lease_owner == bindparam("owner")),
        (messages.c.status == MessageStatus.CANCELLED.value, messages.c.lease_owner.is_(None)),
        else_=false(),
    )
    return (
        update(messages)
        # The ids as an array the statement computes (an InitPlan), not the parameter itself: the planner then
        # guesses a few ids, as in the claim, and finds them by primary key. Given the 200 ids as a constant
        # of a table without statistics (a launch just made it), it scanned the whole table for every batch.
        .where(messages.c.id == any_(func.array(select(func.unnest(ids)).scalar_subquery())))
        .where(messages.c.id == sent.c.id, in_hand)
        .values(_sent_values(sent))
        .returning(messages.c.id)
    )


_MARK_UNSENT = (
    update(messages)
    # Only rows still in this worker's hands: one cancelled, or taken by another worker after this one lost its
    # lease, keeps its status.
    .where(
        messages.c.id == bindparam("b_id"),
        messages.c.status == MessageStatus.SENDING.value,
        messages.c.lease_owner == bindparam("b_owner"),
    )
    .values(
        status=bindparam("status"),
        next_attempt_at=bindparam("next_attempt_at"),
        smtp_reply=bindparam("smtp_reply"),
        last_error=bindparam("last_error"),
        lease_owner=None,
        lease_expires_at=None,
        updated_at=bindparam("b_now"),
    )
)


def mark_sent(
    conn: Connection, results: Sequence[tuple[int, str | None, str | None]], owner: str, now: datetime
) -> set[int]:
    """Record 250s: each result is (message row id, Message-ID, SMTP reply). Only rows still ``sending`` under
    ``owner``'s lease change (never a ``sent`` undone, never another worker's), and rows cancelled while on the
    wire; returns the ids of the others.

    The results travel as one JSON parameter: per-row parameters cost more than the update (bench/send.py).
    """
    if not results:
        return set()
    params: dict[str, Any]
    if conn.dialect.name == "postgresql":
        ids, message_ids, replies = (list(column) for column in zip(*results, strict=True))
        params = {"ids": ids, "message_ids": message_ids, "replies": replies, "now": now, "owner": owner}
    else:
        params = {"rows": json.dumps(results), "now": now, "owner": owner}
    marked = set(conn.scalars(_mark_sent(conn.dialect.name), params))
    return {result[0] for result in results} - marked


def mark_unsent(conn: Connection, results: Sequence[dict[str, Any]], owner: str, now: datetime) -> set[int]:
    """Record failures: each result has ``b_id``, ``status`` (deferred, bounced, failed, expired),
    ``next_attempt_at``, ``smtp_reply``, ``last_error``. Only rows still ``sending`` under ``owner``'s lease
    change; returns the ids of the others."""
    if not results:
        return set()
    params = [{**r, "b_now": now, "b_owner": owner} for r in results]
    marked: int = conn.execute(_MARK_UNSENT, params, execution_options={"preserve_rowcount": True}).rowcount
    if marked == len(results):
        return set()
    # Rare (a lease lost): which ones, told by what this statement wrote, its status and time with no lease.
    ids = [r["b_id"] for r in results]
    written = select(messages.c.id, messages.c.status).where(
        messages.c.id.in_(ids), messages.c.lease_owner.is_(None), messages.c.updated_at == now
    )
    done = {(row.id, row.status) for row in conn.execute(written)}
    return {r["b_id"] for r in results if (r["b_id"], r["status"]) not in done}


def uncount_attempts(conn: Connection, ids: Iterable[int]) -> None:
    """Take back the attempt a claim counted for messages it found again in the hands of the worker that had
    claimed them (their leases lapsed while they waited): the claim renewed their leases, no attempt was made."""
    conn.execute(update(messages).where(messages.c.id.in_(list(ids))).values(attempts=messages.c.attempts - 1))


def release(conn: Connection, ids: Iterable[int], owner: str, now: datetime) -> int:
    """Give back leases a stopping worker did not use (their attempt is not counted): a message goes back to what
    it was before its claim, ``queued`` if it was never attempted, ``deferred`` if it was (a retry claimed and not
    begun keeps its earlier failure, ``last_error`` included), due at once."""
    ids = list(ids)
    if not ids:
        return 0
    # ``attempts`` counts this claim's attempt until the decrement below: more than one, an earlier one was made.
    before = case((messages.c.attempts > 1, MessageStatus.DEFERRED.value), else_=MessageStatus.QUEUED.value)
    stmt = (
        update(messages)
        .where(
            messages.c.id.in_(ids), messages.c.lease_owner == owner, messages.c.status == MessageStatus.SENDING.value
        )
        .values(
            status=before,
            attempts=messages.c.attempts - 1,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )
    )
    return conn.execute(stmt).rowcount


def set_status_where(
    conn: Connection,
    campaign_id: int,
    from_statuses: Sequence[str],
    to_status: str,
    now: datetime,
    *,
    kinds: Sequence[WaveKind] | None = None,
) -> int:
    """Move the campaign's messages in ``from_statuses`` to ``to_status`` (retry, cancel), only those of waves of
    ``kinds`` when given; returns how many."""
    wave_ids = select(waves.c.id).where(waves.c.campaign_id == campaign_id)
    if kinds is not None:
        wave_ids = wave_ids.where(waves.c.kind.in_([k.value for k in kinds]))
    values: dict[str, Any] = {"status": to_status, "updated_at": now, "lease_owner": None, "lease_expires_at": None}
    if to_status == MessageStatus.QUEUED.value:
        values.update(next_attempt_at=None, scheduled_at=now)
    stmt = update(messages).where(messages.c.wave_id.in_(wave_ids), messages.c.status.in_(from_statuses)).values(values)
    return conn.execute(stmt).rowcount


def retry_deferred_now(conn: Connection, campaign_id: int, now: datetime) -> int:
    """Make the campaign's deferred messages due at ``now`` instead of at their backoff time; returns how many.

    They stay ``deferred`` with their attempts and last error; their due time (``coalesce(lease_expires_at,
    next_attempt_at, scheduled_at)``, which ``ix_messages_due`` orders) becomes ``now``: a deferred row holds no
    lease, so the next claim finds them due.
    """
    wave_ids = select(waves.c.id).where(waves.c.campaign_id == campaign_id).scalar_subquery()
    stmt = (
        update(messages)
        .where(messages.c.wave_id.in_(wave_ids), messages.c.status == MessageStatus.DEFERRED.value)
        .values(next_attempt_at=now, lease_owner=None, lease_expires_at=None, updated_at=now)
    )
    return conn.execute(stmt).rowcount
