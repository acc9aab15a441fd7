"""How a delivery run is told to stop: gracefully (``stop``) or at once (``abort``).

Contract: :class:`StopSignals` only reads two events someone else sets (``campaign serve``: ``stop`` on
SIGTERM, ``abort`` on a second one); either may be absent, and an abort is a stop too. What stopping means
is said where it is done: for the claim loop in :mod:`campaign.services.dispatch`, for a message in a
sender's hands in :mod:`campaign.services.dispatch_sender`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StopSignals:
    """The events that end a run; see the module doc."""

    stop: asyncio.Event | None = None
    abort: asyncio.Event | None = None

    def stopping(self) -> bool:
        """Whether the run is to stop, gracefully or at once."""
        return (self.stop is not None and self.stop.is_set()) or self.aborting()

    def aborting(self) -> bool:
        """Whether the run is to stop at once."""
        return self.abort is not None and self.abort.is_set()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the run is told to stop meanwhile."""
        if self.stop is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stop.wait()
