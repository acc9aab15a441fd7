"""``campaign serve``: waves fired at their instant exactly once, delivery in the same process, a graceful stop.

The decisions are driven through :meth:`SchedulerService.tick` with instants the test chooses (no sleeping
through real hours); the long-running paths (APScheduler's jobs, SIGTERM, two services at once) run for
seconds against a real database (a SQLite file, and PostgreSQL through ``db``) and a real aiosmtpd server
(see tests/test_delivery.py). The lock tests are about SQLite's file lock (PostgreSQL's leader: tests/test_workers.py).
"""

from __future__ import annotations

import asyncio
import io
import logging
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

import pytest
from click.testing import CliRunner

from campaign.cli import cli
from campaign.config import Settings, load_settings
from campaign.models import CampaignStatus, SuppressionReason, WaveKind, WaveStatus
from campaign.rules.contact_fields import email_key
from campaign.services.campaigns import get_campaign
from campaign.services.contact_import import import_contacts
from campaign.services.context import AppContext
from campaign.services.delivery_request import DeliveryRequest
from campaign.services.dispatch import send_due
from campaign.services.lifecycle import launch
from campaign.services.workers import leader, registry
from campaign.store import campaigns as campaign_store
from campaign.store import suppressions as suppression_store
from campaign.store.engine import Database
from scheduler.display import LIBRARY_LOGGER, LOGGER_NAME, configure_output, fields
from scheduler.lock import ServiceLock, ServiceRunningError, lock_path, running_service
from scheduler.service import SchedulerService
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
    tuned,
    write_contacts,
)

