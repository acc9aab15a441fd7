"""Recording what recipients do with their messages: opens, clicks, calendar downloads, unsubscribes.

Contract of :class:`HitRecorder`:

* :meth:`~HitRecorder.record` never waits: it puts the hit in a bounded buffer and returns, so a slow or locked
  database never makes the pixel slow. When the buffer is full the hit is dropped and counted
  (:attr:`~HitRecorder.stats`, and a warning in the log): memory stays bounded whatever happens.
* The same hit (message, kind, link, client address and user agent) repeated within ``tracking.repeat_seconds``
  is recorded once: a mail client fetching the pixel twice, a double click.
* :meth:`~HitRecorder.run` writes the buffer at least every ``tracking.flush_seconds``, in one write transaction
  whatever the batch's size, so a crash loses at most that much (README says so). A hit on a message that no
  longer exists, or an open, click or calendar download of a campaign that does not track them (clicks, for the
  calendar link), is not recorded.
* Each hit is classified person or machine by :func:`campaign.rules.machines.classify` (with the message's
  delivery time), and clicks of one message on different links within a second are all a scanner's
  (:func:`~campaign.rules.machines.burst_reason`). Machine hits are kept, flagged with the reason.
* A person's click on the registration link records a registration (source ``link``) for the event.
* The IP is kept as ``tracking.ip`` says (:func:`campaign.rules.ip_privacy.stored_ip`), the user agent as
  ``tracking.user_agent`` does, both after classification.

Measured (``bench/tracking.py``: one server process, each request a different message's hit): opens are written
in one statement a batch, with no read first (:func:`campaign.store.tracking.insert_opens`), other hits after one
read of their messages; writing costs the server about 15 µs of CPU an open of the ~45 its request costs all
told (10 µs when timed alone: in the server the writer thread shares the core with the event loop), and a click
with its registration about 27 µs when timed alone, a batch of 5,000 (33 µs before the other hits and the
registrations, like the opens, travelled as one JSON parameter a statement instead of a row of bound parameters
each). On SQLite the store now hands the driver's ``executemany`` ready rows (bound in C) instead of that JSON
text, reads the batch's deliveries straight from the driver's cursor (the send time parsed with its offset), and
an instant already in UTC is written without conversion; here the client addresses of a batch are stored once
each and a click's burst record is a plain (not frozen) object. Timed in-process alone (batches of 5,000 on a
database of a million messages, this machine class, interleaved runs): a click with its registration
26.5 → 18.3 µs, an open 15.3 → 11.9 µs.

Then, a click's row is a list made once in the store's column order, not a dictionary the store made a tuple of
again; its client (method, user agent, headers, IP) is classified, and its IP and user agent put in their stored
form, once a batch for each client, as an open's, the delivery time's rule applied to each click alone
(:func:`~campaign.rules.machines.delivery_reason`); the burst memory is pruned once a batch, and a message's
first click in it costs one lookup; a registration is a tuple, not a frozen dataclass. And the batch's
messages are read in its write transaction, so what it writes refers to rows that exist until it commits: it is
written without foreign-key checks (:meth:`campaign.store.engine.Database.write`, four index lookups a click with
its registration). On a database of 400,000 messages, batches of 5,000, three runs of each build interleaved on a
slower machine than the figures above: a click with its registration 29.7 → 18.1 µs (medians). Since, a
registration by link is a plain tuple with its click's instant as its row had it stored, converted once for both
(:func:`campaign.store.registrations.record_link_clicks`), and a click's client key leaves out its empty headers:
9.2 → 8.5 µs a click with its registration (the writer alone, the collector frozen as in the server, batches of
5,000 on a copy of one 300,000-message database, six interleaved pairs).

The recent clicks kept for bursts (the last two seconds': ~56,000 messages at 28,000 clicks a second) are tuples
of atoms, which the garbage collector stops tracking, with the batch's rows found by position, not an object and
a list holding its row each: in a server taking clicks its full collections took 22 ms each (p50; 18 in a 10 s
run), the click's p99 of 24-33 ms; now ~1.3 ms, and a p99 of 9.4 ms (``bench/tracking.py``, 10 s runs; with the
collector's and GIL's pace of :mod:`campaign.web.server`, 7.2 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from campaign.config import TrackingSettings
from campaign.exceptions import ValidationError
from campaign.models import TrackingKind
from campaign.rules.ip_privacy import IpStorage, stored_ip
from campaign.rules.machines import BURST_SECONDS, burst_reason, classify, delivery_reason
from campaign.store import recipients as recipient_store
from campaign.store import registrations as registration_store
from campaign.store import tracking as tracking_store
from campaign.store.engine import Database
from campaign.store.recipients import Delivery

log = logging.getLogger(__name__)

# The link name rendering gives the event's registration link (render.personalise): a person's click on it is
# a registration.
REGISTER_LINK = "register"
# The request headers classification reads (lower case); the others are not kept.
CLASSIFYING_HEADERS = ("purpose", "sec-purpose", "x-purpose", "x-moz")
# Hits remembered for spotting repeats and bursts (the most recent; older ones are forgotten first).
_REMEMBERED = 100_000
# Hits written per transaction at most.
_BATCH = 5_000
# Where a row of tracking_events (campaign.store.tracking.EVENT_COLUMNS) holds whether and why a machine made it.
_MACHINE = tracking_store.EVENT_COLUMNS.index("is_machine")
_REASON = tracking_store.EVENT_COLUMNS.index("machine_reason")
# How far back a click can be part of a burst with the next one (with room to spare).
_BURST_WINDOW = timedelta(seconds=BURST_SECONDS * 2)


NO_HEADERS: Mapping[str, str] = MappingProxyType({})
"""The classifying headers of a hit whose request has none (most): one shared empty mapping, not a dictionary a
hit, which the garbage collector would track while the hit waits to be written."""


# Not frozen: one is made per request, and a frozen one costs 0.8 µs more to make (1.4 against 0.6). Nothing
# changes a hit once made.
@dataclass(slots=True)
class Hit:
    """One request on a tracking endpoint with a valid token."""

    kind: TrackingKind
    message_id: int
    occurred_at: datetime
    method: str = "GET"
    link_index: int | None = None
    link_name: str | None = None
    user_agent: str | None = None
    ip: str | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: NO_HEADERS)


@dataclass
class RecorderStats:
    """What the recorder has done since it started."""

    recorded: int = 0
    repeats: int = 0
    dropped: int = 0
    ignored: int = 0
    machine: int = 0
    registrations: int = 0
    failed_batches: int = 0


@dataclass
class HitRecorder:
    """Buffers hits and writes them in batches; see the module doc."""

    db: Database
    settings: TrackingSettings
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    stats: RecorderStats = field(default_factory=RecorderStats)
    _buffer: list[Hit] = field(default_factory=list, repr=False)
    _seen: OrderedDict[tuple[Any, ...], datetime] = field(default_factory=OrderedDict, repr=False)
    # Recent clicks per message, for bursts within a batch and across batches.
    _clicks: OrderedDict[int, tuple[_Click, ...]] = field(default_factory=OrderedDict, repr=False)
    _batches: int = field(default=0, repr=False)
    _wake: asyncio.Event | None = field(default=None, repr=False)

    def record(self, hit: Hit) -> bool:
        """Take a hit to be written; False when it is a repeat or the buffer is full (never waits)."""
        # Of strings and numbers only (the kind's value, not the enum member): the garbage collector stops
        # tracking such a tuple, so the many remembered keys cost its collections nothing. The value read as
        # _value_, the attribute behind Enum's value property (0.08 µs against 0.25: this runs every request).
        key = (hit.message_id, hit.kind._value_, hit.link_index, hit.ip, hit.user_agent)
        seen, buffer = self._seen, self._buffer
        last = seen.get(key)
        if last is not None and hit.occurred_at - last < timedelta(seconds=self.settings.repeat_seconds):
            self.stats.repeats += 1
            return False
        if len(buffer) >= self.settings.queue_size:
            self.stats.dropped += 1
            if self.stats.dropped in (1, 10, 100, 1000) or self.stats.dropped % 10_000 == 0:
                log.warning("tracking: %d hits dropped so far: the database does not keep up", self.stats.dropped)
            return False
        seen[key] = hit.occurred_at
        if last is not None:  # a new key is at the end already
            seen.move_to_end(key)
        if len(seen) > _REMEMBERED:
            seen.popitem(last=False)
        buffer.append(hit)
        if len(buffer) >= _BATCH and self._wake is not None:
            self._wake.set()
        return True

    async def run(self) -> None:
        """Write the buffer every ``flush_seconds`` (sooner when a batch is full) until cancelled; a cancel
        writes what is left first, and logs what was recorded since the start (one line)."""
        self._wake = asyncio.Event()
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.flush_seconds)
                self._wake.clear()
                await self.flush()
        finally:
            await asyncio.shield(self.flush())
            stats = self.stats
            log.info(
                "tracking: %d hits recorded (%d machines'), %d repeats, %d ignored, %d dropped, %d not written",
                stats.recorded,
                stats.machine,
                stats.repeats,
                stats.ignored,
                stats.dropped,
                len(self._buffer),
            )

    async def flush(self) -> int:
        """Write every buffered hit now (in a thread: the event loop keeps answering); returns how many were
        recorded."""
        written = 0
        while self._buffer:
            batch, self._buffer = self._buffer[:_BATCH], self._buffer[_BATCH:]
            try:
                written += await asyncio.to_thread(self.write, batch)
            except Exception:  # the database is down or locked: keep the hits for the next flush, within bounds
                self.stats.failed_batches += 1
                log.exception("tracking: %d hits could not be written; trying again", len(batch))
                room = max(0, self.settings.queue_size - len(self._buffer))
                self.stats.dropped += max(0, len(batch) - room)
                self._buffer[:0] = batch[:room]
                break
        return written

    def write(self, batch: list[Hit]) -> int:
        """Classify and write one batch in one write transaction: its opens in one statement that keeps those of
        messages that exist and track opens (no read first), the other hits after one read of their messages.
        Returns how many were recorded."""
        opens: list[Hit] = []
        others: list[Hit] = []
        for hit in batch:
            (opens if hit.kind is TrackingKind.OPEN else others).append(hit)
        storage = IpStorage(self.settings.ip)
        self._batches += 1
        open_rows = self._open_rows(opens, storage)
        # Everything written refers to rows found in this transaction: opens are inserted from a select of their
        # message, the other hits and registrations after a read of theirs. So no foreign key is checked again.
        with self.db.write(foreign_keys=False) as conn:
            facts = recipient_store.deliveries(conn, {h.message_id for h in others}) if others else {}
            rows, registering, earlier = self._other_rows(others, facts, storage)
            opened, machine_opens = tracking_store.insert_opens(conn, open_rows)
            tracking_store.insert_event_rows(conn, rows)  # each row's instant is in stored form from here on
            withdrawn = 0
            for hit, burst in earlier:
                since = hit.occurred_at - timedelta(seconds=BURST_SECONDS)
                if tracking_store.flag_clicks(conn, hit.message_id, hit.link_index, since, hit.occurred_at, burst):
                    # A Register click among those flagged registered its contact when its own batch was written.
                    withdrawn += registration_store.withdraw_machine_clicks(
                        conn, hit.message_id, since, hit.occurred_at
                    )
            clicks = [(known.event_id, known.contact_id, message_id, row[-1]) for known, message_id, row in registering]
            added = registration_store.record_link_clicks(conn, clicks, self.clock())
        self.stats.ignored += len(opens) - opened
        self.stats.recorded += opened + len(rows)
        self.stats.machine += machine_opens + sum(1 for row in rows if row[_MACHINE])
        self.stats.registrations += added - withdrawn
        return opened + len(rows)

    def _open_rows(self, opens: list[Hit], storage: IpStorage) -> list[list[Any]]:
        """The rows of ``opens``, each a list in :data:`~campaign.store.tracking.OPEN_COLUMNS`' order. An open's
        classification and stored IP depend on its client only (method, user agent, headers, IP; not on the
        delivery time, as a click's does), and most opens of a batch come from few clients (each mail provider's
        image proxy): each client's are worked out once a batch (1.5 µs an open)."""
        rows = []
        clients: dict[tuple[Any, ...], tuple[bool, str | None, str | None, str | None]] = {}
        for hit in opens:
            key = (hit.method, hit.user_agent, hit.ip, *hit.headers.items())
            client = clients.get(key)
            if client is None:
                reason, ip, user_agent = self._client(hit, storage)
                client = clients[key] = (reason is not None, reason, ip, user_agent)
            rows.append([*client, hit.occurred_at, hit.message_id])
        return rows

    def _other_rows(
        self, others: list[Hit], facts: Mapping[int, Delivery], storage: IpStorage
    ) -> tuple[list[list[Any]], list[tuple[Delivery, int, list[Any]]], list[tuple[Hit, str]]]:
        """The ``tracking_events`` rows of the hits but opens whose messages exist (clicks of campaigns that track
        them), each a list in :data:`~campaign.store.tracking.EVENT_COLUMNS`' order, classified; the registrations
        that people's clicks on the registration link make; and the clicks of bursts whose other clicks an
        earlier batch wrote (to be flagged in the table).

        As an open's, a hit's classification by its client (method, user agent, headers, IP), its stored IP and
        user agent are worked out once a batch for each client (a batch's hits come from few), and then the
        delivery time's rule (:func:`~campaign.rules.machines.delivery_reason`) and bursts are applied to each
        hit alone (the module doc has the measurement)."""
        rows: list[list[Any]] = []
        kept: list[tuple[Hit, Delivery]] = []
        earlier: list[tuple[Hit, str]] = []
        clients: dict[tuple[Any, ...], tuple[str | None, str | None, str | None]] = {}
        click, calendar = TrackingKind.CLICK, TrackingKind.CALENDAR
        clicks, batch_number = self._clicks, self._batches
        if others:
            self._forget_clicks(others[0].occurred_at)
        for hit in others:
            known = facts.get(hit.message_id)
            kind = hit.kind
            # A calendar download is a link of the message followed: a campaign that tracks no clicks keeps none.
            if known is None or ((kind is click or kind is calendar) and not known.track_clicks):
                self.stats.ignored += 1
                continue
            # Most hits carry no classifying header: their key is made without the empty mapping's items.
            headers = hit.headers
            if headers is NO_HEADERS:
                key: tuple[Any, ...] = (kind, hit.method, hit.user_agent, hit.ip)
            else:
                key = (kind, hit.method, hit.user_agent, hit.ip, *headers.items())
            client = clients.get(key)
            if client is None:
                client = clients[key] = self._client(hit, storage)
            reason = client[0] or delivery_reason(known.sent_at, hit.occurred_at)
            row = [
                hit.message_id,
                kind._value_,
                hit.link_index,
                reason is not None,
                reason,
                client[1],
                client[2],
                hit.occurred_at,
            ]
            if hit.kind is click:
                # Most clicks are their message's first in the window: remembered, and nothing more to do.
                recent = clicks.pop(hit.message_id, None)
                if recent is None:
                    clicks[hit.message_id] = ((hit.occurred_at, hit.link_index, batch_number, len(rows)),)
                    if len(clicks) > _REMEMBERED:
                        clicks.popitem(last=False)
                else:
                    burst, across_batches = self._burst(hit, recent, rows, len(rows))
                    if burst is not None and not row[_MACHINE]:
                        row[_MACHINE], row[_REASON] = True, burst
                    if burst is not None and across_batches:
                        earlier.append((hit, burst))
            kept.append((hit, known))
            rows.append(row)
        # A person's click on the registration link registers them (a scanner's, even found out later, does not):
        # its row goes along, whose instant the store converts once for both (see write).
        registering = [
            (known, hit.message_id, row)
            for (hit, known), row in zip(kept, rows, strict=True)
            if hit.kind is click and hit.link_name == REGISTER_LINK and not row[_MACHINE]
        ]
        return rows, registering, earlier

    def _client(self, hit: Hit, storage: IpStorage) -> tuple[str | None, str | None, str | None]:
        """What ``hit``'s client alone says: why it is a machine's, or None (:func:`campaign.rules.machines.classify`
        without the delivery time); the IP as stored; the user agent as stored (``tracking.user_agent``)."""
        keep_agent = self.settings.user_agent == "full"
        reason = classify(
            hit.kind,
            method=hit.method,
            user_agent=hit.user_agent,
            headers=hit.headers,
            ip=hit.ip,
            delivered_at=None,
            now=hit.occurred_at,
        )
        return reason, stored_ip(hit.ip, storage), hit.user_agent[:1000] if hit.user_agent and keep_agent else None

    def _forget_clicks(self, now: datetime) -> None:
        """Forget the messages whose last click is further back than a burst can reach from ``now`` (the batch's
        first hit): messages are kept in the order of their last click, so only the last seconds' are held. Once
        a batch, not a click: :meth:`_burst` looks at a message's own clicks within the window only."""
        clicks = self._clicks
        while clicks:
            if now - next(iter(clicks.values()))[-1][0] <= _BURST_WINDOW:
                break
            clicks.popitem(last=False)

    def _burst(
        self, hit: Hit, recent: tuple[_Click, ...], rows: list[list[Any]], position: int
    ) -> tuple[str | None, bool]:
        """Why this click is part of a scanner's burst (another link of its message within a second), or None;
        and whether a click of the burst was written by an earlier batch. ``recent``: the message's clicks
        remembered, taken out of the memory (this puts them back, with this one, at the end: its last click is
        the latest); ``rows``: the rows of this batch so far, this click's to be at ``position``; the burst's
        other clicks among them are marked here."""
        at = hit.occurred_at
        recent = tuple(c for c in recent if at - c[0] <= _BURST_WINDOW)
        reason = None
        across_batches = False
        for other_at, other_link, other_batch, other_position in recent:
            found = burst_reason(other_at, at, other_link, hit.link_index)
            if found is None:
                continue
            reason = found
            if other_batch != self._batches:
                across_batches = True
            elif not (other := rows[other_position])[_MACHINE]:
                other[_MACHINE], other[_REASON] = True, found
        self._clicks[hit.message_id] = (*recent, (at, hit.link_index, self._batches, position))
        return reason, across_batches


