"""The failure breaker decides from the campaign's attempts as the outbox records them, every worker's together: one
worker whose relay refuses everything does not pause a campaign another worker is delivering.

Real parts: two delivery workers on one database (both backends), each with its own real aiosmtpd server on port 0,
one of them answering every message with a 451.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from campaign.models import CampaignStatus
from campaign.services.delivery_request import DeliveryRequest
from campaign.services.dispatch import send_due
from campaign.services.dispatch_summary import DispatchSummary
from campaign.services.lifecycle import launch
from campaign.store.engine import Database
from tests.test_delivery import (
    KEY,
    Sink,
    Sinks,
    base_settings,
    campaign_status,
    minutes,
    prepare,
    statuses,
    tuned,
)


@pytest.fixture
def sinks() -> Iterator[Sinks]:
    """Servers that offer PIPELINING (how a message is sent is not what these tests are about)."""
    started = Sinks([], pipelining=True)
    try:
        yield started
    finally:
        for controller in started.controllers:
            controller.stop()


def test_one_workers_failures_do_not_pause_a_campaign_the_others_deliver(
    db: Database,
    tmp_path: Path,
    sinks: Sinks,
) -> None:
    good, bad = sinks.start(), sinks.start()
    bad.handler.plan = lambda _rcpt, _attempt: "451 4.3.0 this relay is unwell"
    for sink in (good, bad):
        sink.handler.delay = 0.02  # both about as fast: the outbox sees as many failures as successes
    settings = tuned(
        base_settings(tmp_path),
        concurrency=2,
        batch_size=4,
        breaker_window=20,
        breaker_threshold=0.8,
        retry_initial_minutes=minutes(30),
    )
    emails = prepare(db, tmp_path, 120)
    launch(db, settings, KEY, "c")

    async def both() -> list[DispatchSummary]:
        def worker(sink: Sink, name: str) -> asyncio.Task[DispatchSummary]:
            request = DeliveryRequest(db, settings, KEY, sink.servers(), campaign_ref="c")
            return asyncio.create_task(send_due(request, owner=name))

        return list(await asyncio.gather(worker(good, "good"), worker(bad, "bad")))

    good_run, bad_run = asyncio.run(both())

    # The unwell worker's own breaker tripped (every one of its attempts failed, more than its window: it went on
    # after the outbox overruled it) ...
    assert bad_run.counts.get("deferred", 0) > 20, bad_run.counts
    assert bad.handler.delivered == []
    # ... but the campaign's recent attempts, both workers', were about half delivered: it sends on.
    assert good_run.paused == {}
    assert bad_run.paused == {}
    assert campaign_status(db, "c") is CampaignStatus.SENDING  # its deferred messages are retried later
    counts = statuses(db, "c")
    assert counts["sent"] == len(good.handler.delivered) >= 30
    assert counts["sent"] + counts["deferred"] == len(emails)


def test_workers_that_all_fail_pause_the_campaign_once(
    db: Database,
    tmp_path: Path,
    sinks: Sinks,
) -> None:
    first, second = sinks.start(), sinks.start()
    for sink in (first, second):
        sink.handler.plan = lambda _rcpt, _attempt: "451 4.3.0 this relay is unwell"
        sink.handler.delay = 0.01
    settings = tuned(
        base_settings(tmp_path),
        concurrency=2,
        batch_size=4,
        breaker_window=10,
        breaker_threshold=0.8,
        retry_initial_minutes=minutes(30),
    )
    prepare(db, tmp_path, 80)
    launch(db, settings, KEY, "c")

    async def both() -> list[DispatchSummary]:
        runs = [
            send_due(DeliveryRequest(db, settings, KEY, sink.servers(), campaign_ref="c"), owner=f"w{n}")
            for n, sink in enumerate((first, second))
        ]
        return list(await asyncio.gather(*runs))

    runs = asyncio.run(both())

    assert campaign_status(db, "c") is CampaignStatus.PAUSED
    # One worker's conditional pause took effect; the other found it paused already (or stopped on seeing it).
    assert sum(len(run.paused) for run in runs) == 1
    assert statuses(db, "c")["deferred"] < 80, "the breaker stopped both long before the queue was burnt"
