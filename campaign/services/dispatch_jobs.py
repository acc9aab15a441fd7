"""What the delivery worker's parts hand each other: a claimed message ready to send, its result, the clock.

Contract: a :class:`Job` is one message claimed under this worker's lease, with everything a sender needs to
send it (its contact, its wave and the wave's renderer) and the instant after which it is useless. A
:class:`Result` is what became of a job, for :mod:`campaign.services.dispatch_results` to record: ``queued``
means given back unsent (released, due again at once); any other status is this attempt's outcome. Every
part decides by one :data:`Clock`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from campaign.models import Contact, MessageStatus, Wave
from campaign.render.personalise import WaveRenderer
from campaign.store.outbox import ClaimedMessage

Clock = Callable[[], datetime]
"""What time it is (aware, UTC) for the worker's outbox decisions: which messages are due, leases, deadlines, the
times recorded, the Date header, the calendar's DTSTAMP and when a campaign finished. The real clock but for the
demo, which runs the waves on a compressed one."""

# A C-level partial, not a Python function: the worker asks once per message, and this costs no more than
# calling datetime.now directly.
utc_now: Clock = functools.partial(datetime.now, UTC)
"""The real clock: the default :data:`Clock`."""


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed message and what sending it takes; ``deadline``: after it, the message is useless."""

    message: ClaimedMessage
    contact: Contact
    wave: Wave
    campaign_id: int
    renderer: WaveRenderer
    deadline: datetime | None
    claimed_at: float = 0.0  # when it was claimed, on this process's monotonic clock (its lease's start)


@dataclass(slots=True)
class Result:
    """What became of a job. ``recorded`` is the future a sender awaits until the result is committed (None
    for a job given back, which nobody waits for)."""

    job: Job
    status: MessageStatus
    message_id: str | None = None
    reply: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    recorded: asyncio.Future[None] | None = None
