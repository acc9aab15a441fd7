"""The ``[delivery]`` rate limits, shared by every delivery worker through the database.

Contract:

* Each limit is a token bucket in the ``rate_limits`` table (:mod:`campaign.store.rate_limits`): ``second``
  (``rate_per_second``, bursts of a second's worth), ``hour`` (``rate_per_hour``, bursts of a minute's worth) and
  one ``domain:<recipient domain>`` per domain (``per_domain_per_second``). However many workers send, on however
  many machines, together they send no faster than each limit.
* A worker holds a local allowance of each bucket, taken from the database a batch at a time (a fifth of a
  second's worth, at least one token): one statement per batch, not per message. A message goes when every
  bucket it needs has a token in hand, and takes one from each.
* A worker whose take came back short (the bucket is drained: workers are sending at the limit) takes again no
  sooner than a batch's worth of refill later, so a fleet waiting on a bucket polls it a few times a second,
  never once per message.
* SQLite (one process at a time sends) takes the same path: the bucket rows cost one small write per batch,
  and a limit holds across restarts and across ``campaign send`` and ``campaign serve`` alike.
* A stop cuts a wait short (:meth:`RateLimits.wait_turn` then returns False: the message is not sent).
* Domain buckets not refilled for :func:`domain_idle_seconds` (an hour, or longer if a bucket takes longer to
  fill up) are deleted by :func:`forget_idle_domains`, which every process's heartbeat runs in its sweep (about
  once a lease; one statement, at most :data:`~campaign.store.rate_limits.FORGET_LIMIT` rows): the table holds
  the domains sent to lately, not every domain ever sent to. A bucket that idle is full, so forgetting it grants
  nothing its next take would not have.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection

from campaign.config import Settings
from campaign.exceptions import WriteLockBusyError
from campaign.services.dispatch_stop import StopSignals
from campaign.store import rate_limits as rate_store
from campaign.store.async_write import in_write_patiently
from campaign.store.engine import Database

BATCH_SECONDS = 0.2
"""A worker takes this many seconds' worth of a bucket's tokens at once (at least one token)."""
DOMAIN_IDLE_SECONDS = 3600.0
"""A domain bucket not refilled for this long (at least) is forgotten."""


def domain_idle_seconds(settings: Settings) -> float:
    """How long a domain bucket must have been idle to be forgotten: :data:`DOMAIN_IDLE_SECONDS`, or the time
    the bucket takes to fill up from empty if longer (a very low ``per_domain_per_second``), so that only a full
    bucket is ever forgotten."""
    rate = settings.delivery.per_domain_per_second
    return DOMAIN_IDLE_SECONDS if rate <= 0 else max(DOMAIN_IDLE_SECONDS, _domain_capacity(rate) / rate)


def forget_idle_domains(conn: Connection, settings: Settings, now: float) -> int:
    """Delete (a bounded number of) the domain buckets idle for :func:`domain_idle_seconds` at ``now`` (epoch
    seconds); returns how many. Runs in the caller's write transaction (the heartbeat's sweep)."""
    return rate_store.forget_idle_domains(conn, idle_before=now - domain_idle_seconds(settings))


def _domain_capacity(rate: float) -> float:
    """A domain bucket holds a second's worth, at least one token."""
    return max(1.0, rate)


@dataclass(slots=True)
class SharedBucket:
    """One worker's hand on one shared bucket: its ``allowance`` of tokens taken but not yet used."""

    name: str
    rate: float  # tokens a second
    capacity: float
    allowance: float = 0.0
    next_take_at: float = 0.0  # monotonic: no take before this once the bucket came back drained
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def batch(self) -> float:
        """How many tokens a take asks for: a fifth of a second's worth, at least one, at most the capacity."""
        return min(self.capacity, max(1.0, self.rate * BATCH_SECONDS))

    async def ready(self, db: Database, signals: StopSignals) -> bool:
        """Wait until a token is in hand (not taken from the allowance yet); False when the run stops first."""
        async with self.lock:  # one take at a time per worker: the senders waiting share its grant
            while self.allowance < 1:
                if signals.stopping():
                    return False
                wait = self.next_take_at - time.monotonic()
                if wait > 0:
                    await signals.sleep(wait)
                    continue
                want = self.batch - self.allowance
                try:
                    grant = await in_write_patiently(
                        db, self._take(want), "take from the sending rate's allowance", signals.stopping
                    )
                except WriteLockBusyError:
                    if signals.stopping():  # stopped while another process held the lock
                        return False
                    raise
                self.allowance += grant.granted
                if grant.granted < want:
                    # Drained: the fleet is at the limit. What is missing accrues in at least this long; asking
                    # sooner would only split the same tokens into more statements.
                    self.next_take_at = time.monotonic() + max(1.0 - self.allowance, want - grant.granted) / self.rate
        return True

    def _take(self, want: float) -> Callable[[Connection], rate_store.Grant]:
        """The take of ``want`` tokens, as the work of a write transaction (dated when it runs)."""
        return lambda conn: rate_store.take(
            conn, self.name, rate=self.rate, capacity=self.capacity, want=want, now=time.time()
        )


class RateLimits:
    """One worker's side of the shared rate limits; see the module doc."""

    def __init__(self, db: Database, settings: Settings, signals: StopSignals) -> None:
        """The limits of ``settings``' ``[delivery]``, taken from ``db``; ``signals`` cut a wait short."""
        self.db = db
        self.signals = signals
        d = settings.delivery
        per_second, per_hour = d.rate_per_second, d.rate_per_hour
        self.globals = [
            SharedBucket("second", per_second, max(1.0, per_second)) if per_second > 0 else None,
            SharedBucket("hour", per_hour / 3600, max(1.0, per_hour / 60)) if per_hour > 0 else None,
        ]
        self.per_domain = d.per_domain_per_second
        self.domains: dict[str, SharedBucket] = {}

    def buckets_for(self, address: str) -> list[SharedBucket]:
        """The buckets a message to ``address`` takes a token from."""
        buckets = [bucket for bucket in self.globals if bucket is not None]
        if self.per_domain > 0:
            domain = address.rpartition("@")[2].lower()
            bucket = self.domains.get(domain)
            if bucket is None:
                bucket = self.domains[domain] = SharedBucket(
                    rate_store.DOMAIN_PREFIX + domain, self.per_domain, _domain_capacity(self.per_domain)
                )
            buckets.append(bucket)
        return buckets

    async def wait_turn(self, address: str) -> bool:
        """Wait until a message to ``address`` may go, within every limit, and take its tokens; False (nothing
        taken) when the run stops first."""
        buckets = self.buckets_for(address)
        while True:
            for bucket in buckets:
                if not await bucket.ready(self.db, self.signals):
                    return False
            # Another sender may have used a token while this one waited on the next bucket: all at once, or again.
            if all(bucket.allowance >= 1 for bucket in buckets):
                for bucket in buckets:
                    bucket.allowance -= 1
                return True
