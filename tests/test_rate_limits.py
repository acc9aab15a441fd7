"""The ``[delivery]`` rate limits, shared by every worker through the database (``rate_limits``).

Real parts: the bucket's one statement on both backends, and real ``campaign worker`` processes on a real PostgreSQL
database (skipped only when no server is reachable, never with ``CAMPAIGN_TEST_REQUIRE_POSTGRES=1``) sending to a
real aiosmtpd server on port 0 that notes when each message arrived.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from campaign.mail.capture import _FreePortController
from campaign.services.campaigns import create_campaign
from campaign.services.contact_import import import_contacts
from campaign.services.dispatch_stop import StopSignals
from campaign.services.heartbeat import Heartbeat
from campaign.services.lifecycle import launch
from campaign.services.rate_limits import BATCH_SECONDS, RateLimits, domain_idle_seconds, forget_idle_domains
from campaign.store import rate_limits as rate_store
from campaign.store import workers as worker_store
from campaign.store.engine import Database
from campaign.store.tables import rate_limits
from tests.test_delivery import ACCEPTED, KEY, FaultySmtp, Sink, add_future_event, base_settings, statuses, tuned
from tests.test_workers import pg_db, processes, scale_config, settings_for, wait_for  # noqa: F401 (pg_db: a fixture)

# ---------------------------------------------------------------------------------------------------------
# The bucket: one statement grants what is available
# ---------------------------------------------------------------------------------------------------------


def test_a_take_grants_what_the_bucket_holds_refilled_for_the_time_elapsed(db: Database) -> None:
    def take(want: float, now: float) -> rate_store.Grant:
        with db.write() as conn:
            return rate_store.take(conn, "second", rate=10, capacity=10, want=want, now=now)

    assert take(4, 100.0) == rate_store.Grant(4.0, 6.0)  # a new bucket starts full
    assert take(8, 100.0) == rate_store.Grant(6.0, 0.0)  # what is left, not what was asked
    assert take(8, 100.25) == rate_store.Grant(2.5, 0.0)  # a quarter of a second at 10 a second
    assert take(8, 99.0) == rate_store.Grant(0.0, 0.0)  # a clock behind refills nothing (and nothing twice)
    assert take(8, 100.35).granted == pytest.approx(1.0)  # refilled from 100.25, not from 99
    assert take(3, 200.0) == rate_store.Grant(3.0, 7.0)  # idle: refilled up to the capacity only


def test_workers_in_one_process_share_the_bucket_at_the_limit(db: Database, tmp_path: Path) -> None:
    # Two workers' limiters on one database: together 20 a second, whatever each would do alone.
    settings = tuned(base_settings(tmp_path), rate_per_second=20.0)
    limiters = [RateLimits(db, settings, StopSignals()) for _ in range(2)]
    sent: list[float] = []

    async def sender(limits: RateLimits) -> None:
        while len(sent) < 50:
            assert await limits.wait_turn("someone@example.org")
            sent.append(time.monotonic())

    async def run() -> None:
        await asyncio.gather(*(sender(limits) for limits in limiters for _ in range(3)))

    asyncio.run(run())
    steady = sent[22:50]  # after the first second's burst (the bucket starts full)
    rate = (len(steady) - 1) / (steady[-1] - steady[0])
    # Never above the limit (5%: the clock's and the loop's slack); below it only by senders woken late on a
    # loaded machine (the suite runs in several processes on two cores: 18.8 seen), never by a bucket that stalls.
    assert 18.0 <= rate <= 21.0, rate


def test_a_stop_cuts_a_wait_for_the_limit_short(db: Database, tmp_path: Path) -> None:
    settings = tuned(base_settings(tmp_path), rate_per_second=0.2)

    async def run() -> tuple[bool, bool, float]:
        stop = asyncio.Event()
        limits = RateLimits(db, settings, StopSignals(stop))
        first = await limits.wait_turn("a@example.org")  # the bucket's one token
        asyncio.get_running_loop().call_later(0.3, stop.set)
        started = time.monotonic()
        second = await limits.wait_turn("a@example.org")  # 5 s away, unless stopped
        return first, second, time.monotonic() - started

    first, second, waited = asyncio.run(run())
    assert first
    assert not second
    assert waited < 1.5, waited


# ---------------------------------------------------------------------------------------------------------
# Idle domain buckets are forgotten, a bounded number at a time, by the heartbeat's sweep
# ---------------------------------------------------------------------------------------------------------


def bucket_names(db: Database) -> set[str]:
    with db.read() as conn:
        return set(conn.scalars(select(rate_limits.c.name)))


def test_idle_domain_buckets_are_forgotten_a_bounded_number_at_a_time_the_global_ones_never(db: Database) -> None:
    def take(name: str, now: float) -> rate_store.Grant:
        with db.write() as conn:
            return rate_store.take(conn, name, rate=2, capacity=2, want=1, now=now)

    for name in ("second", "hour", *(f"domain:old{n}.example" for n in range(5))):
        take(name, 1000.0)
    take("domain:recent.example", 1000.0)
    take("domain:recent.example", 5000.0)  # taken again lately: refilled then
    with db.write() as conn:
        assert rate_store.forget_idle_domains(conn, idle_before=4000.0, limit=3) == 3
    assert len(bucket_names(db)) == 5
    with db.write() as conn:
        assert rate_store.forget_idle_domains(conn, idle_before=4000.0, limit=3) == 2
        assert rate_store.forget_idle_domains(conn, idle_before=4000.0, limit=3) == 0
    assert bucket_names(db) == {"second", "hour", "domain:recent.example"}
    # A forgotten bucket comes back full at its next take, as it would have been after that long idle.
    assert take("domain:old0.example", 5001.0) == rate_store.Grant(1.0, 1.0)


def test_the_heartbeat_sweep_forgets_domain_buckets_idle_an_hour_or_as_long_as_one_takes_to_fill(
    db: Database, tmp_path: Path
) -> None:
    now = time.time()
    settings = tuned(base_settings(tmp_path), per_domain_per_second=5.0)
    ages = {"domain:idle.example": 3700.0, "domain:lately.example": 3500.0, "second": 90_000.0}
    with db.write() as conn:
        for name, age in ages.items():
            rate_store.take(conn, name, rate=5, capacity=5, want=1, now=now - age)
    heart = Heartbeat(db, settings, name="w", role=worker_store.WORKER, state=worker_store.ALIVE)
    heart.start()
    asyncio.run(heart.beat())  # the first beat sweeps
    assert bucket_names(db) == {"domain:lately.example", "second"}
    # A limit so low that a bucket takes longer than the hour to fill: only buckets idle that long are forgotten.
    slow = tuned(base_settings(tmp_path), per_domain_per_second=1 / 7200)
    assert domain_idle_seconds(slow) == 7200.0
    with db.write() as conn:
        assert forget_idle_domains(conn, slow, now + 3600) == 0  # idle 7100 s: not yet full at that rate
        assert forget_idle_domains(conn, slow, now + 3800) == 1
    assert bucket_names(db) == {"second"}


# ---------------------------------------------------------------------------------------------------------
# Four `campaign worker` processes on PostgreSQL: the rate the SMTP server sees
# ---------------------------------------------------------------------------------------------------------


class TimedSmtp(FaultySmtp):
    """The faulty server, noting when each message was accepted (monotonic) and for whom."""

    def __init__(self) -> None:
        super().__init__(pipelining=True)
        self.arrivals: list[tuple[float, str]] = []
        self.arrivals_lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply: str = await super().handle_DATA(server, session, envelope)
        if reply == ACCEPTED:
            with self.arrivals_lock:
                self.arrivals.append((time.monotonic(), envelope.rcpt_tos[0].lower()))
        return reply


@pytest.fixture
def timed_smtp() -> Iterator[Sink]:
    handler = TimedSmtp()
    controller = _FreePortController(handler, hostname="127.0.0.1", port=0, server_hostname="timed")
    controller.start()
    try:
        yield Sink(handler, int(controller.port))
    finally:
        controller.stop()


def queue_campaign(db: Database, tmp_path: Path, domains: list[str], count: int) -> list[str]:
    """``count`` contacts spread over ``domains`` in turn, an event and a draft campaign ``c``; the addresses."""
    emails = [f"guest{i:04d}@{domains[i % len(domains)]}" for i in range(count)]
    path = tmp_path / "contacts.csv"
    path.write_text("email,name\n" + "".join(f"{e},Guest {i}\n" for i, e in enumerate(emails)), encoding="utf-8")
    import_contacts(db, path, "guests")
    add_future_event(db, "event-c")
    create_campaign(db, event_ref="event-c", list_name="guests", name="c")
    return emails


def steady_rate(times: list[float], skip: int) -> float:
    """Messages a second from the ``skip``-th arrival on (past the full bucket's first burst and the workers'
    start): the least-squares slope of arrivals counted against time, which the few tokens a worker holds in hand
    at either end of the window sway less than the first and last arrivals alone would."""
    steady = sorted(times)[skip:]
    mean_t, mean_n = sum(steady) / len(steady), (len(steady) - 1) / 2
    covariance = sum((t - mean_t) * (n - mean_n) for n, t in enumerate(steady))
    return covariance / sum((t - mean_t) ** 2 for t in steady)


def most_beyond_the_rate(times: list[float], rate: float) -> float:
    """The most that any stretch of the arrivals holds beyond ``rate`` a second over its length: the largest
    ``count - rate * (last - first)`` over every run of consecutive arrivals. A token bucket refilled at ``rate``
    lets no stretch hold more than its capacity and the tokens taken ahead into workers' hands beyond the rate,
    however the senders are scheduled: a stall only lengthens a stretch."""
    ordered = sorted(times)
    return max(
        j - i + 1 - rate * (ordered[j] - ordered[i]) for i in range(len(ordered)) for j in range(i, len(ordered))
    )


def bucket_slack(rate: float, workers: int = 4) -> float:
    """What may go beyond the rate in a stretch (:func:`most_beyond_the_rate`): the bucket's second's worth, each
    worker's allowance in hand (:mod:`campaign.services.rate_limits`: a fifth of a second's worth, at least one)
    and the stretch's first arrival."""
    return max(1.0, rate) + workers * max(1.0, rate * BATCH_SECONDS) + 1