# ---------------------------------------------------------------------------------------------------------
# Set-up
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def service_logger_restored() -> Iterator[None]:
    """``campaign serve`` (run in-process here) points the service's logger at stderr; each test starts as
    pytest left it, so ``caplog`` sees the lines."""
    loggers = [logging.getLogger(name) for name in (LOGGER_NAME, LIBRARY_LOGGER)]
    saved = [(logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    yield
    for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


def context_for(settings: Settings, db: Database) -> AppContext:
    """A context on ``db`` (its own pool) with these settings and the test key."""
    context = AppContext(
        settings_given=replace(
            settings, database=replace(settings.database, url=db.url.render_as_string(hide_password=False))
        )
    )
    context._key = KEY
    return context


def add_wave(
    db: Database,
    campaign: str = "c",
    name: str = "reminder",
    *,
    send_at: datetime | None = None,
    offset: timedelta | None = None,
) -> int:
    """A pending reminder wave of ``campaign`` to everyone, at an instant or relative to the event start."""
    campaign_id = get_campaign(db, campaign).campaign.id
    with db.write() as conn:
        return campaign_store.insert_wave(
            conn,
            {
                "campaign_id": campaign_id,
                "name": name,
                "kind": WaveKind.REMINDER.value,
                "template": "reminder",
                "audience": "all",
                "status": WaveStatus.PENDING.value,
                "send_at": send_at,
                "offset_seconds": None if offset is None else int(offset.total_seconds()),
            },
            datetime.now(UTC),
        )


def wave_status(db: Database, campaign: str, name: str) -> WaveStatus:
    return next(w.status for w in get_campaign(db, campaign).waves if w.name == name)


def event_start(db: Database, campaign: str = "c") -> datetime:
    return get_campaign(db, campaign).event.starts_at


def wave_rows(db: Database, campaign: str, wave: str) -> int:
    counts = statuses_by_wave(db, campaign)
    return sum(counts.get(wave, {}).values())


def statuses_by_wave(db: Database, campaign: str) -> dict[str, dict[str, int]]:
    from campaign.store import reports

    with db.read() as conn:
        return reports.counts(conn, get_campaign(db, campaign).campaign.id)


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    limit = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < limit, f"timed out waiting for {what}"
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------------------------
# The decisions, on a controllable clock
# ---------------------------------------------------------------------------------------------------------


def test_a_tick_fires_a_wave_at_its_instant_and_never_again(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = base_settings(tmp_path)
    prepare(db, tmp_path, 6)
    launch(db, settings, KEY, "c")
    add_wave(db, offset=timedelta(days=-1))
    fires_at = event_start(db) - timedelta(days=1)
    service = SchedulerService(context_for(settings, db))

    before = service.tick(fires_at - timedelta(seconds=1))
    assert [f.wave for f in before.fired] == []
    assert before.next_wave is not None
    assert before.next_wave.fires_at == fires_at
    assert wave_status(db, "c", "reminder") is WaveStatus.PENDING

    with caplog.at_level(logging.INFO, LOGGER_NAME):
        at = service.tick(fires_at)
    assert [(f.wave, f.status, f.queued) for f in at.fired] == [("reminder", WaveStatus.ENQUEUED, 6)]
    assert wave_status(db, "c", "reminder") is WaveStatus.ENQUEUED
    assert "wave fired campaign=c wave=reminder status=enqueued queued=6 suppressed=0 expired=0" in caplog.text
    assert at.next_wave is None

    # Ticking again, in this service or in a restarted one, a minute or an hour later: nothing more.
    assert service.tick(fires_at).fired == []
    restarted = SchedulerService(context_for(settings, db))
    for later in (timedelta(minutes=1), timedelta(hours=1)):
        assert restarted.tick(fires_at + later).fired == []
    assert wave_rows(db, "c", "reminder") == 6


def test_a_wave_due_while_the_service_was_down_is_sent_if_not_expired_else_missed_and_said(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = base_settings(tmp_path)
    prepare(db, tmp_path, 4)
    launch(db, settings, KEY, "c")
    start = event_start(db)
    add_wave(db, "c", "reminder-1d", offset=timedelta(days=-1))
    add_wave(db, "c", "reminder-1h", offset=timedelta(hours=-1))
    service = SchedulerService(context_for(settings, db))

    # Down from before the first reminder until after the event started: both reminders expired (at the start).
    with caplog.at_level(logging.INFO, LOGGER_NAME):
        report = service.tick(start + timedelta(minutes=5))
    assert {(f.wave, f.status) for f in report.fired} == {
        ("reminder-1d", WaveStatus.MISSED),
        ("reminder-1h", WaveStatus.MISSED),
    }
    missed = [r for r in caplog.records if r.getMessage().startswith("wave missed")]
    assert len(missed) == 2
    assert all(r.levelno == logging.WARNING and "reason=" in r.getMessage() for r in missed)
    assert wave_rows(db, "c", "reminder-1d") == 0

    # Down across one reminder only: the late one still goes out, before its expiry.
    prepare(db, tmp_path, 4, name="d")
    launch(db, settings, KEY, "d")
    add_wave(db, "d", "reminder-1d", offset=timedelta(days=-1))
    late = event_start(db, "d") - timedelta(hours=20)
    assert [(f.wave, f.status) for f in service.tick(late).fired] == [("reminder-1d", WaveStatus.ENQUEUED)]


def join_list(db: Database, tmp_path: Path, count: int, *, suppressed: int = 0) -> None:
    """``count`` newcomers join list ``guests``, the first ``suppressed`` of them on the suppression list."""
    emails = write_contacts(tmp_path / "newcomers.csv", count, prefix="newcomer")
    import_contacts(db, tmp_path / "newcomers.csv", "guests")
    with db.write() as conn:
        for email in emails[:suppressed]:
            suppression_store.add(conn, email_key(email), SuppressionReason.UNSUBSCRIBED, None, None, datetime.now(UTC))


def test_an_invitation_topped_up_with_newcomers_is_logged_as_such(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = base_settings(tmp_path)
    prepare(db, tmp_path, 3)
    launch(db, settings, KEY, "c")
    service = SchedulerService(context_for(settings, db))
    join_list(db, tmp_path, 3, suppressed=1)
    with caplog.at_level(logging.INFO, LOGGER_NAME):
        (fired,) = service.tick(datetime.now(UTC)).fired
    assert (fired.wave, fired.topped_up, fired.queued, fired.suppressed) == ("invitation", True, 2, 1)
    assert "invitation topped up campaign=c wave=invitation queued=2 suppressed=1 expired=0" in caplog.text
    assert "wave fired" not in caplog.text


def test_fields_are_parseable_key_value_pairs() -> None:
    assert fields("wave fired", campaign="c", wave="reminder-1d", queued=3) == (
        "wave fired campaign=c wave=reminder-1d queued=3"
    )
    assert fields("wave missed", campaign="a b", reason='x="y"') == 'wave missed campaign="a b" reason="x=\\"y\\""'
    assert fields("x", empty="") == 'x empty=""'


def test_on_a_terminal_log_lines_scroll_above_the_status_line(db: Database, tmp_path: Path) -> None:
    stream = io.StringIO()
    status = configure_output(stream, terminal=True)
    assert status is not None
    settings = base_settings(tmp_path)
    prepare(db, tmp_path, 2)
    launch(db, settings, KEY, "c")
    add_wave(db, offset=timedelta(hours=-1))
    service = SchedulerService(context_for(settings, db), status=status)
    service.tick(datetime.now(UTC))
    assert "next: c/reminder at" in status.text
    service.tick(event_start(db) - timedelta(minutes=30))
    # The status line is erased, the log line written (after the time of day), the status line drawn again.
    erased_then_logged = stream.getvalue().split("\r\x1b[K")
    assert any(" wave fired campaign=c wave=reminder" in part for part in erased_then_logged)
    assert "no wave waiting" in status.text


# ---------------------------------------------------------------------------------------------------------
# One service per SQLite database
# ---------------------------------------------------------------------------------------------------------


# SQLite only: the file lock beside a SQLite database (PostgreSQL has none: any number of services run).
def test_a_second_service_on_the_same_sqlite_database_is_refused_until_the_first_ends(sqlite_db: Database) -> None:
    path = lock_path(sqlite_db)
    assert path is not None
    assert path == sqlite_db.file.with_name("campaign.db.serve.lock")  # type: ignore[union-attr]
    assert running_service(sqlite_db) is None
    with ServiceLock(sqlite_db):
        assert running_service(sqlite_db) == os.getpid()
        with pytest.raises(ServiceRunningError) as refused:
            ServiceLock(sqlite_db).__enter__()
        assert f"pid {os.getpid()}" in str(refused.value)
        assert str(sqlite_db.file) in str(refused.value)
    assert running_service(sqlite_db) is None
    with ServiceLock(sqlite_db):  # released on exit
        pass


# SQLite only: the file lock beside a SQLite database (PostgreSQL has none: any number of services run).
def test_one_lock_per_database_however_its_path_is_written(sqlite_db: Database, tmp_path: Path) -> None:
    """A symlinked directory or a ``..`` names the same file: the second service is refused all the same."""
    assert sqlite_db.file is not None
    (tmp_path / "link").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "sub").mkdir()
    for other in (f"{tmp_path}/link/campaign.db", f"{tmp_path}/sub/../campaign.db"):
        aliased = Database(f"sqlite:///{other}")
        try:
            assert aliased.file == sqlite_db.file
            assert lock_path(aliased) == lock_path(sqlite_db)
            with ServiceLock(sqlite_db), pytest.raises(ServiceRunningError):
                ServiceLock(aliased).__enter__()
        finally:
            aliased.dispose()
    # And so `campaign serve`, configured with the symlinked path, is refused beside a service on the real one.
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/link/campaign.db"\n[paths]\ndata = "{tmp_path}"\n')
    with ServiceLock(sqlite_db):
        result = CliRunner().invoke(cli, ["--config", str(config), "serve", "--once"])
    assert result.exit_code == 1, result.output
    assert "another `campaign serve`" in result.output


# SQLite only: the file lock beside a SQLite database (PostgreSQL has none: any number of services run).
def test_serve_refuses_to_start_beside_a_running_one_with_one_line(sqlite_db: Database, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{sqlite_db.url}"\n[paths]\ndata = "{tmp_path}"\n')
    with ServiceLock(sqlite_db):
        result = CliRunner().invoke(cli, ["--config", str(config), "serve", "--once"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "another `campaign serve`" in lines[0]


# ---------------------------------------------------------------------------------------------------------
# The worker stops gracefully
# ---------------------------------------------------------------------------------------------------------


def test_a_stopped_worker_finishes_what_it_sends_and_gives_back_the_rest(
    db: Database,
    tmp_path: Path,
    pipelining_smtp: Sink,  # noqa: F811 (the fixture)
) -> None:
    smtp = pipelining_smtp
    settings = tuned(base_settings(tmp_path), concurrency=3, batch_size=20)
    emails = prepare(db, tmp_path, 60)
    launch(db, settings, KEY, "c")
    smtp.handler.delay = 0.03

    async def run_then_stop() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(
            # Forever, but for stop.
            send_due(DeliveryRequest(db, settings, KEY, smtp.servers(), wait=True), stop=stop)
        )
        while len(smtp.handler.delivered) < 10:
            await asyncio.sleep(0.005)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(run_then_stop())
    rows = outbox_rows(db, "c")
    counts = Counter(r.status for r in rows.values())
    assert set(counts) == {"sent", "queued"}, counts  # nothing left leased to a worker that is gone
    received = smtp.handler.received()
    assert {e for e, r in rows.items() if r.status == "sent"} == set(received)
    assert max(received.values()) == 1
    assert all(r.attempts == 0 for r in rows.values() if r.status == "queued"), "a given-back message was not tried"

    asyncio.run(send_due(DeliveryRequest(db, settings, KEY, smtp.servers())))
    assert smtp.handler.received() == Counter(emails)


# ---------------------------------------------------------------------------------------------------------
# The long-running service
# ---------------------------------------------------------------------------------------------------------


def test_a_date_job_fires_a_wave_at_its_instant_between_maintenance_ticks(
    db: Database,
    tmp_path: Path,
    pipelining_smtp: Sink,  # noqa: F811 (the fixture)
) -> None:
    smtp = pipelining_smtp
    settings = tuned(base_settings(tmp_path), concurrency=2)
    emails = prepare(db, tmp_path, 5)
    launch(db, settings, KEY, "c")
    # Seconds ahead: the service's start (its first tick and the invitation's sending) comes first, even on a
    # loaded machine (at 3 s, a suite run beside other work saw the start-up tick 1.9 s before the instant).
    fires_at = datetime.now(UTC) + timedelta(seconds=5)
    add_wave(db, send_at=fires_at)
    ticks: list[datetime] = []  # the instant of every tick, to tell which one fired the wave

    def clock() -> datetime:
        ticks.append(datetime.now(UTC))
        return ticks[-1]

    # The maintenance job runs once, at the start, then not for an hour: only the wave's date job can fire it.
    service = SchedulerService(context_for(settings, db), tick_seconds=3600, clock=clock)

    async def scenario() -> None:
        task = asyncio.create_task(service.run(smtp.servers()))
        while sum(smtp.handler.received().values()) < len(emails):  # the invitation, sent after the first tick
            assert not task.done(), task
            await asyncio.sleep(0.02)
        while datetime.now(UTC) < fires_at - timedelta(seconds=0.3):
            await asyncio.sleep(0.02)
        assert len(ticks) == 1, ticks  # the start-up tick only, well before the wave's instant
        assert ticks[0] < fires_at - timedelta(seconds=1), ticks
        assert wave_status(db, "c", "reminder") is WaveStatus.PENDING  # ... which did not fire it
        while sum(smtp.handler.received().values()) < 2 * len(emails):
            assert not task.done(), task
            assert datetime.now(UTC) < fires_at + timedelta(seconds=20), "the reminder never went out"
            await asyncio.sleep(0.02)
        service.request_stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    assert smtp.handler.received() == Counter(emails * 2)
    assert wave_status(db, "c", "reminder") in (WaveStatus.ENQUEUED, WaveStatus.DONE)
    # Two ticks: the start-up one, and the date job's, at the wave's instant (not an hour later).
    assert len(ticks) == 2, ticks
    assert fires_at <= ticks[1] < fires_at + timedelta(seconds=2), (ticks, fires_at)


def test_two_services_forced_to_run_on_one_database_never_double_send(
    db: Database,
    tmp_path: Path,
    pipelining_smtp: Sink,  # noqa: F811 (the fixture)
) -> None:
    """The lock is only a courtesy: two services running anyway (here without it) fire each wave once and
    send each message once, by the waves' compare-and-set and the messages' leases."""
    smtp = pipelining_smtp
    settings = tuned(base_settings(tmp_path), concurrency=3, batch_size=10)
    emails = prepare(db, tmp_path, 40)
    launch(db, settings, KEY, "c")
    now = datetime.now(UTC)
    for n in range(4):
        add_wave(db, name=f"reminder-{n}", send_at=now - timedelta(seconds=n))
    services = [SchedulerService(context_for(settings, db), tick_seconds=0.05) for _ in range(2)]

    # The decisions, raced from two threads at the same instant.
    barrier = threading.Barrier(2)
    fired: list[list[str]] = [[], []]

    def tick(n: int) -> None:
        barrier.wait()
        fired[n] = [f.wave for f in services[n].tick(now).fired]

    threads = [threading.Thread(target=tick, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(fired[0] + fired[1]) == [f"reminder-{n}" for n in range(4)]

    # Then both services run, ticking every 50 ms and delivering from one queue.
    add_wave(db, name="late", send_at=datetime.now(UTC))

    async def scenario() -> None:
        tasks = [asyncio.create_task(s.run(smtp.servers())) for s in services]
        limit = time.monotonic() + 60
        while sum(smtp.handler.received().values()) < 6 * len(emails):
            assert time.monotonic() < limit, smtp.handler.received()
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # time for a second send, were there one
        for service in services:
            service.request_stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)

    asyncio.run(scenario())
    assert smtp.handler.received() == Counter(emails * 6)
    by_wave = statuses_by_wave(db, "c")
    assert by_wave == {w: {"sent": len(emails)} for w in ["invitation", "late", *(f"reminder-{n}" for n in range(4))]}


def serve_command(config: Path, *args: str) -> list[str]:
    """``python -m campaign --config CONFIG serve ARGS...``."""
    return [sys.executable, "-m", "campaign", "--config", str(config), "serve", *args]


@contextmanager
def serving(config: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """:func:`serve_command` as a real process, killed if a test leaves it running."""
    service = subprocess.Popen(
        serve_command(config, *args), env=cli_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield service
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()


def serving_pid(db: Database, settings: Settings) -> int | None:
    """The pid of the ``campaign serve`` holding ``db``: on SQLite its file lock's holder, on PostgreSQL the
    leader the registry names (any number of services may run there; one leads and fires the waves)."""
    if db.is_sqlite:
        return running_service(db)
    found = leader(registry(db, settings))
    return None if found is None else found.record.pid


def refusal(db: Database, pid: int) -> str:
    """The one line ``serve --once`` is refused with beside the service ``pid``, on each backend."""
    if db.is_sqlite:
        return (
            f"Error: another `campaign serve` (pid {pid}) is running on {db.file}; one is enough "
            f"(its lock: {lock_path(db)})"
        )
    return f"Error: another `campaign serve` leads on {db.describe()} and fires the waves; `campaign workers` shows it"


def test_sigterm_mid_send_loses_nothing_and_sends_nothing_twice(
    db: Database,
    tmp_path: Path,
    pipelining_smtp: Sink,  # noqa: F811 (the fixture)
) -> None:
    smtp = pipelining_smtp
    total = 150
    config = relay_config(tmp_path, db, smtp, concurrency=4, extra="[delivery]\nbatch_size = 20\n")
    settings = load_settings(config, environ={})
    emails = prepare(db, tmp_path, total)
    launch(db, settings, KEY, "c")
    smtp.handler.delay = 0.02
    with serving(config) as service:
        wait_for(lambda: len(smtp.handler.delivered) >= 1 or service.poll() is not None, 30, "sending")
        assert service.poll() is None, service.communicate()
        wait_for(lambda: serving_pid(db, settings) == service.pid, 30, "the service holding its lock or leading")
        # A second service is refused while the first runs (which sends slowly meanwhile, to be caught mid-send).
        smtp.handler.delay = 0.5
        second = subprocess.run(
            serve_command(config, "--once"), env=cli_environment(), capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 1
        assert second.stderr.strip().splitlines() == [refusal(db, service.pid)]
        smtp.handler.delay = 0.02
        wait_for(lambda: len(smtp.handler.delivered) >= total // 3 or service.poll() is not None, 30, "sending")
        service.send_signal(signal.SIGTERM)
        stdout, stderr = service.communicate(timeout=30)
    assert service.returncode == 0, stderr
    assert "Delivery:" in stdout
    assert "INFO stopping" in stderr
    assert "Traceback" not in stderr
    # The companions (leadership, the web server) end on the stop before the worker's last sends: not an error.
    assert " ERROR " not in stderr, stderr

    rows = outbox_rows(db, "c")
    counts = Counter(r.status for r in rows.values())
    assert set(counts) <= {"sent", "queued"}, counts  # nothing in a stopped worker's hands
    assert 0 < counts["sent"] < total
    received = smtp.handler.received()
    assert {e for e, r in rows.items() if r.status == "sent"} == set(received), "sent exactly what was recorded"
    assert max(received.values()) == 1

    # The next run delivers the rest: everyone exactly once.
    again = subprocess.run(
        serve_command(config, "--once"), env=cli_environment(), capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0, again.stderr
    assert smtp.handler.received() == Counter(emails)
    assert statuses(db, "c") == {"sent": total}
    assert get_campaign(db, "c").campaign.status is CampaignStatus.SENT


def test_serve_once_fires_what_is_due_delivers_and_exits(
    db: Database,
    tmp_path: Path,
    pipelining_smtp: Sink,  # noqa: F811 (the fixture)
) -> None:
    smtp = pipelining_smtp
    config = relay_config(tmp_path, db, smtp, concurrency=2)
    settings = load_settings(config, environ={})
    emails = prepare(db, tmp_path, 3)
    launch(db, settings, KEY, "c")
    add_wave(db, "c", "now", send_at=datetime.now(UTC) - timedelta(minutes=1))
    add_wave(db, "c", "later", offset=timedelta(hours=-1))
    result = CliRunner(env={"CAMPAIGN_SECRET_KEY": KEY.decode()}).invoke(
        cli, ["--config", str(config), "serve", "--once"]
    )
    assert result.exit_code == 0, result.output
    assert "Fired c/now: 3 messages queued\n" in result.output
    assert "Next wave: c/later at " in result.output
    assert "Delivery: 6 sent" in result.output
    assert smtp.handler.received() == Counter(emails * 2)
    assert wave_status(db, "c", "later") is WaveStatus.PENDING

    # Newcomers on the list: the invitation is topped up, and said so (one of them is suppressed).
    join_list(db, tmp_path, 2, suppressed=1)
    result = CliRunner(env={"CAMPAIGN_SECRET_KEY": KEY.decode()}).invoke(
        cli, ["--config", str(config), "serve", "--once"]
    )
    assert result.exit_code == 0, result.output
    assert "Invited 1 who joined the list since: c/invitation, 1 message queued, 1 suppressed" in result.output
    assert "Fired" not in result.output
    assert "Delivery: 1 sent" in result.output


@pytest.mark.parametrize("once", [False, True], ids=["serve", "serve --once"])
def test_sigterm_under_a_low_rate_limit_stops_within_seconds(
    db: Database,
    tmp_path: Path,
    pipelining_smtp: Sink,  # noqa: F811 (the fixture)
    once: bool,
) -> None:
    """Senders waiting for the rate limit (here up to 6 s each) give their messages back on SIGTERM instead of
    sending them; ``serve --once`` stops as gracefully as ``serve``."""
    smtp = pipelining_smtp
    total = 20
    extra = "[delivery]\nbatch_size = 10\nrate_per_second = 0.5\n"
    config = relay_config(tmp_path, db, smtp, concurrency=4, extra=extra)
    emails = prepare(db, tmp_path, total)
    launch(db, load_settings(config, environ={}), KEY, "c")
    with serving(config, *(["--once"] if once else [])) as service:
        wait_for(lambda: len(smtp.handler.delivered) >= 1 or service.poll() is not None, 30, "sending")
        assert service.poll() is None, service.communicate()
        time.sleep(0.2)  # every sender holds a message now, waiting for the limiter
        signalled = time.monotonic()
        service.send_signal(signal.SIGTERM)
        stdout, stderr = service.communicate(timeout=30)
        took = time.monotonic() - signalled
    assert service.returncode == 0, stderr
    assert took < 3, f"SIGTERM took {took:.1f} s"
    assert "Delivery:" in stdout
    assert "Traceback" not in stderr

    rows = outbox_rows(db, "c")
    counts = Counter(r.status for r in rows.values())
    assert set(counts) == {"sent", "queued"}, counts  # nothing left leased
    received = smtp.handler.received()
    assert {e for e, r in rows.items() if r.status == "sent"} == set(received)
    assert max(received.values()) == 1
    assert all(r.attempts == 0 for r in rows.values() if r.status == "queued"), "a given-back message was tried"
    assert sorted(rows) == sorted(emails)


def test_a_second_sigterm_stops_at_once_and_says_so(
    db: Database,
    tmp_path: Path,
    pipelining_smtp: Sink,  # noqa: F811 (the fixture)
) -> None:
    """The first SIGTERM waits for the messages on the wire (here 8 s each); the second does not: the rest are
    released, those on the wire are left to their leases, and the exit status and one line say so."""
    smtp = pipelining_smtp
    config = relay_config(tmp_path, db, smtp, concurrency=2, extra="[delivery]\nbatch_size = 10\nlease_seconds = 300\n")
    prepare(db, tmp_path, 10)
    launch(db, load_settings(config, environ={}), KEY, "c")
    smtp.handler.delay = 8
    with serving(config) as service:
        wait_for(lambda: sum(smtp.handler.data_attempts.values()) >= 2 or service.poll() is not None, 30, "sending")
        assert service.poll() is None, service.communicate()
        service.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert service.poll() is None, "the first SIGTERM waits for the messages being sent"
        signalled = time.monotonic()
        service.send_signal(signal.SIGTERM)
        _, stderr = service.communicate(timeout=30)
        took = time.monotonic() - signalled
    assert service.returncode == 1, stderr
    assert took < 3, f"the second SIGTERM took {took:.1f} s"
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert errors == [
        "Error: stopped at once on a second signal: 2 messages being sent are left leased, to go out again after "
        "300 s (delivery.lease_seconds; a recipient may get it twice)"
    ], stderr
    assert "WARNING stopping at once" in stderr

    counts = Counter(r.status for r in outbox_rows(db, "c").values())
    assert counts == {"sending": 2, "queued": 8}, counts  # the rest released; nothing sent
    assert smtp.handler.received() == Counter()


def test_the_librarys_warnings_reach_the_services_output() -> None:
    """A wave that fails to fire is logged by campaign.services.scheduling, not by the service's own logger: it
    must still reach the service's stream (a journal, a terminal), not only Python's last-resort handler."""
    stream = io.StringIO()
    configure_output(stream, terminal=False)
    logging.getLogger("campaign.services.scheduling").error("wave failed to fire campaign=c wave=w")
    logging.getLogger(LOGGER_NAME).info("wave fired campaign=c wave=v")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "ERROR wave failed to fire campaign=c wave=w" in lines[0]
    assert "INFO wave fired campaign=c wave=v" in lines[1]
