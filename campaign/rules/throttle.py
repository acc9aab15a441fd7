"""Failed-attempt throttling: after ``limit`` failures of one key (a user name, a client address) within ``window``,
that key is refused until the oldest of those failures is ``window`` old.

Pure: the time is passed in, and the state is this object's (the login service keeps one per process, see
:mod:`campaign.services.sessions`). Refused attempts are not counted, so a blocked key is free again on time
however often it knocks. Memory is bounded: at most ``max_keys`` keys are remembered; past that, keys whose
failures have all left the window go first, then those that failed longest ago.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass
class FailureThrottle:
    """Failures per key over a sliding ``window``; see the module doc."""

    limit: int
    window: timedelta
    max_keys: int = 10_000
    _failures: OrderedDict[str, deque[datetime]] = field(default_factory=OrderedDict, init=False, repr=False)

    def blocked_for(self, key: str, now: datetime) -> timedelta | None:
        """How long ``key`` is still refused at ``now``, or None when it may try."""
        times = self._failures.get(key)
        if times is None or len(times) < self.limit:
            return None
        # The deque holds the last `limit` failures: the key is free once the oldest of them leaves the window.
        remaining = times[0] + self.window - now
        return remaining if remaining > timedelta(0) else None

    def fail(self, key: str, now: datetime) -> None:
        """Count a failure of ``key`` at ``now``."""
        times = self._failures.get(key)
        if times is None:
            times = self._failures[key] = deque(maxlen=self.limit)
        times.append(now)
        self._failures.move_to_end(key)
        if len(self._failures) > self.max_keys:
            self._forget(now)

    def forgive(self, key: str, at: datetime) -> None:
        """Take back the failure of ``key`` counted at ``at`` (an attempt counted before it was known to succeed)."""
        times = self._failures.get(key)
        if times is not None and at in times:
            times.remove(at)
            if not times:
                del self._failures[key]

    def clear(self, key: str) -> None:
        """Forget ``key``'s failures (a success)."""
        self._failures.pop(key, None)

    def _forget(self, now: datetime) -> None:
        # Keys are in order of their last failure: the first ones are the stalest.
        while self._failures:
            key, times = next(iter(self._failures.items()))
            if times[-1] + self.window > now and len(self._failures) <= self.max_keys:
                break
            del self._failures[key]