def run_workers(db: Database, tmp_path: Path, smtp: Sink, total: int, **delivery: object) -> None:
    """Four `campaign worker` processes (concurrency 4 each) until campaign ``c``'s ``total`` messages are sent."""
    config = scale_config(tmp_path, db, smtp, concurrency=4, lease=10, **delivery)
    launch(db, settings_for(config), KEY, "c")
    with processes() as start:
        workers = [start(config, "worker", "--name", f"worker-{n}") for n in range(4)]
        wait_for(lambda: statuses(db, "c") == {"sent": total}, 60, "every message sent")
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            _out, err = worker.communicate(timeout=30)
            assert worker.returncode == 0, err
            assert "Traceback" not in err


def test_four_workers_together_send_at_the_per_second_limit(
    pg_db: Database,  # noqa: F811 (the fixture)
    tmp_path: Path,
    timed_smtp: Sink,
) -> None:
    limit, total = 50.0, 400
    queue_campaign(pg_db, tmp_path, ["example.org"], total)
    started = time.monotonic()
    run_workers(pg_db, tmp_path, timed_smtp, total, rate_per_second=limit)
    handler = timed_smtp.handler
    assert isinstance(handler, TimedSmtp)
    times = [at for at, _ in handler.arrivals]
    assert len(times) == total
    rate = steady_rate(times, skip=int(2 * limit))
    # Never more in any stretch of the run than the bucket allows beyond the limit (a slope was held to 5% over:
    # after a stall on a loaded machine the tokens refilled meanwhile go at once, which is the bucket working,
    # 55.3/s seen); under the limit by at most 10%: on a machine whose cores the suite's other processes share, the
    # workers wake late and fall short (47.2/s seen), which no limiter could make up.
    assert most_beyond_the_rate(times, limit) <= bucket_slack(limit)
    # ...and a slope within 15% of it: the bucket's allowance is a large share of a short run, so that alone lets a
    # limiter 25% too fast pass (a review); 10.5% over is the most a loaded machine showed.
    assert 0.9 * limit <= rate <= 1.15 * limit, f"{rate:.2f} messages a second against a limit of {limit}"
    print(f"\n4 workers, limit {limit}/s: {rate:.2f}/s at the server, {time.monotonic() - started:.1f} s in all")


def test_four_workers_together_hold_the_per_domain_limit(
    pg_db: Database,  # noqa: F811 (the fixture)
    tmp_path: Path,
    timed_smtp: Sink,
) -> None:
    limit, domains, total = 10.0, ["one.example", "two.example"], 180
    queue_campaign(pg_db, tmp_path, domains, total)
    run_workers(pg_db, tmp_path, timed_smtp, total, per_domain_per_second=limit)
    handler = timed_smtp.handler
    assert isinstance(handler, TimedSmtp)
    for domain in domains:
        times = [at for at, rcpt in handler.arrivals if rcpt.endswith(f"@{domain}")]
        assert len(times) == total // len(domains)
        rate = steady_rate(times, skip=int(2 * limit))
        # As above: never beyond what the bucket allows, at most 10% under (late wake-ups on a shared machine).
        assert most_beyond_the_rate(times, limit) <= bucket_slack(limit), domain
        assert 0.9 * limit <= rate <= 1.15 * limit, f"{domain}: {rate:.2f} messages a second against {limit}"
        print(f"\n4 workers, {domain} limited to {limit}/s: {rate:.2f}/s at the server")
