"""Benchmark: delivery workers on PostgreSQL (1, 2, 4 ``campaign worker`` processes sharing one queue), beside the
one-process SQLite figure, and what limits a fleet of them.

    python bench/scale.py [--messages N] [--repeat R] [--workers W [W ...]] [--concurrency C] [--admin-dsn DSN]
                          [--show-statements]

Needs a PostgreSQL server (default ``postgresql://postgres@127.0.0.1:5432/postgres``, ``--admin-dsn``; a role that
may create databases) and Postfix's ``smtp-sink`` (installed as bench/send.py does, whose helpers this reuses).

Setup, not timed: a fresh PostgreSQL database (a unique name, dropped at the end) with the current schema, ``N``
generated contacts (default 20,000; bench/send.py's generator) imported with
:func:`~campaign.services.contact_import.import_contacts`, the sample event a month ahead, a campaign created and
launched (N messages queued). It is kept as a template: each measurement runs on a fresh copy (``CREATE DATABASE
... TEMPLATE``, dropped afterwards). The same data in a SQLite file is the reference, copied afresh likewise.

One ``smtp-sink`` on a fresh port receives everything; its delivery counter must grow by exactly N in each
measurement, and it must stay the only listener on its port (see bench/send.py).

Then, in each of ``--repeat`` rounds (default 3; medians; the measurements interleaved so that the shared
machine's drift hits them alike):

* PostgreSQL, for each ``--workers`` count W (default 1 2 4): W ``campaign worker`` processes (the CLI, as staff
  run them; ``[smtp] concurrency`` connections each, default the shipped 10) started at once; the time runs from
  the first start until every message row is ``sent`` (the database polled every 0.1 s from a connection to it),
  then the workers get SIGTERM and must exit 0. Meanwhile the server's CPU time for our database is sampled:
  utime + stime from ``/proc/<pid>/stat`` of every client backend ``pg_stat_activity`` lists for it (our polling
  connection excluded), each backend's last sample (a new backend starts at 0; they are sampled every 0.1 s, so a
  backend that ends between samples loses at most that much). The workers' own CPU time is read from ``/proc``
  before SIGTERM.
* SQLite, one process: ``campaign send`` (the CLI's one-process foreground delivery, the same
  :func:`~campaign.services.dispatch.send_due` bench/send.py times for its one-process figure), timed the same
  way: from its start until every row is ``sent`` (polled), then it must exit 0.

Msg/s for each, the scaling ratios (W workers / 1 worker) and PostgreSQL-1-worker / SQLite (target >= 0.8).

What limits a fleet (not timed, once): one worker on a fresh PostgreSQL copy, run by this script in a child
process that is ``campaign worker`` itself (the CLI's entry point, called in-process) with a SQLAlchemy
``before_cursor_execute`` listener on every engine, and an ``after_cursor_execute`` one for the time from sending
each statement to having its result (the server's work and the wire, while the worker's event loop waits):
``pg_stat_statements`` is not loaded on the test server, and the server is not restarted to load it. Every
statement is classified by its SQL text:

* claim: the claim of a batch (``UPDATE messages ... status = 'sending'`` with its ``FOR UPDATE SKIP LOCKED``
  subquery: abandoned messages first, then due ones) and its suppression check of what it leased;
* record: result writes (messages marked sent/failed/deferred, or given back, in groups);
* status check: the campaigns' status read with every result commit (a pause or cancellation taken from the
  database), counted apart because it rides on result commits, not on batches;
* heartbeat: the worker's registry row and, in the same statement on PostgreSQL, its lease renewal;
* rate limit: statements on a rate-limit table (none while the limits are per process);
* completion: campaigns and waves marked done (``UPDATE campaigns``/``waves`` ... ``WHERE status = ...``);
* other: everything else (the reads rendering needs: contacts of a batch, the event's sequence, waves, links;
  the schema check at start).

Round trips are statements plus each transaction's ``BEGIN`` and ``COMMIT`` (psycopg sends ``BEGIN`` before a
transaction's first statement), counted for the kind of the transaction's first statement (a status check aside);
an ``executemany`` counts as one (psycopg 3 pipelines it). The coordination statements per message are claim +
heartbeat + rate limit + completion (target <= 0.01), the status checks shown beside them; result writes are the
work itself and are reported separately, with how many messages each carries. The projection: messages/s one
PostgreSQL core can coordinate = 1000 / (server CPU seconds per 1,000 messages in the one-worker runs, every
statement included: claims, results, reads); what one PostgreSQL server of this machine's cores coordinates =
cores x 1000 / (the highest server CPU per 1,000 messages of the runs with at most one worker per core, so the
contention between workers' backends is in it; more workers than cores measure the workers crowding the shared
cores, not the server; target >= 50,000). Both are printed; the target is the server's. Msg/s "after start-up"
(from the first look that saw a message sent) are shown too: each process takes about a second to import before
it sends.

Prints each figure with what it means and ends with one JSON line of all figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from send import KEY, SYSTEM_PATH, Sink, ensure_postfix_tools, future_event, generate_contacts

from campaign.config import SmtpSettings, load_settings
from campaign.services.campaigns import create_campaign
from campaign.services.contact_import import import_contacts
from campaign.services.database import init_database
from campaign.services.events import add_event
from campaign.services.lifecycle import launch
from campaign.store.engine import Database

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates" / "email"
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
LIST_NAME = "bench"
CAMPAIGN_NAME = "bench-scale"
POLL_SECONDS = 0.1
RUN_TIMEOUT = 300.0  # seconds a measurement may take before it is called stuck
TARGET_PG_VS_SQLITE = 0.8
TARGET_COORDINATION_PER_MESSAGE = 0.01
TARGET_SERVER_MSG_PER_S = 50_000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
COUNTING_FLAG = "--counting-worker"  # the child that runs `campaign worker` with a statement counter
KINDS = ("claim", "record", "status check", "heartbeat", "rate limit", "completion", "other")
COORDINATION = ("claim", "heartbeat", "rate limit", "completion")


# --- the databases -------------------------------------------------------------------------------------------


def admin_connect(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True, connect_timeout=5)


def database_dsn(admin_dsn: str, name: str) -> str:
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


def sqlalchemy_url(dsn: str) -> str:
    return dsn.replace("postgresql://", "postgresql+psycopg://", 1)


def write_config(path: Path, url: str, data: Path, port: int, concurrency: int) -> Path:
    """A relay config for ``url`` into the sink on ``port``; delivery settings as shipped."""
    path.write_text(
        f'[database]\nurl = "{url}"\n\n'
        f'[paths]\ndata = "{data}"\ntemplates = "{TEMPLATES}"\n\n'
        f'[mail]\nfrom_address = "invitations@ilo.example.org"\nfrom_name = "ILO Events"\n'
        f'domain = "ilo.example.org"\nunsubscribe_mailto = "unsubscribe@ilo.example.org"\n\n'
        f'[smtp]\nmode = "relay"\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\nconcurrency = {concurrency}\n',
        encoding="utf-8",
    )
    return path


def populate(config: Path, csv_path: Path, count: int) -> None:
    """Schema, contacts, the event a month ahead, a campaign launched: ``count`` messages queued."""
    settings = load_settings(config, environ={})
    db = Database(settings.database_url)
    try:
        init_database(db)
        report = import_contacts(db, csv_path, LIST_NAME)
        assert report.imported == count, f"imported {report.imported} of {count} contacts"
        event = add_event(db, future_event())
        create_campaign(db, event_ref=event.slug, list_name=LIST_NAME, name=CAMPAIGN_NAME)
        launched = launch(db, settings, KEY, CAMPAIGN_NAME)
        assert launched.queued == count, f"launch queued {launched.queued} of {count}"
    finally:
        db.dispose()


def cli_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env["CAMPAIGN_SECRET_KEY"] = KEY.decode()
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', SYSTEM_PATH)}"
    return env


def campaign_command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "campaign", "--config", str(config), *args]


# --- the server's CPU ----------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of process ``pid`` in seconds, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of proc(5)


@dataclass
class ServerCpu:
    """CPU seconds of the client backends serving one database, each backend's latest sample."""

    seen: dict[int, float] = field(default_factory=dict)
    samples: int = 0

    def sample(self, conn: psycopg.Connection[Any], database: str) -> None:
        pids = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend' "
            "AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
        for (pid,) in pids:
            seconds = cpu_seconds(int(pid))
            if seconds is not None:
                self.seen[int(pid)] = max(seconds, self.seen.get(int(pid), 0.0))
        self.samples += 1

    @property
    def total(self) -> float:
        return sum(self.seen.values())


