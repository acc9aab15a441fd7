"""The process launcher: several sender processes on one queue, for throughput past what one Python process can
render and send.

Contract: :func:`send_parallel` runs ``processes`` delivery workers (:func:`campaign.services.dispatch.send_due`)
on one :class:`~campaign.services.delivery_request.DeliveryRequest`, each with its own database connections
(opened on the settings' URL: connections must not cross a fork) and event loop, and merges their summaries. The
outbox's leases keep them from sending anything twice, exactly as for workers on different machines. How the
processes are started (fork or spawn) is :func:`campaign.services.processes.process_context`'s decision.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ProcessPoolExecutor

from campaign.config import Settings
from campaign.mail.smtp import SmtpServer
from campaign.services.delivery_request import DeliveryRequest
from campaign.services.dispatch import send_due
from campaign.services.dispatch_summary import DispatchSummary
from campaign.services.processes import process_context
from campaign.store.engine import Database


def _worker_process(
    settings: Settings, key: bytes, servers: list[SmtpServer], campaign_ref: str | None, wait: bool
) -> DispatchSummary:
    """One sender process: its own database connections and event loop (run by :func:`send_parallel`)."""
    db = Database(settings.database_url, busy_timeout_ms=settings.database.busy_timeout_ms)
    try:
        return asyncio.run(send_due(DeliveryRequest(db, settings, key, servers, campaign_ref=campaign_ref, wait=wait)))
    finally:
        db.dispose()


MAX_PROCESSES = 64
"""The most sender processes one command runs (each is a Python process with its own connections)."""


def send_parallel(request: DeliveryRequest, processes: int) -> DispatchSummary:
    """Run ``processes`` sender processes on ``request``'s queue; the claims keep them from sending anything twice.

    Each process opens its own database (``request.db`` stays the caller's) and reports no ``progress``: a
    callback does not cross processes.

    One Python process tops out at a few thousand messages a second (rendering and the SMTP client are
    CPU-bound), so throughput beyond that takes processes, here or on other machines. They are forked where
    :func:`~campaign.services.processes.process_context` allows (callers close their pooled connections first).
    """
    settings, key, servers = request.settings, request.key, list(request.servers)
    with ProcessPoolExecutor(max_workers=processes, mp_context=process_context()) as pool:
        futures = [
            pool.submit(_worker_process, settings, key, servers, request.campaign_ref, request.wait)
            for _ in range(processes)
        ]
        summaries = [f.result() for f in futures]
    merged = DispatchSummary()
    for summary in summaries:
        merged.merge(summary)
    return merged
