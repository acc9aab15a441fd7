"""``campaign worker``: a delivery worker process alone (no scheduler, no web), one of any number sharing one queue.

:class:`WorkerService` runs the delivery worker (:func:`campaign.services.dispatch.send_due` with ``wait``) until
SIGTERM or SIGINT: the first stops it gracefully (it claims nothing more, finishes and records the messages being
sent, gives back the rest), a second at once (what is on the wire is left to its lease), as ``campaign serve``
does. Its row in the ``workers`` registry (``campaign workers``) and its leases are kept by the dispatcher's
heartbeat (:mod:`campaign.services.heartbeat`). A log line says what was delivered every ``_REPORT_SECONDS`` (when
anything was) and at the end.

Many workers on many machines share the queue on PostgreSQL (claims skip rows another worker has locked); on SQLite
they share one file's write lock, so more than a couple on one machine gain nothing.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Sequence

from campaign.exceptions import CampaignError
from campaign.mail.smtp import SmtpServer
from campaign.models import MessageStatus
from campaign.services.context import AppContext
from campaign.services.delivery_request import DeliveryRequest
from campaign.services.dispatch import send_due, worker_name
from campaign.services.dispatch_summary import DispatchSummary
from scheduler.display import counted, fields, log

_REPORT_SECONDS = 30.0
RELEASED = "released"
"""In log lines: messages given back unsent (claimed, then a stop or a pause came first)."""


class StoppedAtOnce(CampaignError):
    """A second SIGTERM or Ctrl-C stopped the worker without finishing the messages being sent."""


class WorkerService:
    """One delivery worker process (see the module doc)."""

    def __init__(self, context: AppContext, *, name: str | None = None, campaign_ref: str | None = None) -> None:
        """``name``: its lease owner and registry name (default: host, pid and a random suffix);
        ``campaign_ref``: deliver only this campaign."""
        self.context = context
        self.name = name or worker_name()
        self.campaign_ref = campaign_ref
        self.delivered: Counter[str] = Counter()
        self._unreported: Counter[str] = Counter()
        self._stop = asyncio.Event()
        self._abort = asyncio.Event()

    def run(self, servers: Sequence[SmtpServer]) -> DispatchSummary:
        """Deliver until SIGTERM or SIGINT (see the module doc); returns what was done."""
        return asyncio.run(self._run(servers))

    def request_stop(self) -> None:
        """Stop gracefully; a second call stops at once."""
        if not self._stop.is_set():
            log.info(fields("stopping", worker=self.name))
            self._stop.set()
        elif not self._abort.is_set():
            log.warning(fields("stopping at once", worker=self.name))
            self._abort.set()

    async def _run(self, servers: Sequence[SmtpServer]) -> DispatchSummary:
        self._stop, self._abort = asyncio.Event(), asyncio.Event()  # of this loop
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        context, settings = self.context, self.context.settings
        db = context.database(check_schema=False)
        log.info(
            fields(
                "worker started",
                worker=self.name,
                database=db.describe(),
                concurrency=settings.smtp.concurrency,
                lease_seconds=settings.delivery.lease_seconds,
                heartbeat_seconds=settings.delivery.beat_seconds,
            )
        )
        reporter = asyncio.create_task(self._keep_reporting())
        try:
            request = DeliveryRequest(
                db, settings, context.signing_key(), servers, campaign_ref=self.campaign_ref, wait=True,
                progress=self._delivered,
            )  # fmt: skip
            summary = await send_due(request, stop=self._stop, abort=self._abort, owner=self.name)
        finally:
            reporter.cancel()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        self._report()
        log.info(fields("stopped", worker=self.name, **dict(sorted(self.delivered.items()))))
        if summary.lost:
            log.warning(fields("results not recorded: lease lost", worker=self.name, messages=summary.lost))
        if self._abort.is_set():
            n = summary.abandoned
            raise StoppedAtOnce(
                f"stopped at once on a second signal: {counted(n, 'message')} being sent left leased, to go out "
                f"again after {settings.delivery.lease_seconds:g} s (delivery.lease_seconds)"
                if n
                else "stopped at once on a second signal: nothing was being sent"
            )
        return summary

    def _delivered(self, status: str) -> None:
        name = RELEASED if status == MessageStatus.QUEUED.value else status
        self.delivered[name] += 1
        self._unreported[name] += 1

    async def _keep_reporting(self) -> None:
        while True:
            await asyncio.sleep(_REPORT_SECONDS)
            self._report()

    def _report(self) -> None:
        if self._unreported:
            log.info(fields("delivery", worker=self.name, **dict(sorted(self._unreported.items()))))
            self._unreported.clear()