# --- the measurements ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    seconds: float
    server_cpu: float  # PostgreSQL backends (0 on SQLite)
    client_cpu: float  # the worker processes
    backends: int
    steady: float  # msg/s from the first look that saw a message sent to the last: without the start-up


def steady_rate(first: tuple[float, int] | None, end: float, count: int) -> float:
    """Msg/s after start-up: from the first look that saw messages sent (time, how many) to the end."""
    if first is None or end <= first[0]:
        return 0.0
    return (count - first[1]) / (end - first[0])


def sent_count(conn: Any) -> int:
    return int(conn.execute("SELECT count(*) FROM messages WHERE status = 'sent'").fetchone()[0])


def stop(process: subprocess.Popen[bytes], what: str) -> None:
    """SIGTERM (finish what is in hand, then exit), which must end it with status 0."""
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        raise RuntimeError(f"{what} did not stop within 60 s of SIGTERM") from None
    if process.returncode != 0:
        raise RuntimeError(f"{what} exited {process.returncode}: {err.decode(errors='replace')[-2000:]}")


def time_postgres(
    admin: psycopg.Connection[Any],
    admin_dsn: str,
    template: str,
    work: Path,
    sink: Sink,
    workers: int,
    count: int,
    concurrency: int,
) -> Run:
    """Seconds for ``workers`` ``campaign worker`` processes to send every message of a fresh copy."""
    name = f"{template.removesuffix('_tpl')}_w{workers}"
    admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    config = write_config(
        work / f"pg-w{workers}.toml",
        sqlalchemy_url(database_dsn(admin_dsn, name)),
        work / "data",
        sink.port,
        concurrency,
    )
    before, cpu = sink.count, ServerCpu()
    started_processes: list[subprocess.Popen[bytes]] = []
    try:
        with psycopg.connect(database_dsn(admin_dsn, name), autocommit=True) as conn:
            started = time.perf_counter()
            for n in range(workers):
                started_processes.append(
                    subprocess.Popen(
                        campaign_command(config, "worker", "--name", f"scale-{workers}-{n}"),
                        env=cli_environment(),
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                    )
                )
            first: tuple[float, int] | None = None
            while (sent := sent_count(conn)) < count:
                if sent and first is None:
                    first = (time.perf_counter(), sent)
                cpu.sample(conn, name)
                for process in started_processes:
                    if process.poll() is not None:
                        raise RuntimeError(f"a worker exited early ({process.returncode}) with {sent:,} sent")
                if time.perf_counter() - started > RUN_TIMEOUT:
                    raise RuntimeError(f"W={workers}: only {sent:,} of {count:,} sent after {RUN_TIMEOUT:.0f} s")
                time.sleep(POLL_SECONDS)
            seconds = time.perf_counter() - started
            cpu.sample(conn, name)
            client = sum(cpu_seconds(p.pid) or 0.0 for p in started_processes)
            for n, process in enumerate(started_processes):
                stop(process, f"worker {n} of {workers}")
            rows: dict[str, int] = dict(
                conn.execute("SELECT status, count(*) FROM messages GROUP BY status").fetchall()
            )
        assert rows == {"sent": count}, f"W={workers}: message rows are {rows}, expected {count:,} sent"
        sink.check(before, count, f"PostgreSQL W={workers}")
        return Run(seconds, cpu.total, client, len(cpu.seen), steady_rate(first, started + seconds, count))
    finally:
        for process in started_processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def time_sqlite(template: Path, work: Path, sink: Sink, count: int, concurrency: int) -> Run:
    """Seconds for ``campaign send`` (one process) to send every message of a fresh copy of the SQLite file."""
    db_path = work / "run.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(template, db_path)
    config = write_config(work / "sqlite-run.toml", f"sqlite:///{db_path}", work / "data", sink.port, concurrency)
    before = sink.count
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        started = time.perf_counter()
        process = subprocess.Popen(
            campaign_command(config, "send"), env=cli_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        first: tuple[float, int] | None = None
        while (sent := sent_count(conn)) < count:
            if sent and first is None:
                first = (time.perf_counter(), sent)
            conn.rollback()  # a fresh snapshot at each look
            if process.poll() is not None and sent_count(conn) < count:
                raise RuntimeError(f"campaign send exited ({process.returncode}) with {sent:,} sent")
            if time.perf_counter() - started > RUN_TIMEOUT:
                raise RuntimeError(f"SQLite: only {sent:,} of {count:,} sent after {RUN_TIMEOUT:.0f} s")
            time.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - started
        client = cpu_seconds(process.pid) or 0.0
        _, err = process.communicate(timeout=120)
        if process.returncode != 0:
            raise RuntimeError(f"campaign send exited {process.returncode}: {err.decode(errors='replace')[-2000:]}")
        conn.rollback()
        rows: dict[str, int] = dict(conn.execute("SELECT status, count(*) FROM messages GROUP BY status").fetchall())
    finally:
        conn.close()
    assert rows == {"sent": count}, f"SQLite: message rows are {rows}, expected {count:,} sent"
    sink.check(before, count, "SQLite")
    return Run(seconds, 0.0, client, 0, steady_rate(first, started + seconds, count))


# --- counting statements ---------------------------------------------------------------------------------------


_WRITTEN = re.compile(r"^(?:with .*?\)\s*)?(?:insert into|update|delete from)\s+(\w+)")


def classify(sql: str) -> str:
    """The kind of a statement the delivery worker sends (see the module doc)."""
    text = " ".join(sql.split()).lower()
    written = _WRITTEN.match(text)
    table = written.group(1) if written else ""
    assignments = text.split(" where ", 1)[0]
    if re.search(r"\b(insert into|update) workers\b", text):
        return "heartbeat"  # on PostgreSQL the lease renewal rides in the same statement (a CTE)
    if re.search(r"rate|bucket|throttle", table) or re.search(r"\bfrom \w*(rate|bucket|throttle)", text):
        return "rate limit"
    if table in ("campaigns", "waves"):
        return "completion"
    if text.startswith("select campaigns.id, campaigns.status from campaigns"):
        return "status check"
    if table == "messages":
        if "skip locked" in text or "attempts + " in assignments or "suppress" in assignments:
            return "claim"
        if "attempts - " in assignments and "returning" in text:
            return "claim"  # the claim's own suppression check: leased messages suppressed meanwhile
        if "lease_expires_at" in assignments and "status" not in assignments:
            return "heartbeat"  # a lease renewal alone (SQLite's form)
        return "record"
    return "other"


def counting_worker(config: str, out: str) -> None:
    """Runs ``campaign worker`` in this process with every statement counted; writes the counts to ``out``."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from campaign.cli import cli

    statements: Counter[str] = Counter()
    round_trips: Counter[str] = Counter()
    latency: Counter[str] = Counter()  # seconds from sending a statement to having its result, by kind
    texts: Counter[str] = Counter()
    transactions: Counter[str] = Counter()
    # Per connection, the kinds of the statements of its open transaction: its BEGIN and COMMIT count as round
    # trips of the transaction's kind (its first statement's, a pause check riding along aside).
    open_transactions: dict[int, list[str]] = {}

    def on_execute(conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, many: bool) -> None:
        kind = classify(statement)
        statements[kind] += 1
        round_trips[kind] += 1
        kinds = open_transactions.get(id(conn))
        if kinds is not None:
            kinds.append(kind)
        texts[f"{kind:<12} " + " ".join(statement.split())[:150] + (" [many]" if many else "")] += 1
        conn.info["scale_sent"] = (kind, time.perf_counter())

    def after_execute(conn: Any, *_args: Any) -> None:
        kind, sent_at = conn.info.pop("scale_sent", ("other", time.perf_counter()))
        latency[kind] += time.perf_counter() - sent_at

    def on_begin(conn: Any) -> None:
        transactions["begin"] += 1
        open_transactions[id(conn)] = []

    def on_end(conn: Any, name: str) -> None:
        transactions[name] += 1
        kinds = open_transactions.pop(id(conn), None)
        if kinds:  # psycopg sent BEGIN before the first statement; with none it sends neither BEGIN nor COMMIT
            kind = next((k for k in kinds if k != "status check"), kinds[0])
            round_trips[kind] += 2

    event.listen(Engine, "before_cursor_execute", on_execute)
    event.listen(Engine, "after_cursor_execute", after_execute)
    event.listen(Engine, "begin", on_begin)
    event.listen(Engine, "commit", lambda conn: on_end(conn, "commit"))
    event.listen(Engine, "rollback", lambda conn: on_end(conn, "rollback"))
    try:
        cli.main(["--config", config, "worker", "--name", "scale-counted"], standalone_mode=False)
    finally:
        Path(out).write_text(
            json.dumps(
                {
                    "statements": statements,
                    "round_trips": round_trips,
                    "latency": latency,
                    "transactions": transactions,
                    "texts": texts.most_common(40),
                }
            )
        )


def count_statements(
    admin: psycopg.Connection[Any],
    admin_dsn: str,
    template: str,
    work: Path,
    sink: Sink,
    count: int,
    concurrency: int,
) -> tuple[dict[str, Any], Run]:
    """One worker (the counting child) on a fresh copy: its statements by kind, and the run's CPU figures."""
    name = f"{template.removesuffix('_tpl')}_counted"
    admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    config = write_config(
        work / "pg-counted.toml", sqlalchemy_url(database_dsn(admin_dsn, name)), work / "data", sink.port, concurrency
    )
    out = work / "counted.json"
    before, cpu = sink.count, ServerCpu()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), COUNTING_FLAG, str(config), str(out)],
        env=cli_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with psycopg.connect(database_dsn(admin_dsn, name), autocommit=True) as conn:
            started = time.perf_counter()
            while (sent := sent_count(conn)) < count:
                cpu.sample(conn, name)
                if process.poll() is not None:
                    raise RuntimeError(f"the counting worker exited early ({process.returncode}) with {sent:,} sent")
                if time.perf_counter() - started > RUN_TIMEOUT:
                    raise RuntimeError(f"counting run: only {sent:,} of {count:,} sent")
                time.sleep(POLL_SECONDS)
            seconds = time.perf_counter() - started
            cpu.sample(conn, name)
            client = cpu_seconds(process.pid) or 0.0
            stop(process, "the counting worker")
        sink.check(before, count, "counting run")
        return json.loads(out.read_text()), Run(seconds, cpu.total, client, len(cpu.seen), 0.0)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the report --------------------------------------------------------------------------------------------


