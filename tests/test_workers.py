"""Scale-out on PostgreSQL: `campaign worker` processes sharing one queue, leases kept by heartbeats, a lost lease
never recorded, one scheduler leader with a standby that takes over.

Real parts throughout: a real PostgreSQL database (skipped only when no server is reachable, never with
``CAMPAIGN_TEST_REQUIRE_POSTGRES=1``), real ``campaign worker`` and ``campaign serve`` processes, killed with
``kill -9`` or stopped with ``SIGSTOP``, and a real SMTP server on port 0: aiosmtpd (tests/test_delivery.py), or
at 20,000 messages the lean one of tests/smtp_sink.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import event, func, select

from campaign.cli import cli
from campaign.config import Settings, load_settings
from campaign.models import MessageStatus, SuppressionReason, WaveStatus
from campaign.rules.contact_fields import email_key
from campaign.services.campaigns import get_campaign
from campaign.services.database import init_database
from campaign.services.dispatch_jobs import Job, Result
from campaign.services.dispatch_results import ResultRecorder, write_results
from campaign.services.dispatch_summary import DispatchSummary
from campaign.services.heartbeat import Heartbeat, RateMeter, WorkerNameTakenError
from campaign.services.leadership import Leadership, lock_key
from campaign.services.lifecycle import launch
from campaign.services.workers import leader, registry
from campaign.store import outbox
from campaign.store import suppressions as suppression_store
from campaign.store import workers as worker_store
from campaign.store.engine import Database
from campaign.store.tables import messages
from tests.conftest import _reset_pg_schema
from tests.smtp_sink import LeanSmtp
from tests.test_delivery import (
    KEY,
    Sink,
    base_settings,
    cli_environment,
    outbox_rows,
    pipelining_smtp,  # noqa: F401 (a fixture)
    prepare,
    relay_config,
    statuses,
)
from tests.test_serve import add_wave

# ---------------------------------------------------------------------------------------------------------
# Set-up
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def pg_db(pg_server: str) -> Iterator[Database]:
    """A PostgreSQL database with the current schema (skipped when no server is reachable)."""
    _reset_pg_schema(pg_server)
    db = Database(pg_server.replace("postgresql://", "postgresql+psycopg://", 1))
    init_database(db)
    try:
        yield db
    finally:
        db.dispose()


def scale_config(
    tmp_path: Path, db: Database, smtp: Sink | LeanSmtp, *, concurrency: int, lease: int, **more: object
) -> Path:
    """A relay config for ``db`` with a short lease and fast heartbeats (a dead worker's messages due in seconds)."""
    delivery = {"lease_seconds": lease, "heartbeat_seconds": 0.3, "poll_seconds": 0.1, "batch_size": 25, **more}
    extra = "[delivery]\n" + "".join(f"{key} = {value}\n" for key, value in delivery.items())
    extra += "[scheduler]\ntick_seconds = 1\n"
    return relay_config(tmp_path, db, smtp, concurrency=concurrency, extra=extra)


def command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "campaign", "--config", str(config), *args]


@contextmanager
def processes() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Starts ``campaign`` processes (stderr to a file each); kills any a test leaves running."""
    started: list[subprocess.Popen[str]] = []

    def start(config: Path, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            command(config, *args), env=cli_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        started.append(process)
        return process

    try:
        yield start
    except BaseException:
        for process in started:  # what each said, to tell why the test failed
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.kill()
            _, err = process.communicate()
            print(f"--- {process.args!r} (pid {process.pid}):\n{err[-4000:]}", file=sys.stderr)
        raise
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            process.communicate()


def wait_for(condition: Callable[[], object], seconds: float, what: str) -> None:
    limit = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < limit, f"timed out waiting for {what}"
        time.sleep(0.05)


def settings_for(config: Path) -> Settings:
    return load_settings(config, environ={})


def rows_of(db: Database) -> dict[int, tuple[object, ...]]:
    """Every outbox row's id → (status, attempts, lease owner, sent at, updated at, Message-ID)."""
    stmt = select(
        messages.c.id,
        messages.c.status,
        messages.c.attempts,
        messages.c.lease_owner,
        messages.c.sent_at,
        messages.c.updated_at,
        messages.c.message_id,
    )
    with db.read() as conn:
        return {row[0]: tuple(row[1:]) for row in conn.execute(stmt)}