# A recent click of a message: when, on which link, the number of its batch and its position among that batch's
# rows. A tuple of atoms, not an object holding its row: the garbage collector stops tracking such a tuple, and
# the last two seconds' clicks (~56,000 at 28,000 clicks a second) were most of what its full collections walked
# in a server taking clicks (22 ms each, the click's p99; bench/tracking.py).
_Click = tuple[datetime, int | None, int, int]


def purge_tracking(
    db: Database, settings: TrackingSettings, now: datetime, days: int | None = None, *, chunk: int = 10_000
) -> int:
    """Delete tracking events older than ``days`` (default ``tracking.retention_days``; 0 keeps everything);
    returns how many. Registrations, suppressions and opt-outs are kept: they are what people asked for, not
    what they did; so are the unsubscribe events, without their IP address and user agent. Reports then count
    what the events left say (``message_activity`` follows the deletion: the database's triggers, migration
    0013).

    The events that exist when it starts are walked in ranges of ``chunk`` ids, each range its own transaction
    (:func:`campaign.store.tracking.purge_range`): a purge of millions never holds SQLite's write lock for more
    than one range, so the tracking recorder and the delivery worker write between them, and on PostgreSQL no
    range reads again what an earlier one deleted."""
    days = settings.retention_days if days is None else days
    if days < 0:
        raise ValidationError(f"--days must be 0 or more, not {days}")
    if days == 0:
        return 0
    before, deleted = now - timedelta(days=days), 0
    with db.read() as conn:
        span = tracking_store.event_id_range(conn)
    if span is None:
        return 0
    first, last = span
    for start in range(first, last + 1, chunk):
        with db.write() as conn:
            deleted += tracking_store.purge_range(conn, before, start, min(start + chunk - 1, last))
    return deleted