def spread(values: list[float]) -> str:
    return f"median of {len(values)}; min {min(values):,.0f}, max {max(values):,.0f}"


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == COUNTING_FLAG:
        counting_worker(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000, help="invitations to send (default 20,000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each measurement (default 3)")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2, 4], help="worker process counts to try (default 1 2 4)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=SmtpSettings().concurrency,
        help="[smtp] concurrency: connections per worker (default: the shipped one)",
    )
    parser.add_argument(
        "--show-statements", action="store_true", help="also list the counted statements' texts with their kinds"
    )
    parser.add_argument("--admin-dsn", default=ADMIN_DSN, help=f"PostgreSQL to create databases in ({ADMIN_DSN})")
    args = parser.parse_args()
    if args.messages < 1 or args.repeat < 1 or min(args.workers) < 1 or args.concurrency < 1:
        parser.error("--messages, --repeat, --workers and --concurrency must be at least 1")
    counts: list[int] = sorted(set(args.workers) | {1})  # one worker: the reference of every ratio
    n = args.messages

    sink_command, _source = ensure_postfix_tools()
    load_before = os.getloadavg()[0]
    try:
        admin = admin_connect(args.admin_dsn)
    except psycopg.OperationalError as exc:
        sys.exit(f"bench/scale.py needs PostgreSQL at {args.admin_dsn} (--admin-dsn): {exc}")
    template = f"campaign_bench_scale_{uuid.uuid4().hex[:10]}_tpl"
    work = Path(tempfile.mkdtemp(prefix="campaign-bench-scale-"))
    try:
        csv_path = work / "contacts.csv"
        generate_contacts(csv_path, n)
        started = time.perf_counter()
        admin.execute(f'CREATE DATABASE "{template}"')
        pg_url = sqlalchemy_url(database_dsn(args.admin_dsn, template))
        populate(write_config(work / "pg-template.toml", pg_url, work / "data", 25, args.concurrency), csv_path, n)
        sqlite_template = work / "template.db"
        sqlite_url = f"sqlite:///{sqlite_template}"
        populate(
            write_config(work / "sqlite-template.toml", sqlite_url, work / "data", 25, args.concurrency), csv_path, n
        )
        print(
            f"setup: {n:,} contacts, the event a month ahead, a campaign launched ({n:,} queued) on PostgreSQL "
            f"(template {template}) and SQLite in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        with Sink(sink_command, work) as sink:
            print(f"smtp-sink on 127.0.0.1:{sink.port} (sole listener, counter -c)", flush=True)
            pg: dict[int, list[Run]] = {w: [] for w in counts}
            lite: list[Run] = []
            for round_ in range(1, args.repeat + 1):
                line = []
                for w in counts:
                    run = time_postgres(admin, args.admin_dsn, template, work, sink, w, n, args.concurrency)
                    pg[w].append(run)
                    line.append(
                        f"PostgreSQL W={w} {n / run.seconds:,.0f} (server CPU {run.server_cpu:.2f} s, "
                        f"{run.backends} backends)"
                    )
                lite.append(time_sqlite(sqlite_template, work, sink, n, args.concurrency))
                print(
                    f"round {round_}/{args.repeat}: {', '.join(line)}, SQLite {n / lite[-1].seconds:,.0f} msg/s",
                    flush=True,
                )
            counted, counted_run = count_statements(admin, args.admin_dsn, template, work, sink, n, args.concurrency)
            total = sink.count
        report(args, counts, pg, lite, counted, counted_run, total, (load_before, os.getloadavg()[0]))
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
        admin.close()
        shutil.rmtree(work, ignore_errors=True)


def report(
    args: argparse.Namespace,
    counts: list[int],
    pg: dict[int, list[Run]],
    lite: list[Run],
    counted: dict[str, Any],
    counted_run: Run,
    sink_total: int,
    load: tuple[float, float],
) -> None:
    n = args.messages
    per_k = 1000 / n
    rate = {w: [n / r.seconds for r in runs] for w, runs in pg.items()}
    med = {w: statistics.median(v) for w, v in rate.items()}
    steady = {w: statistics.median(r.steady for r in runs) for w, runs in pg.items()}
    lite_rates = [n / r.seconds for r in lite]
    lite_med, lite_steady = statistics.median(lite_rates), statistics.median(r.steady for r in lite)
    pg_cpu_k = {w: statistics.median(r.server_cpu for r in runs) * per_k for w, runs in pg.items()}
    client_cpu_k = {w: statistics.median(r.client_cpu for r in runs) * per_k for w, runs in pg.items()}
    lite_cpu_k = statistics.median(r.client_cpu for r in lite) * per_k
    vs_sqlite = med[1] / lite_med
    for w in counts:
        scale = f", {med[w] / med[1]:.2f}x one worker" if w != 1 else ""
        print(
            f"PostgreSQL W={w}: {med[w]:>7,.0f} msg/s  {w} `campaign worker` process(es), {args.concurrency} "
            f"connections each, from start to every message sent ({spread(rate[w])}){scale}; "
            f"{steady[w]:,.0f} msg/s after start-up; server CPU {pg_cpu_k[w]:.3f} s and workers' CPU "
            f"{client_cpu_k[w]:.3f} s per 1,000 messages"
        )
    print(
        f"SQLite:          {lite_med:>7,.0f} msg/s  one `campaign send` process, from start to every message sent "
        f"({spread(lite_rates)}); {lite_steady:,.0f} msg/s after start-up; its CPU {lite_cpu_k:.3f} s per 1,000 "
        "messages"
    )
    print(
        f"PostgreSQL one worker / SQLite one process: {vs_sqlite:.2f} (target >= {TARGET_PG_VS_SQLITE}); after "
        f"start-up {steady[1] / lite_steady:.2f}"
    )

    statements = Counter({kind: int(counted["statements"].get(kind, 0)) for kind in KINDS})
    trips = Counter({kind: int(counted["round_trips"].get(kind, 0)) for kind in KINDS})
    waited = {kind: float(counted["latency"].get(kind, 0.0)) for kind in KINDS}
    tx = counted["transactions"]
    total_statements, total_trips = sum(statements.values()), sum(trips.values())
    coordination = sum(statements[k] for k in COORDINATION)
    coordination_per_message = coordination / n
    coordination_trips = sum(trips[k] for k in COORDINATION)
    if args.show_statements:
        for text, times in counted["texts"]:
            print(f"  {times:>6,} {text}")
    print(
        f"per 1,000 messages, one worker ({n:,} messages; counted at the client: statements, and round trips = "
        "statements + the BEGIN and COMMIT of their transactions; ms = time from sending each statement to having "
        "its result, the server's work and the wire):"
    )
    for kind in KINDS:
        print(
            f"  {kind:<12} {statements[kind] * per_k:>8.2f} statements {trips[kind] * per_k:>8.2f} round trips "
            f"{waited[kind] * 1000 * per_k:>8.1f} ms"
        )
    print(
        f"  all          {total_statements * per_k:>8.2f} statements {total_trips * per_k:>8.2f} round trips "
        f"({int(tx.get('commit', 0)) * per_k:.2f} transactions committed)"
    )
    print(
        f"coordination (claim + heartbeat + rate limit + completion statements): {coordination_per_message:.4f} a "
        f"message (target <= {TARGET_COORDINATION_PER_MESSAGE}), {coordination_trips / n:.4f} round trips; the "
        f"campaign status read with every result commit (a pause taken from the database) adds "
        f"{statements['status check'] / n:.4f}; result writes {statements['record'] / n:.4f} statements "
        f"({n / max(statements['record'], 1):.1f} messages each)"
    )
    cpu_k = pg_cpu_k[1]
    core_rate = 1000 / cpu_k if cpu_k > 0 else float("inf")
    counted_cpu_k = counted_run.server_cpu * per_k
    print(
        f"PostgreSQL server CPU: {cpu_k:.3f} s per 1,000 messages with one worker (median of the timed runs; "
        f"{counted_cpu_k:.3f} s in the counting run), every statement included: one server core coordinates "
        f"{core_rate:,.0f} msg/s at this cost; "
        f"{1e6 * cpu_k / max(total_trips * per_k, 1):.0f} µs of server CPU a round trip"
    )
    cores = os.cpu_count() or 1
    per_core_runs = [w for w in counts if w <= cores]
    costliest = max(per_core_runs, key=lambda w: pg_cpu_k[w])
    server_rate = cores * 1000 / pg_cpu_k[costliest] if pg_cpu_k[costliest] > 0 else float("inf")
    print(
        f"one PostgreSQL server of this machine's {cores} cores coordinates {server_rate:,.0f} msg/s: {cores} x "
        f"1000 / {pg_cpu_k[costliest]:.3f} s, the server CPU per 1,000 messages with {costliest} worker(s), the "
        f"costliest of the runs with at most one worker per core (target >= {TARGET_SERVER_MSG_PER_S:,})"
    )
    print(
        f"this machine: {cores} cores (load average {load[0]:.2f} before, {load[1]:.2f} after); a worker takes "
        f"{client_cpu_k[1]:.3f} s of CPU per 1,000 messages and the server {cpu_k:.3f} s, so {cores} cores cap "
        f"one machine near {1000 * cores / (client_cpu_k[1] + cpu_k):,.0f} msg/s whatever the number of workers"
    )
    met_ratio = vs_sqlite >= TARGET_PG_VS_SQLITE
    met_coord = coordination_per_message <= TARGET_COORDINATION_PER_MESSAGE
    met_core = core_rate >= TARGET_SERVER_MSG_PER_S
    met_server = server_rate >= TARGET_SERVER_MSG_PER_S
    figures: dict[str, Any] = {
        "messages": n,
        "repeat": args.repeat,
        "concurrency": args.concurrency,
        "cores": cores,
        "load_average": [round(v, 2) for v in load],
        **{f"pg_w{w}_msg_per_s": round(med[w]) for w in counts},
        **{f"scaling_w{w}_vs_w1": round(med[w] / med[1], 3) for w in counts if w != 1},
        "sqlite_msg_per_s": round(lite_med),
        "pg_w1_vs_sqlite": round(vs_sqlite, 3),
        **{f"pg_w{w}_steady_msg_per_s": round(steady[w]) for w in counts},
        "sqlite_steady_msg_per_s": round(lite_steady),
        "pg_w1_vs_sqlite_steady": round(steady[1] / lite_steady, 3) if lite_steady else None,
        **{f"pg_server_cpu_s_per_1000_w{w}": round(pg_cpu_k[w], 4) for w in counts},
        **{f"worker_cpu_s_per_1000_w{w}": round(client_cpu_k[w], 4) for w in counts},
        "sqlite_cpu_s_per_1000": round(lite_cpu_k, 4),
        "statements_per_1000": {kind: round(statements[kind] * per_k, 2) for kind in KINDS},
        "round_trips_per_1000": {kind: round(trips[kind] * per_k, 2) for kind in KINDS},
        "statements_per_1000_all": round(total_statements * per_k, 2),
        "round_trips_per_1000_all": round(total_trips * per_k, 2),
        "statement_ms_per_1000": {kind: round(waited[kind] * 1000 * per_k, 1) for kind in KINDS},
        "coordination_statements_per_message": round(coordination_per_message, 5),
        "coordination_round_trips_per_message": round(coordination_trips / n, 5),
        "status_checks_per_message": round(statements["status check"] / n, 5),
        "record_statements_per_message": round(statements["record"] / n, 5),
        "counting_run_pg_server_cpu_s_per_1000": round(counted_cpu_k, 4),
        "pg_core_msg_per_s": round(core_rate),
        "pg_server_msg_per_s": round(server_rate),
        "pg_server_cores": cores,
        "target_pg_vs_sqlite": TARGET_PG_VS_SQLITE,
        "target_coordination_per_message": TARGET_COORDINATION_PER_MESSAGE,
        "target_server_msg_per_s": TARGET_SERVER_MSG_PER_S,
        "pg_vs_sqlite_met": met_ratio,
        "coordination_met": met_coord,
        "core_projection_met": met_core,
        "server_projection_met": met_server,
        "target_met": met_ratio and met_coord and met_server,
        "sink_total": sink_total,
        "rounds": {
            **{f"pg_w{w}": [round(v) for v in rate[w]] for w in counts},
            "sqlite": [round(v) for v in lite_rates],
        },
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
