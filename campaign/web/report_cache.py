"""A short-lived cache of what the dashboard shows: counting a campaign of a million messages takes seconds, and a
page should answer in a fraction of one.

Contract:

* :meth:`ReportCache.get` gives ``compute()``'s value for a key as :class:`Cached`, with the time it was computed
  (the pages say "as of HH:MM:SS"). ``compute`` runs in a worker thread, never on the event loop.
* A value younger than :data:`FRESH_SECONDS` is given as it is. An older one, up to :data:`STALE_SECONDS`, is
  given too, at once, while one refresh runs in the background for the next request. Older than that, or none
  yet, the request waits for the computation.
* Requests for one key share one computation (a page reloaded by ten people counts once). A computation that
  fails is not kept: those waiting for it get its exception; the next request tries again.
* :meth:`ReportCache.warm` starts a computation in the background, unless a fresh value is kept or one is under
  way: for the page a person is likely to open next.
* :meth:`ReportCache.clear` forgets everything, computations under way included (their results are not kept):
  an action that changes the numbers (a retry) is seen by the next page.
* At most :data:`MAX_KEYS` keys are kept in memory, the least recently computed dropped first.
* With a :class:`Tier` (the database, :mod:`campaign.services.report_snapshots`), every value computed is also
  written there, and a key not in memory is looked for there before anything is computed: a value found is given
  at once, whatever its age (the page says how old), while a refresh runs, so that the first page after a restart
  is answered from the last count rather than after seconds of counting. Nothing the tier does wrong fails a
  request: a value it cannot give is computed, one it cannot keep is only logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar, cast

T = TypeVar("T")

FRESH_SECONDS = 10.0
STALE_SECONDS = 120.0
MAX_KEYS = 64

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Cached(Generic[T]):
    """A value, and when its computation began (what it shows is the data as of then)."""

    value: T
    at: datetime


class Tier(Protocol):
    """Where values outlive the process (see the module doc). Its methods block: the cache calls them in a
    worker thread."""

    def load(self, key: Hashable) -> Cached[Any] | None:
        """The value kept for ``key``, or None."""

    def save(self, key: Hashable, cached: Cached[Any]) -> None:
        """Keep ``cached`` for ``key``."""

    def clear(self) -> None:
        """Forget every value."""


class ReportCache:
    """See the module doc. One per app, used from its event loop only."""

    def __init__(
        self,
        fresh: float = FRESH_SECONDS,
        stale: float = STALE_SECONDS,
        size: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
        tier: Tier | None = None,
    ) -> None:
        self.fresh = fresh
        self.stale = stale
        self.size = size
        self.tier = tier
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Cached[Any]]] = OrderedDict()
        self._running: dict[Hashable, asyncio.Future[Cached[Any]]] = {}
        self._generation = 0

    async def get(self, key: Hashable, compute: Callable[[], T]) -> Cached[T]:
        """``compute()``'s value for ``key``, fresh enough (see the module doc)."""
        entry = self._entries.get(key)
        if entry is not None:
            age = self._clock() - entry[0]
            if age < self.stale:
                if age >= self.fresh:
                    self._start(key, compute)
                return cast(Cached[T], entry[1])
        else:
            generation = self._generation
            kept = await self._load(key)
            # Read before a clear() that ran meanwhile: what it kept may be what the clear was for.
            if kept is not None and generation == self._generation:
                # Whatever its age: the page says it, and the refresh started here replaces it.
                age = max((datetime.now(UTC) - kept.at).total_seconds(), 0.0)
                if key not in self._entries:
                    self._keep(key, self._clock() - age, kept)
                if age >= self.fresh:
                    self._start(key, compute)
                return cast(Cached[T], kept)
        # Shielded: a request that goes away does not cancel the computation others wait for.
        return cast(Cached[T], await asyncio.shield(self._start(key, compute)))

    def warm(self, key: Hashable, compute: Callable[[], Any]) -> None:
        """Start computing ``key``'s value in the background, unless a fresh one is kept (or one is under way)."""
        entry = self._entries.get(key)
        if entry is None or self._clock() - entry[0] >= self.fresh:
            self._start(key, compute)

    async def clear(self) -> None:
        """Forget every value and every computation under way, the tier's values too."""
        self._entries.clear()
        self._running.clear()
        self._generation += 1
        if self.tier is not None:
            await asyncio.to_thread(self.tier.clear)

    def _start(self, key: Hashable, compute: Callable[[], Any]) -> asyncio.Future[Cached[Any]]:
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(self._compute(key, compute))
            self._running[key] = running
            running.add_done_callback(lambda done: self._finished(key, done))
        return running

    def _finished(self, key: Hashable, done: asyncio.Future[Cached[Any]]) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        # A failed refresh nobody waited for still has its exception read (no "never retrieved" warning).
        if not done.cancelled():
            done.exception()

    async def _compute(self, key: Hashable, compute: Callable[[], Any]) -> Cached[Any]:
        generation = self._generation
        began, at = self._clock(), datetime.now(UTC)
        cached = Cached(await asyncio.to_thread(compute), at)
        if generation == self._generation:
            self._keep(key, began, cached)
            if self.tier is not None:
                try:
                    await asyncio.to_thread(self.tier.save, key, cached)
                except Exception:  # a count not kept costs a restart's first page, nothing more
                    log.warning("the report %r could not be kept in the database", key, exc_info=True)
        return cached

    def _keep(self, key: Hashable, began: float, cached: Cached[Any]) -> None:
        self._entries[key] = (began, cached)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    async def _load(self, key: Hashable) -> Cached[Any] | None:
        if self.tier is None:
            return None
        try:
            return await asyncio.to_thread(self.tier.load, key)
        except Exception:  # a kept count is a head start; counting again is always right
            log.warning("the kept report %r could not be read", key, exc_info=True)
            return None
