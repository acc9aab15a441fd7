"""Recording the delivery worker's results: durably before a sender goes on, in groups to keep it cheap.

Contract:

* On SQLite :meth:`ResultRecorder.record` returns once its result is committed: a sender takes its next message
  only after its last one is recorded. Results are committed in groups: a commit waits up to 10 ms for about
  three quarters of the senders to report, so it costs one transaction per group, not per message.
* On PostgreSQL (the window ``delivery.group_commit_ms`` above 0) a commit gathers results for up to that many
  milliseconds, or until ``delivery.group_commit_max`` are waiting, so that it carries hundreds instead of about
  one per sender. :meth:`ResultRecorder.record` returns at once while fewer than ``group_commit_max`` results
  wait for a commit (the sender goes on with its next message), and once its result is committed otherwise.
  So at any moment at most ``group_commit_max`` results were handed over but not committed, and a worker that
  dies leaves at most ``smtp.concurrency + delivery.group_commit_max`` messages sent but not recorded (sent
  again by the next worker). A window of 0 keeps the SQLite behaviour.
* Jobs given back (:meth:`ResultRecorder.release`: claimed but not begun) are recorded with the next commit;
  nobody waits for them.
* Each result committed is counted in the run's summary and told to ``progress``, in the order committed.
* A failed commit breaks the recorder: each sender waiting for a commit, now or later, gets its error instead
  of waiting forever, and the run stops; the leases it held expire for the next worker. A commit cancelled
  while it waits for the write lock keeps its results for the last one.
* :func:`write_results` is what recording means in the outbox: the sent marked sent, the given back released,
  the others marked with their status, reply, error and next attempt, the bounced addresses suppressed. Only
  messages still in this worker's hands (``sending`` under its lease) are recorded: a worker that lost a lease
  (stopped past it, while another worker took the message) records nothing for that message. Such results are
  counted in the summary's ``lost`` (not as sent or failed) and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Connection

from campaign.models import MessageStatus, SuppressionReason
from campaign.rules.contact_fields import email_key
from campaign.services.dispatch_jobs import Job, Result
from campaign.services.dispatch_summary import DispatchSummary
from campaign.store import outbox
from campaign.store import suppressions as suppression_store
from campaign.store.async_write import in_write_patiently
from campaign.store.engine import Database

_GROUP_COMMIT_WAIT = 0.010  # seconds a result may wait for others to be committed with it (senders waiting)

Progress = Callable[[str], None]
"""Called with the final status of each message as it is recorded."""

BatchWriter = Callable[[Connection, list[Result]], set[int]]
"""Records a batch of results in the transaction it is given (:func:`write_results`, with the run's owner and
time); returns the ids of the messages whose result was not recorded because the lease was lost."""

log = logging.getLogger(__name__)


class ResultRecorder:
    """Commits the results of one run in groups; see the module doc."""

    def __init__(
        self,
        db: Database,
        write: BatchWriter,
        summary: DispatchSummary,
        progress: Progress | None,
        senders: int,
        *,
        window_ms: float = 0.0,
        group_max: int = 0,
        committed: Callable[[list[Result]], None] | None = None,
        give_up: Callable[[], bool] | None = None,
    ) -> None:
        """``write`` records each batch; ``senders`` is how many report results (it sizes a group). A
        ``window_ms`` above 0 (PostgreSQL: see the module doc) lets senders go on before their results are
        committed, at most ``group_max`` of them waiting. ``committed`` is told of each batch once its
        transaction has committed, before anything else of the event loop runs. ``give_up()`` says when to stop
        waiting for SQLite's write lock (the run aborted): otherwise a commit waits as long as another connection
        holds it."""
        self.give_up = give_up
        self.db = db
        self.write = write
        self.committed = committed
        self.summary = summary
        self.progress = progress
        self.broken: BaseException | None = None  # a failed commit: no result can be recorded any more
        self._pending: list[Result] = []
        self._flush_wanted = asyncio.Event()
        # Senders go on before their result is committed: the window, not the senders, then sizes a group.
        self._early = window_ms > 0 and group_max > 0
        self._window = window_ms / 1000 if self._early else _GROUP_COMMIT_WAIT
        # Results worth a commit without waiting longer (and, going on early, the most that may wait).
        self._group_size = group_max if self._early else max(1, senders * 3 // 4)
        self._group_full = asyncio.Event()

    def report(self, status: MessageStatus, count: int = 1) -> None:
        """Count ``count`` recorded results of ``status`` in the summary and tell ``progress`` of each."""
        self.summary.add(status.value, count)
        if self.progress:
            for _ in range(count):
                self.progress(status.value)

    def release(self, jobs: Sequence[Job]) -> None:
        """Give back claimed messages that were not begun: recorded (released) with the next commit."""
        self._pending.extend(Result(job, MessageStatus.QUEUED) for job in jobs)

    async def record(self, result: Result) -> None:
        """Hand the result to the flusher and wait until it is committed, or, going on early (PostgreSQL), only
        while the group is full (see the module doc)."""
        if self.broken is not None:
            raise self.broken
        self._pending.append(result)
        self._flush_wanted.set()
        if len(self._pending) >= self._group_size:
            self._group_full.set()
        elif self._early:
            return  # room in the group: committed within the window, while this sender goes on
        result.recorded = asyncio.get_running_loop().create_future()
        await result.recorded

    async def keep_flushing(self) -> None:
        """Commit the results as they come, in groups (a task of its own, until cancelled)."""
        while True:
            await self._flush_wanted.wait()
            # Group commit: give the other connections a moment to join this transaction. A commit costs far
            # more than a message (and, with several worker processes on SQLite, makes the others wait for the
            # write lock): waiting up to 10 ms while most connections report cuts commits several-fold. Measured
            # with bench/send.py: 2 ms and half the connections gave about 20% fewer messages a second. Going on
            # early (PostgreSQL), the window is longer and the senders keep sending meanwhile: a commit carries
            # hundreds (bench/scale.py).
            if len(self._pending) < self._group_size:
                self._group_full.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._window):
                        await self._group_full.wait()
            await self.flush()

    async def flush(self) -> None:
        """Commit the results handed over so far, now."""
        self._flush_wanted.clear()
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            write = in_write_patiently(self.db, lambda conn: self.write(conn, batch), "record results", self.give_up)
            lost = await write or set()
        except asyncio.CancelledError:
            self._pending[:0] = batch  # stopped while waiting for the write lock: the last flush records these
            raise
        except BaseException as exc:
            # Every sender waiting for a commit, now or later, gets the error instead of waiting forever; the
            # run stops, and the leases it held expire for the next worker.
            self.broken = exc
            for result in (*batch, *self._pending):
                if result.recorded is not None and not result.recorded.done():
                    result.recorded.set_exception(exc)
            self._pending = []
            raise
        if self.committed is not None:
            self.committed(batch)
        if lost:
            self.summary.lost += len(lost)
            log.warning(
                "%d result(s) not recorded: their messages are no longer this worker's (lease lost or cancelled)",
                len(lost),
            )
        for result in batch:
            if result.job.message.id not in lost:
                self.report(result.status)
            if result.recorded is not None and not result.recorded.done():
                result.recorded.set_result(None)


def write_results(conn: Connection, batch: list[Result], owner: str, now: datetime) -> set[int]:
    """Record ``batch`` in the outbox at ``now``, for the messages still in ``owner``'s hands (see the module doc);
    the messages given back are released from its lease. Returns the ids of the messages whose result was not
    recorded (those given back not counted: releasing one already taken back changes nothing)."""
    sent = [(r.job.message.id, r.message_id, r.reply) for r in batch if r.status is MessageStatus.SENT]
    released = [r.job.message.id for r in batch if r.status is MessageStatus.QUEUED]
    unsent = [
        {
            "b_id": r.job.message.id,
            "status": r.status.value,
            "next_attempt_at": r.next_attempt_at,
            "smtp_reply": r.reply,
            "last_error": r.error,
        }
        for r in batch
        if r.status not in (MessageStatus.SENT, MessageStatus.QUEUED)
    ]
    bounced = [r for r in batch if r.status is MessageStatus.BOUNCED]
    lost = outbox.mark_sent(conn, sent, owner, now) | outbox.mark_unsent(conn, unsent, owner, now)
    outbox.release(conn, released, owner, now)
    for r in bounced:
        if r.job.message.id in lost:
            continue  # only a bounce recorded here suppresses the address: a lost message is its new owner's
        suppression_store.add(
            conn, email_key(r.job.contact.email), SuppressionReason.BOUNCED, r.error, r.job.message.id, now
        )
    return lost