def held_by(db: Database, owner: str) -> set[int]:
    with db.read() as conn:
        stmt = select(messages.c.id).where(messages.c.lease_owner == owner, messages.c.status == "sending")
        return set(conn.scalars(stmt))


def worker_row(db: Database, name: str) -> worker_store.WorkerRecord:
    with db.read() as conn:
        return next(r for r in worker_store.all_workers(conn) if r.name == name)


def cli_output(config: Path, *args: str) -> str:
    result = CliRunner(env={"CAMPAIGN_SECRET_KEY": KEY.decode()}).invoke(cli, ["--config", str(config), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_workers_gives_each_start_on_this_machines_clock_and_in_utc(
    sqlite_db: Database, tmp_path: Path, kathmandu: None
) -> None:
    # It gave the start in UTC only, where the other commands give this machine's time first.
    started = datetime(2026, 3, 1, 20, 30, 5, tzinfo=UTC)  # 02:15:05 the next day in Kathmandu
    with sqlite_db.write() as conn:
        worker_store.register(conn, name="w1", role="worker", host="h", pid=1, state="running", now=started)
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{sqlite_db.url.render_as_string(hide_password=False)}"\n')
    listing = cli_output(config, "workers", "--all")
    assert "2026-03-02 02:15:05 +0545 (2026-03-01 20:30:05 UTC)" in " ".join(listing.split()), listing


# ---------------------------------------------------------------------------------------------------------
# Four workers, one killed: everything delivered, duplicates bounded by its concurrency and its group commit
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def lean_smtp() -> Iterator[LeanSmtp]:
    """The lean SMTP server of tests/smtp_sink.py (aiosmtpd costs as much CPU as the workers at this size)."""
    server = LeanSmtp().start()
    try:
        yield server
    finally:
        server.stop()


def status_counts(db: Database, ids: set[int] | None = None) -> Counter[str]:
    """Outbox rows by status (of ``ids`` only, if given): one GROUP BY, cheap to poll at 20,000 rows where
    :func:`statuses` builds every row in Python and would hold the test process's GIL from the SMTP server."""
    stmt = select(messages.c.status, func.count()).group_by(messages.c.status)
    if ids is not None:
        stmt = stmt.where(messages.c.id.in_(ids))
    with db.read() as conn:
        return Counter({row[0]: row[1] for row in conn.execute(stmt)})


def test_workers_share_the_queue_and_a_killed_ones_messages_go_out_within_seconds(
    pg_db: Database, tmp_path: Path, lean_smtp: LeanSmtp
) -> None:
    # The size. Measured on this 2-core machine shared with other runs (load average 6 to 9): the test's
    # call 23-41 s (--durations), all sent 22-38 s after the workers' start (their start-up, ~1 s of CPU each,
    # overlapping the contacts' import and the launch, ~3 s), i.e. 530-900 msg/s; the killed worker's messages
    # sent ~4 s after the kill (its 4 s lease). The workers' own CPU (~0.55 s per 1,000 messages) is most of it;
    # the lean SMTP server costs ~0.05 s per 1,000 (aiosmtpd ~0.5 s), and prepare+launch ~3 s at this size.
    smtp, total, concurrency, lease = lean_smtp, 20_000, 4, 4
    # Results wait up to a group commit while senders go on: at most this many handed over but not committed.
    group = 30
    config = scale_config(tmp_path, pg_db, smtp, concurrency=concurrency, lease=lease, group_commit_max=group)
    names = [f"worker-{n}" for n in range(4)]
    started = time.monotonic()
    with processes() as start:
        # Workers run before the campaign launches, as they do in production: their start-up (importing campaign,
        # ~1 s of CPU each) overlaps the import and the launch instead of adding to them.
        workers = {name: start(config, "worker", "--name", name) for name in names}
        emails = prepare(pg_db, tmp_path, total)
        launch(pg_db, settings_for(config), KEY, "c")
        wait_for(lambda: len(smtp.delivered) >= total // 4, 60, "a quarter delivered")
        victim = max(names, key=lambda n: len(held_by(pg_db, n)))  # the one with most in hand: a real loss
        workers[victim].kill()  # kill -9: no goodbye, leases left behind
        workers[victim].wait()
        killed_at = time.monotonic()
        held = held_by(pg_db, victim)
        assert held, "the killed worker held messages when it died"
        # Its messages are due again once its lease expires, and are claimed before the rest (abandoned first).
        wait_for(lambda: status_counts(pg_db, held) == {"sent": len(held)}, 30, "the killed worker's messages sent")
        recovered_in = time.monotonic() - killed_at
        wait_for(lambda: status_counts(pg_db) == {"sent": total}, 60, "every message sent")
        sent_in = time.monotonic() - started
        # The registry: the three alive, the dead one stale (or already marked gone by a live one's heartbeat).
        listing = cli_output(config, "workers", "--all")
        for name in names:
            line = next(line for line in listing.splitlines() if line.startswith(name))
            state = line.split()[2]
            assert state in (("stale", "gone") if name == victim else ("alive",)), listing
        assert "3 workers alive" in listing
        for name in names:
            if name != victim:
                workers[name].send_signal(signal.SIGTERM)
        for name in names:
            if name != victim:
                _out, err = workers[name].communicate(timeout=30)
                assert workers[name].returncode == 0, err
                assert "Traceback" not in err
                assert f"worker started worker={name}" in err
    elapsed = time.monotonic() - started

    received = smtp.received()
    assert set(received) == set(emails), "every message delivered"
    duplicates = sum(n - 1 for n in received.values())
    assert duplicates <= concurrency + group, f"{duplicates} duplicates: more than the killed worker's in flight"
    assert recovered_in < lease + 10, recovered_in
    # Each surviving worker marked itself stopped with its final counts; the rest of the sent rows are the killed
    # one's, of which its row shows what its last beat knew (up to a beat's worth behind, never ahead).
    rows = [worker_row(pg_db, name) for name in names if name != victim]
    assert all(r.state == "stopped" for r in rows)
    by_victim = total - sum(r.sent for r in rows)
    assert 0 < worker_row(pg_db, victim).sent <= by_victim
    print(f"\n{total} messages, 4 workers, one killed: all sent {sent_in:.1f} s after the workers started "
          f"(with the import and launch; {total / sent_in:.0f} msg/s), "
          f"{elapsed:.1f} s with the stops; its messages sent {recovered_in:.1f} s after the kill, "
          f"{duplicates} duplicates, {len(held)} held by the killed worker")  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# A worker stopped past its lease records nothing for the messages it lost
# ---------------------------------------------------------------------------------------------------------


def test_a_worker_stopped_past_its_lease_records_nothing_for_the_messages_it_lost(
    pg_db: Database,
    tmp_path: Path,
    pipelining_smtp: Sink,  # noqa: F811 (the fixture)
) -> None:
    smtp, total, concurrency, lease = pipelining_smtp, 40, 4, 2
    # Claims of 8 (batch_size, also twice the concurrency): the worker claims 8, its 4 senders take 4 and the
    # queue the rest; with no result yet it claims 8 more, of which the queue takes 4. Then it waits on the
    # relay's 1 s with 16 in hand, and makes no claim that SIGSTOP could catch half done.
    config = scale_config(tmp_path, pg_db, smtp, concurrency=concurrency, lease=lease, batch_size=8)
    emails = prepare(pg_db, tmp_path, total)
    launch(pg_db, settings_for(config), KEY, "c")
    smtp.handler.delay = 1.0  # the stale worker is caught with messages on the wire
    with processes() as start:
        stale = start(config, "worker", "--name", "stale")
        wait_for(lambda: len(held_by(pg_db, "stale")) == 16 and smtp.handler.data_attempts, 30, "messages on the wire")
        time.sleep(0.2)
        os.kill(stale.pid, signal.SIGSTOP)
        lost = held_by(pg_db, "stale")
        assert len(lost) == 16
        smtp.handler.delay = 0.0
        fresh = start(config, "worker", "--name", "fresh")
        wait_for(lambda: statuses(pg_db, "c") == {"sent": total}, 30, "the fresh worker sending everything")
        before = rows_of(pg_db)
        assert all(before[i][2] is None for i in lost)  # recorded by the fresh worker: no lease left
        attempts_before = {i: before[i][1] for i in lost}
        os.kill(stale.pid, signal.SIGCONT)
        # Its messages on the wire get their 250 now; it must record none of them, nor send the others.
        wait_for(lambda: worker_row(pg_db, "stale").lost > 0, 15, "the stale worker noticing its lost results")
        time.sleep(1.0)  # time for anything else it would wrongly do
        after = rows_of(pg_db)
        stale.send_signal(signal.SIGTERM)
        fresh.send_signal(signal.SIGTERM)
        _, stale_err = stale.communicate(timeout=30)
        fresh.communicate(timeout=30)
    assert stale.returncode == 0, stale_err
    assert after == before, "the stale worker changed rows it no longer owned"
    assert {i: after[i][1] for i in lost} == attempts_before
    record = worker_row(pg_db, "stale")
    on_the_wire = record.lost
    assert 1 <= on_the_wire <= concurrency, record
    assert record.sent == 0, "none of its results was recorded"
    assert "not recorded" in stale_err
    assert "lease lost" in stale_err
    # The messages it had not begun were given back, not sent: only those on the wire reached the server twice.
    received = smtp.handler.received()
    assert set(received) == set(emails)
    assert sum(n - 1 for n in received.values()) == on_the_wire


def test_a_lost_lease_leaves_the_row_as_its_new_owner_recorded_it(db: Database, tmp_path: Path) -> None:
    """The same rule at the store, on SQLite and PostgreSQL: results are written only under the writer's lease."""
    prepare(db, tmp_path, 3)
    launch(db, base_settings(tmp_path), KEY, "c")
    now = datetime.now(UTC)
    with db.write() as conn:
        first = outbox.claim(conn, owner="a", now=now, lease_until=now + timedelta(seconds=1), limit=3).messages
    later = now + timedelta(seconds=2)  # a's lease has expired: b takes the messages
    with db.write() as conn:
        second = outbox.claim(conn, owner="b", now=later, lease_until=later + timedelta(seconds=30), limit=3)
    assert {m.id for m in second.messages} == {m.id for m in first}
    details = get_campaign(db, "c")
    jobs = [Job(m, None, details.waves[0], details.campaign.id, None, None) for m in first]  # type: ignore[arg-type]
    results = [
        Result(jobs[0], MessageStatus.SENT, message_id="<x@y>", reply="250 ok"),
        Result(jobs[1], MessageStatus.DEFERRED, reply="451 later", error="later", next_attempt_at=later),
        Result(jobs[2], MessageStatus.QUEUED),
    ]
    before = rows_of(db)
    with db.write() as conn:
        lost = write_results(conn, results, "a", later)
    assert lost == {jobs[0].message.id, jobs[1].message.id}
    assert rows_of(db) == before
    with db.write() as conn:  # b, the owner, records
        assert (
            write_results(conn, [replace(results[0], job=replace(jobs[0], message=second.messages[0]))], "b", later)
            == set()
        )
    assert rows_of(db)[jobs[0].message.id][0] == "sent"


def test_on_postgresql_a_claim_is_one_statement_abandoned_first_the_suppressed_set_aside(
    pg_db: Database, tmp_path: Path
) -> None:
    """One round trip a batch: the abandoned leases, the due messages and the suppression check in one UPDATE (a
    second only for a batch that holds suppressed addresses); abandoned messages come first, suppressed addresses
    are set aside uncounted, the rest leased."""
    emails = prepare(pg_db, tmp_path, 6)
    launch(pg_db, base_settings(tmp_path), KEY, "c")
    now = datetime.now(UTC)
    with pg_db.write() as conn:
        dead = outbox.claim(conn, owner="dead", now=now, lease_until=now + timedelta(seconds=1), limit=2).messages
        suppression_store.add(conn, email_key(emails[5]), SuppressionReason.UNSUBSCRIBED, "link", None, now)
    statements: list[list[str]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements[-1].append(statement)

    later = now + timedelta(seconds=2)  # the dead worker's leases lapsed
    claims = []
    event.listen(pg_db.engine, "before_cursor_execute", capture)
    try:
        for limit in (3, 10):  # the second takes the rest
            statements.append([])
            with pg_db.write() as conn:
                lease_until = later + timedelta(seconds=30)
                claims.append(outbox.claim(conn, owner="live", now=later, lease_until=lease_until, limit=limit))
    finally:
        event.remove(pg_db.engine, "before_cursor_execute", capture)
    claim, rest = claims
    assert {m.id for m in dead} <= {m.id for m in claim.messages}, "the abandoned messages first"
    assert len(claim.messages) + claim.suppressed == 3
    assert claim.suppressed + rest.suppressed == 1, "the suppressed one is never leased"
    assert len(claim.messages) + len(rest.messages) == 5
    assert [len(s) for s in statements] == [1 + c.suppressed for c in claims], statements
    rows = rows_of(pg_db)
    for message in [*claim.messages, *rest.messages]:
        status, attempts, owner = rows[message.id][:3]
        assert (status, owner) == ("sending", "live")
        assert attempts == (2 if message.id in {m.id for m in dead} else 1)
    row = outbox_rows(pg_db, "c")[emails[5]]
    assert (row.status, row.last_error, row.attempts) == ("suppressed", "unsubscribed", 0)
    assert rows[row.id][2] is None, "no lease left on it"


def test_on_postgresql_senders_go_on_before_the_group_commit_at_most_group_max_waiting(
    pg_db: Database, tmp_path: Path
) -> None:
    """The crash bound of the group commit: a result handed over returns at once (not yet committed) while fewer
    than ``group_max`` wait; the one that fills the group waits for, and gets, the commit of all of them."""
    prepare(pg_db, tmp_path, 3)
    launch(pg_db, base_settings(tmp_path), KEY, "c")
    now = datetime.now(UTC)
    with pg_db.write() as conn:
        taken = outbox.claim(conn, owner="w", now=now, lease_until=now + timedelta(seconds=30), limit=3).messages
    details = get_campaign(pg_db, "c")
    jobs = [Job(m, None, details.waves[0], details.campaign.id, None, None) for m in taken]  # type: ignore[arg-type]
    summary = DispatchSummary()
    recorder = ResultRecorder(
        pg_db,
        lambda conn, batch: write_results(conn, batch, "w", now),
        summary,
        None,
        senders=3,
        window_ms=60_000.0,  # a long window: only a full group commits
        group_max=3,
    )

    async def scenario() -> tuple[list[object], list[object]]:
        flusher = asyncio.create_task(recorder.keep_flushing())
        try:
            for job in jobs[:2]:
                await asyncio.wait_for(recorder.record(Result(job, MessageStatus.SENT, reply="250 ok")), 1)
            await asyncio.sleep(0.05)
            waiting = [rows_of(pg_db)[j.message.id][0] for j in jobs]
            await asyncio.wait_for(recorder.record(Result(jobs[2], MessageStatus.SENT, reply="250 ok")), 5)
            return waiting, [rows_of(pg_db)[j.message.id][0] for j in jobs]
        finally:
            flusher.cancel()

    waiting, committed = asyncio.run(scenario())
    assert waiting == ["sending"] * 3, "two results handed over, none committed: the senders went on"
    assert committed == ["sent"] * 3, "the third filled the group and returned once all three were committed"
    assert summary.counts == {"sent": 3}


def test_a_heartbeat_renews_the_row_and_only_the_leases_still_held_in_one_step(db: Database, tmp_path: Path) -> None:
    prepare(db, tmp_path, 3)
    launch(db, base_settings(tmp_path), KEY, "c")
    now = datetime.now(UTC)
    with db.write() as conn:
        for name in ("a", "b"):
            worker_store.register(conn, name=name, role="worker", host="h", pid=1, state="alive", now=now)
        taken = outbox.claim(conn, owner="a", now=now, lease_until=now + timedelta(seconds=1), limit=3).messages
        later = now + timedelta(seconds=2)  # a's leases lapsed; b takes one of them
        outbox.claim(conn, owner="b", now=later, lease_until=later + timedelta(seconds=5), limit=1)
    until = later + timedelta(seconds=30)
    counts = worker_store.Counts(claimed=3, sent=1, failed=0, lost=0, rate=2.5)
    with db.write() as conn:
        renewed = worker_store.beat(conn, "a", state="alive", now=later, counts=counts, lease_until=until)
    assert renewed == 2
    with db.read() as conn:
        leases = dict(conn.execute(select(messages.c.lease_owner, messages.c.lease_expires_at)).all())
    assert leases == {"a": until, "b": later + timedelta(seconds=5)}, "b's lease untouched"
    row = worker_row(db, "a")
    assert (row.heartbeat_at, row.in_hand, row.claimed, row.sent, row.rate) == (later, 2, 3, 1, 2.5)
    assert len(taken) == 3


# ---------------------------------------------------------------------------------------------------------
# One scheduler leader; the standby takes over
# ---------------------------------------------------------------------------------------------------------


def test_the_standby_takes_over_within_seconds_and_a_wave_fires_exactly_once(
    pg_db: Database,
    tmp_path: Path,
    pipelining_smtp: Sink,  # noqa: F811 (the fixture)
) -> None:
    smtp, total = pipelining_smtp, 12
    config = scale_config(tmp_path, pg_db, smtp, concurrency=2, lease=3)
    settings = settings_for(config)
    emails = prepare(pg_db, tmp_path, total)
    add_wave(pg_db, "c", "later", send_at=datetime.now(UTC) + timedelta(days=1))  # keeps the campaign sending meanwhile
    launch(pg_db, settings, KEY, "c")

    def lead() -> str | None:
        found = leader(registry(pg_db, settings))
        return found.record.name if found else None

    def schedulers() -> dict[int, str]:
        return {s.record.pid: s.state for s in registry(pg_db, settings) if s.record.role == "scheduler"}

    with processes() as start:
        first = start(config, "serve")
        wait_for(lambda: schedulers().get(first.pid) == "leader", 30, "the first service leading")
        second = start(config, "serve")
        wait_for(lambda: schedulers().get(second.pid) == "standby", 30, "the second standing by")
        wait_for(lambda: statuses(pg_db, "c") == {"sent": total}, 30, "the invitation delivered")
        status = cli_output(config, "status", "c").splitlines()[1]
        assert status.startswith(f"Scheduler service: running, leader {lead()} (pid {first.pid} on "), status
        first.kill()  # kill -9: its connection drops, the server releases the lock
        first.wait()
        killed_at = time.monotonic()
        wait_for(lambda: schedulers().get(second.pid) == "leader", 15, "the standby taking the lead")
        takeover = time.monotonic() - killed_at
        assert schedulers()[first.pid] == "gone"  # the dead leader's row, marked by the new one
        wave = "after-takeover"
        add_wave(pg_db, "c", wave, send_at=datetime.now(UTC) + timedelta(seconds=1.5))
        wait_for(
            lambda: Counter(row[0] for row in rows_of(pg_db).values()) == {"sent": total * 2},
            30,
            "the wave fired after the takeover delivered",
        )
        time.sleep(1.5)  # a maintenance tick or two more: nothing fires twice
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=30)
    assert second.returncode == 0, err
    assert "leading" in err
    assert takeover < 5, f"took {takeover:.1f} s"
    details = get_campaign(pg_db, "c")
    assert next(w for w in details.waves if w.name == wave).status in (WaveStatus.ENQUEUED, WaveStatus.DONE)
    assert next(w for w in details.waves if w.name == "later").status is WaveStatus.PENDING
    assert smtp.handler.received() == Counter(emails * 2), "the invitation and the new wave, each exactly once"


def test_serve_once_is_refused_while_another_process_leads(
    pg_db: Database,
    tmp_path: Path,
    pipelining_smtp: Sink,  # noqa: F811 (the fixture)
) -> None:
    config = scale_config(tmp_path, pg_db, pipelining_smtp, concurrency=1, lease=3)
    holder = pg_db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        assert worker_store.try_advisory_lock(holder, lock_key())
        done = subprocess.run(
            command(config, "serve", "--once"), env=cli_environment(), capture_output=True, text=True, timeout=60
        )
    finally:
        holder.invalidate()
        holder.close()
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"Error: another `campaign serve` leads on {pg_db.describe()} and fires the waves; `campaign workers` shows it"
    ]
    again = subprocess.run(
        command(config, "serve", "--once"), env=cli_environment(), capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0, again.stderr  # the lock's holder gone (its connection closed): it leads


def test_a_leader_that_loses_its_lock_connection_stops_instead_of_leading_without_it(
    pg_db: Database,
    tmp_path: Path,
    pipelining_smtp: Sink,  # noqa: F811 (the fixture)
) -> None:
    config = scale_config(tmp_path, pg_db, pipelining_smtp, concurrency=1, lease=3)
    settings = settings_for(config)
    holder = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
    holder += "(SELECT oid FROM pg_database WHERE datname = current_database())"
    with processes() as start:
        service = start(config, "serve")
        wait_for(lambda: leader(registry(pg_db, settings)) is not None, 30, "the service leading")
        with pg_db.read() as conn:
            (backend,) = conn.exec_driver_sql(holder).scalars().all()
            conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(backend)})")
        _, err = service.communicate(timeout=30)
    assert service.returncode == 1
    assert err.strip().splitlines()[-1].startswith("Error: lost the connection holding the scheduler's leader lock")
    assert "Traceback" not in err
    assert leader(registry(pg_db, settings)) is None


# SQLite only: leading by the file lock is SQLite's way (PostgreSQL's advisory lock: the tests above).
def test_on_sqlite_the_service_leads_by_its_file_lock_and_status_names_it(sqlite_db: Database, tmp_path: Path) -> None:
    settings = base_settings(tmp_path)
    leadership = Leadership(sqlite_db, settings, "host:1:abc")
    leadership.start()
    try:
        assert leadership.leading
        states = registry(sqlite_db, settings)
        found = leader(states)
        assert found is not None
        assert found.record.name == "host:1:abc"
    finally:
        asyncio.run(asyncio.to_thread(leadership.release))
    assert leader(registry(sqlite_db, settings)) is None
    assert [s.state for s in registry(sqlite_db, settings)] == ["stopped"]


def test_the_rate_is_messages_a_second_over_the_recent_window() -> None:
    meter = RateMeter(window=10)
    assert meter.rate(0.0, 0) == 0.0
    assert meter.rate(1.0, 100) == pytest.approx(100)
    for second in range(2, 30):
        rate = meter.rate(float(second), 100 + (second - 1) * 10)
    assert rate == pytest.approx(10)


def test_a_process_that_stopped_beating_is_stale_then_marked_gone_then_forgotten(db: Database, tmp_path: Path) -> None:
    settings = replace(base_settings(tmp_path), delivery=replace(base_settings(tmp_path).delivery, lease_seconds=10))
    now = datetime.now(UTC)
    with db.write() as conn:
        worker_store.register(conn, name="dead", role="worker", host="h", pid=1, state="alive", now=now)
        worker_store.register(conn, name="live", role="worker", host="h", pid=2, state="alive", now=now)
    later = now + timedelta(seconds=11)
    with db.write() as conn:
        worker_store.beat(conn, "live", state="alive", now=later)
    assert {s.record.name: s.state for s in registry(db, settings, later)} == {"dead": "stale", "live": "alive"}
    with db.write() as conn:
        assert worker_store.mark_gone(conn, stale_before=later - timedelta(seconds=10), forget_before=now) == 1
    assert {s.record.name: s.state for s in registry(db, settings, later)} == {"dead": "gone", "live": "alive"}
    with db.write() as conn:
        worker_store.mark_gone(conn, stale_before=later, forget_before=later)
    assert [s.record.name for s in registry(db, settings, later)] == ["live"]


def test_a_worker_restarted_under_its_name_takes_over_the_ended_row_and_not_its_leases(
    db: Database, tmp_path: Path
) -> None:
    # A supervisor restarting `campaign worker --name w1` after a kill -9 met a raw IntegrityError (a crash
    # review); taken over naively, the new process would have renewed the dead one's leases forever.
    settings = base_settings(tmp_path)
    prepare(db, tmp_path, 3)
    launch(db, settings, KEY, "c")
    lease = timedelta(seconds=settings.delivery.lease_seconds)
    died = datetime.now(UTC) - lease - timedelta(seconds=1)
    with db.write() as conn:
        worker_store.register(conn, name="w1", role="worker", host="h", pid=7, state="alive", now=died)
        # Claimed before it died (the messages were due only now), their leases ended with it.
        claimed = datetime.now(UTC)
        assert len(outbox.claim(conn, owner="w1", now=claimed, lease_until=claimed, limit=2).messages) == 2
    restarted = Heartbeat(db, settings, name="w1", role="worker", state="alive", lease_clock=lambda: datetime.now(UTC))
    restarted.start()
    row = worker_row(db, "w1")
    assert (row.pid, row.state) == (os.getpid(), "alive")
    assert row.started_at > died + lease
    with db.read() as conn:
        owners = Counter(conn.scalars(select(messages.c.lease_owner).where(messages.c.status == "sending")))
    assert owners == {"w1 (pid 7, ended)": 2}
    assert asyncio.run(restarted.beat()) == 0  # nothing of the dead process's renewed
    # Claimed again as any dead worker's (their lease lapsed), by whoever claims next.
    with db.write() as conn:
        now = datetime.now(UTC)
        again = outbox.claim(conn, owner="w1", now=now, lease_until=now + lease, limit=3).messages
    assert len(again) == 3

    # A process of that name still beating is not taken over: one line naming it.
    with pytest.raises(WorkerNameTakenError, match=r"a process named 'w1' is running \(pid \d+ on .+, its heartbeat"):
        Heartbeat(db, settings, name="w1", role="worker", state="alive").start()
    # Stopped (SIGTERM), it is taken over at once.
    with db.write() as conn:
        worker_store.set_state(conn, "w1", "stopped", datetime.now(UTC))
    Heartbeat(db, settings, name="w1", role="worker", state="alive").start()
    assert worker_row(db, "w1").state == "alive"


def test_two_processes_starting_at_once_under_one_name_one_starts_the_other_is_refused_in_one_line(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A review: on PostgreSQL both looked, found nothing, and the second insert was a raw IntegrityError.
    settings = base_settings(tmp_path)
    looked = threading.Barrier(2, timeout=10)
    found = worker_store.find

    def find_then_wait(conn: Any, name: str) -> worker_store.WorkerRecord | None:
        record = found(conn, name)
        with contextlib.suppress(threading.BrokenBarrierError):  # SQLite: the other waits for the lock meanwhile
            looked.wait(timeout=1)
        return record

    monkeypatch.setattr(worker_store, "find", find_then_wait)
    outcomes: list[str] = []

    def start() -> None:
        try:
            Heartbeat(db, settings, name="w1", role="worker", state="alive").start()
            outcomes.append("started")
        except WorkerNameTakenError as exc:
            outcomes.append(f"refused: {exc}")

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert sorted(o.split(":")[0] for o in outcomes) == ["refused", "started"], outcomes
    assert worker_row(db, "w1").pid == os.getpid()


def test_a_long_name_taken_over_hands_its_leases_to_another_name(db: Database, tmp_path: Path) -> None:
    # A review: "{name} (pid 7, ended)" cut to the lease owner's 100 characters was the name itself.
    settings = base_settings(tmp_path)
    prepare(db, tmp_path, 2)
    launch(db, settings, KEY, "c")
    name = "w" * 100
    died = datetime.now(UTC) - timedelta(hours=1)
    with db.write() as conn:
        worker_store.register(conn, name=name, role="worker", host="h", pid=7, state="alive", now=died)
        now = datetime.now(UTC)
        outbox.claim(conn, owner=name, now=now, lease_until=now, limit=2)
    Heartbeat(db, settings, name=name, role="worker", state="alive").start()
    with db.read() as conn:
        owners = set(conn.scalars(select(messages.c.lease_owner).where(messages.c.status == "sending")))
    assert owners == {"w" * 60 + " (pid 7, ended)"}
