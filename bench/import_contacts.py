"""Benchmark: importing a large contacts CSV.

    python bench/import_contacts.py [--rows N] [--batch-size B] [--keep DIR]

Generates a realistic CSV of ``N`` fictional contacts (default 1,000,000) in a temporary directory, streamed
to disk, then, each in a fresh child process so that peak memory is the measured code's own (the CSV
generation in this process does not count; the import's writer process does: the memory of a child and its
own children is sampled every quarter second, as the sum of their PSS, and of their RSS):

* imports it with :func:`campaign.services.contact_import.import_contacts` into a fresh SQLite database
  (``--batch-size`` passes a batch size; without it the function's default is used);
* the reference, measured in the same run: the same file through ``csv.DictReader`` and raw ``sqlite3``
  ``executemany`` into a plain table, no validation, same batch size: roughly the fastest this machine moves
  these rows from a CSV into SQLite from Python;
* the storage floor of one process, also without validation: raw ``sqlite3`` into the real schema (the
  unique ``email_key`` index, list membership, the engine's pragmas), doing an import's SQL work per batch
  (look the keys up, insert the new contacts, add them to the list) after reading each batch. One process
  doing both cannot beat it without changing the schema or the SQLite settings; the import beats it by
  reading and validating in one process while a second one writes.

Prints the rates, ratios and the import's peak memory, and ends with one JSON line of all figures
(``peak_rss_mb`` is the summed PSS: the memory the import's processes take between them).
Targets for 1,000,000 rows: >= 50,000 rows/s and peak memory <= 250 MB.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGET_ROWS_PER_S = 50_000
TARGET_PEAK_RSS_MB = 250
SEED = 20240611

COLUMNS = ["email", "name", "first_name", "last_name", "timezone", "country", "locale", "organisation", "job_title"]

FIRST_NAMES = [
    "Ana", "María", "José", "Juan", "Luis", "Carmen", "Sofía", "Mateo", "Lucía", "Diego", "Maria", "John",
    "Jane", "Robert", "Emily", "Michael", "Sarah", "David", "Laura", "James", "Olivia", "Noah", "Chloé",
    "Léa", "Hugo", "Zoë", "François", "Jürgen", "Björn", "Søren", "Ngozi", "Chinedu", "Wanjiru", "Amara",
    "Priya", "Arjun", "Ananya", "Rohan", "Haruto", "Yui", "Sakura", "Wei", "Mei", "Minh", "Linh", "Rizal",
    "Andrea", "Paolo", "Giulia", "Joaquim", "Inês", "João", "Siobhan", "Aoife", "Dmitri", "Olga", "Fatima",
]  # fmt: skip
LAST_NAMES = [
    "García", "Rodríguez", "Martínez", "Santos", "Reyes", "Cruz", "Bautista", "Smith", "Johnson", "Brown",
    "Williams", "Jones", "Miller", "Davis", "Wilson", "Dubois", "Lefèvre", "Moreau", "Müller", "Schmidt",
    "Schneider", "Jensen", "Nielsen", "Okafor", "Adeyemi", "Mwangi", "Otieno", "Sharma", "Patel", "Iyer",
    "Tanaka", "Suzuki", "Sato", "Wang", "Li", "Nguyen", "Tran", "Rossi", "Bianchi", "Silva", "Costa",
    "O'Brien", "Murphy", "Ivanov", "Petrova", "de la Cruz", "van der Berg", "Al-Sayed", "Kowalski",
]  # fmt: skip
# (country, zones a person there may be in, locales seen there, weight)
PLACES: list[tuple[str, list[str], list[str], int]] = [
    ("PH", ["Asia/Manila"], ["en-PH", "fil", "en"], 14),
    ("US", ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"], ["en-US", "es-US"], 16),
    ("CO", ["America/Bogota"], ["es-CO", "es"], 8),
    ("MX", ["America/Mexico_City", "America/Tijuana", "America/Monterrey"], ["es-MX"], 6),
    ("ES", ["Europe/Madrid", "Atlantic/Canary"], ["es-ES", "ca", "es"], 5),
    ("FR", ["Europe/Paris"], ["fr-FR", "fr"], 5),
    ("DE", ["Europe/Berlin"], ["de-DE", "de"], 5),
    ("GB", ["Europe/London"], ["en-GB"], 6),
    ("IN", ["Asia/Kolkata"], ["en-IN", "hi"], 8),
    ("JP", ["Asia/Tokyo"], ["ja-JP", "ja"], 3),
    ("NG", ["Africa/Lagos"], ["en-NG"], 4),
    ("KE", ["Africa/Nairobi"], ["en-KE", "sw"], 3),
    ("BR", ["America/Sao_Paulo", "America/Manaus"], ["pt-BR"], 5),
    ("PT", ["Europe/Lisbon"], ["pt-PT"], 2),
    ("AU", ["Australia/Sydney", "Australia/Perth"], ["en-AU"], 3),
    ("SG", ["Asia/Singapore"], ["en-SG", "zh-Hans-SG"], 2),
    ("IT", ["Europe/Rome"], ["it-IT"], 3),
    ("CA", ["America/Toronto", "America/Vancouver"], ["en-CA", "fr-CA"], 2),
]
ORGANISATIONS = [
    "Example University", "Acme Corporation", "Globex", "Initech", "Umbrella Health", "Ministry of Examples",
    "Hooli", "Stark Industries", "Wayne Enterprises", "Fundación Ejemplo", "Université Exemple",
    "Beispiel GmbH", "Exemplo Ltda.", "Sample NGO", "Contoso, Ltd.", "Northwind Traders", "",
]  # fmt: skip
JOB_TITLES = ["Engineer", "Teacher", "Director", "Nurse", "Analyst", "Student", "Manager", "Researcher", "", ""]
DOMAINS = ["example.org", "example.com", "mail.example.org", "students.example.com"]
INVALID = [
    ("email", "not-an-email"),
    ("email", "someone@"),
    ("email", "two@@example.org"),
    ("email", ""),
    ("timezone", "Mars/Olympus_Mons"),
    ("timezone", "GMT+25"),
    ("country", "XX"),
    ("country", "Philippines"),
    ("locale", "zz-QQ"),
]


def _email(index: int) -> str:
    """The address of contact ``index`` (a pure function of it, so duplicates can be re-derived later)."""
    first = FIRST_NAMES[index * 7 % len(FIRST_NAMES)]
    last = LAST_NAMES[index * 13 % len(LAST_NAMES)]
    local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
    local = local.encode("ascii", "ignore").decode() or "contact"
    return f"{local}.{index}@{DOMAINS[index % len(DOMAINS)]}"


def generate_csv(path: Path, rows: int, seed: int = SEED) -> dict[str, int]:
    """Write ``rows`` data rows to ``path`` (streamed); returns how many rows were made invalid/duplicate."""
    rng = random.Random(seed)
    weights = [place[3] for place in PLACES]
    counts = {"invalid": 0, "duplicate": 0, "missing_zone": 0}
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for i in range(rows):
            country, zones, locales, _ = rng.choices(PLACES, weights)[0]
            first = rng.choice(FIRST_NAMES)
            last = rng.choice(LAST_NAMES)
            roll = rng.random()
            if roll < 0.01 and i > 0:
                # A duplicate: an earlier address, sometimes with different case or surrounding spaces.
                email = _email(rng.randrange(i))
                email = rng.choice([email, email.upper(), email.capitalize(), f" {email} "])
                counts["duplicate"] += 1
            else:
                email = _email(i)
            zone = rng.choice(zones)
            if rng.random() < 0.08:
                zone = ""  # single-zone countries get theirs; the others are flagged
                counts["missing_zone"] += 1
            elif rng.random() < 0.05:
                zone = zone.lower()
            row = {
                "email": email,
                "name": f"{first} {last}" if rng.random() < 0.7 else "",
                "first_name": first,
                "last_name": last,
                "timezone": zone,
                "country": country if rng.random() < 0.97 else country.lower(),
                "locale": rng.choice(locales) if rng.random() < 0.9 else "",
                "organisation": rng.choice(ORGANISATIONS),
                "job_title": rng.choice(JOB_TITLES),
            }
            if 0.01 <= roll < 0.02:
                column, value = rng.choice(INVALID)
                row[column] = value
                counts["invalid"] += 1
            writer.writerow([row[c] for c in COLUMNS])
    return counts


# --- the children -----------------------------------------------------------------------------------------


def child_import(csv_path: Path, db_path: Path, batch_size: int | None) -> dict[str, Any]:
    """Import ``csv_path`` with the campaign engine; returns the timing and the report's counts."""
    import inspect

    from campaign.services.contact_import import import_contacts
    from campaign.services.database import init_database
    from campaign.store.engine import Database

    if batch_size is None:
        batch_size = inspect.signature(import_contacts).parameters["batch_size"].default
    db = Database(f"sqlite:///{db_path}")
    init_database(db)
    started = time.perf_counter()
    report = import_contacts(db, csv_path, "bench", batch_size=batch_size)
    seconds = time.perf_counter() - started
    db.dispose()
    return {
        "seconds": seconds,
        "batch_size": batch_size,
        "rows": report.rows,
        "new": report.new,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "duplicates": report.duplicates,
        "rejected": report.rejected,
        "flagged": report.flagged,
    }


def child_baseline(csv_path: Path, db_path: Path, batch_size: int) -> dict[str, Any]:
    """The reference: csv.DictReader + raw sqlite3 executemany of the same rows into a plain table, no validation."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE contacts (id INTEGER PRIMARY KEY, email TEXT, email_key TEXT, name TEXT, first_name TEXT,"
        " last_name TEXT, timezone TEXT, country TEXT, locale TEXT, organisation TEXT, attributes TEXT,"
        " created_at TEXT, updated_at TEXT)"
    )
    sql = (
        "INSERT INTO contacts (email, email_key, name, first_name, last_name, timezone, country, locale,"
        " organisation, attributes, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    now = time.strftime("%Y-%m-%d %H:%M:%S.000000")
    started = time.perf_counter()
    rows = 0
    with open(csv_path, encoding="utf-8", newline="") as fh:
        batch: list[tuple[Any, ...]] = []
        for r in csv.DictReader(fh):
            batch.append(
                (r["email"], r["email"].lower(), r["name"], r["first_name"], r["last_name"], r["timezone"],
                 r["country"], r["locale"], r["organisation"], json.dumps({"job_title": r["job_title"]}), now, now)
            )  # fmt: skip
            if len(batch) >= batch_size:
                rows += _flush(conn, batch, lambda b: conn.executemany(sql, b))
        rows += _flush(conn, batch, lambda b: conn.executemany(sql, b))
    seconds = time.perf_counter() - started
    conn.close()
    return {"seconds": seconds, "rows": rows}


def child_floor(csv_path: Path, db_path: Path, batch_size: int) -> dict[str, Any]:
    """The storage floor: the import's SQL work per batch in raw sqlite3 on the real schema, no validation."""
    from campaign.services.database import init_database
    from campaign.store.engine import Database

    db = Database(f"sqlite:///{db_path}")
    init_database(db)
    conn = db.engine.raw_connection().driver_connection  # the engine's own pragmas (WAL, synchronous, ...)
    assert isinstance(conn, sqlite3.Connection)
    now = time.strftime("%Y-%m-%d %H:%M:%S.000000")
    conn.execute("INSERT INTO lists (name, created_at) VALUES ('bench', ?)", (now,))
    insert = (
        "INSERT OR IGNORE INTO contacts (email, email_key, name, first_name, last_name, timezone, country, locale,"
        " organisation, attributes, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )

    def write(batch: list[tuple[Any, ...]]) -> None:
        keys = [row[1] for row in batch]
        for i in range(0, len(keys), 10_000):  # SQLite allows 32,766 variables per statement
            chunk = keys[i : i + 10_000]
            marks = ",".join("?" * len(chunk))
            conn.execute(f"SELECT * FROM contacts WHERE email_key IN ({marks})", chunk).fetchall()
            conn.execute(f"SELECT email_key, reason FROM suppressions WHERE email_key IN ({marks})", chunk).fetchall()
        conn.executemany(insert, batch)
        for i in range(0, len(keys), 10_000):
            chunk = keys[i : i + 10_000]
            marks = ",".join("?" * len(chunk))
            conn.execute(
                "INSERT INTO list_members (list_id, contact_id, added_at) SELECT 1, id, ? FROM contacts"
                f" WHERE email_key IN ({marks}) ORDER BY id ON CONFLICT DO NOTHING",
                [now, *chunk],
            )

    started = time.perf_counter()
    rows = 0
    with open(csv_path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        batch: list[tuple[Any, ...]] = []
        for r in reader:
            email = r[0].strip()
            batch.append(
                (email, email.lower(), r[1] or None, r[2] or None, r[3] or None, r[4] or None, r[5] or None,
                 r[6] or None, r[7] or None, json.dumps({"job_title": r[8]}), now, now)
            )  # fmt: skip
            if len(batch) >= batch_size:
                rows += _flush(conn, batch, write)
        rows += _flush(conn, batch, write)
    seconds = time.perf_counter() - started
    conn.close()
    db.dispose()
    return {"seconds": seconds, "rows": rows}


def _flush(
    conn: sqlite3.Connection, batch: list[tuple[Any, ...]], write: Callable[[list[tuple[Any, ...]]], Any]
) -> int:
    if not batch:
        return 0
    conn.execute("BEGIN IMMEDIATE")
    write(batch)
    conn.execute("COMMIT")
    done = len(batch)
    batch.clear()
    return done


CHILDREN: dict[str, Callable[..., dict[str, Any]]] = {
    "import": child_import,
    "baseline": child_baseline,
    "floor": child_floor,
}
ROOT = Path(__file__).resolve().parent.parent


class MemorySampler:
    """Samples the memory of a process and its children (the import's writer process) every quarter second.

    The peak of their summed RSS counts the pages they share (a forked writer shares the reader's) twice; the
    peak of their summed PSS (each shared page split between its sharers) is the memory the import takes.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss_kb = 0
        self.peak_pss_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            rss = pss = 0
            for pid in [self.pid, *_children(self.pid)]:
                try:
                    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
                except OSError:
                    continue
                fields = {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines()[1:]}
                rss += fields.get("Rss", 0)
                pss += fields.get("Pss", 0)
            self.peak_rss_kb = max(self.peak_rss_kb, rss)
            self.peak_pss_kb = max(self.peak_pss_kb, pss)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The parent pid is the second field after the command name (which may contain spaces).
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def run_child(kind: str, csv_path: Path, db_path: Path, batch_size: int | None) -> tuple[dict[str, Any], float]:
    """Run one measurement in a fresh interpreter; returns its result and its peak memory in MB: the peak of
    the summed PSS of the child and its own children (sampled), or wait4's peak RSS if that is more.

    The result also gets the child's CPU seconds (user + system, start-up included, its children's included):
    on a shared machine they vary less than the wall clock. And ``peak_rss_sum_mb``: the summed RSS's peak.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out_path = db_path.with_suffix(".json")
    command = [sys.executable, __file__, "--child", kind, "--csv", str(csv_path), "--db", str(db_path)]
    if batch_size is not None:
        command += ["--batch-size", str(batch_size)]
    proc = subprocess.Popen([*command, "--out", str(out_path)], env=env)
    sampler = MemorySampler(proc.pid)
    _, status, usage = os.wait4(proc.pid, 0)
    sampler.stop()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} child failed with exit code {proc.returncode}")
    peak_mb = max(usage.ru_maxrss, sampler.peak_pss_kb) / 1024  # kilobytes on Linux
    result: dict[str, Any] = json.loads(out_path.read_text())
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    result["peak_rss_sum_mb"] = max(usage.ru_maxrss, sampler.peak_rss_kb) / 1024
    return result, peak_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="data rows to generate (default 1,000,000)")
    parser.add_argument("--batch-size", type=int, help="the import's batch size (default: import_contacts' own)")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep the files")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = CHILDREN[args.child](args.csv, args.db, args.batch_size)
        args.out.write_text(json.dumps(result))
        return

    work = args.keep or Path(tempfile.mkdtemp(prefix="campaign-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        csv_path = work / "contacts.csv"
        started = time.perf_counter()
        made = generate_csv(csv_path, args.rows)
        size_mb = csv_path.stat().st_size / 1e6
        print(
            f"generated {args.rows:,} rows ({size_mb:.0f} MB; {made['invalid']:,} invalid, {made['duplicate']:,} "
            f"duplicate, {made['missing_zone']:,} without zone) in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        for stale in ("bench.db", "baseline.db", "floor.db"):
            for suffix in ("", "-wal", "-shm"):
                (work / f"{stale}{suffix}").unlink(missing_ok=True)

        imported, peak_mb = run_child("import", csv_path, work / "bench.db", args.batch_size)
        batch_size = imported["batch_size"]
        rate = args.rows / imported["seconds"]
        print(
            f"import:   {rate:>9,.0f} rows/s  ({imported['seconds']:.1f} s, {imported['cpu_seconds']:.1f} s CPU, "
            f"batch {batch_size:,}, peak memory {peak_mb:.0f} MB PSS, {imported['peak_rss_sum_mb']:.0f} MB RSS)  "
            f"new={imported['new']:,} "
            f"duplicates={imported['duplicates']:,} rejected={imported['rejected']:,} flagged={imported['flagged']:,}",
            flush=True,
        )
        baseline, baseline_peak_mb = run_child("baseline", csv_path, work / "baseline.db", batch_size)
        baseline_rate = baseline["rows"] / baseline["seconds"]
        print(
            f"baseline: {baseline_rate:>9,.0f} rows/s  ({baseline['seconds']:.1f} s, {baseline['cpu_seconds']:.1f} s "
            f"CPU, peak RSS {baseline_peak_mb:.0f} MB)  csv.DictReader + sqlite3 executemany into a plain table, "
            "no validation",
            flush=True,
        )
        floor, _ = run_child("floor", csv_path, work / "floor.db", batch_size)
        floor_rate = floor["rows"] / floor["seconds"]
        print(
            f"floor:    {floor_rate:>9,.0f} rows/s  ({floor['seconds']:.1f} s, {floor['cpu_seconds']:.1f} s CPU)  "
            "the import's SQL in raw sqlite3 on the real schema, no validation",
            flush=True,
        )
        ratio = rate / baseline_rate
        print(f"ratio:    {ratio:.2f} of the baseline, {rate / floor_rate:.2f} of the storage floor")
        assert imported["rows"] == args.rows, f"import saw {imported['rows']} rows, expected {args.rows}"
        figures = {
            "rows": args.rows,
            "batch_size": batch_size,
            "seconds": round(imported["seconds"], 2),
            "cpu_seconds": round(imported["cpu_seconds"], 2),
            "rows_per_s": round(rate),
            "peak_rss_mb": round(peak_mb, 1),
            "peak_rss_sum_mb": round(imported["peak_rss_sum_mb"], 1),
            "baseline_seconds": round(baseline["seconds"], 2),
            "baseline_cpu_seconds": round(baseline["cpu_seconds"], 2),
            "baseline_rows_per_s": round(baseline_rate),
            "ratio": round(ratio, 3),
            "floor_seconds": round(floor["seconds"], 2),
            "floor_cpu_seconds": round(floor["cpu_seconds"], 2),
            "floor_rows_per_s": round(floor_rate),
            "floor_ratio": round(rate / floor_rate, 3),
            "new": imported["new"],
            "duplicates": imported["duplicates"],
            "rejected": imported["rejected"],
            "flagged": imported["flagged"],
            "target_rows_per_s": TARGET_ROWS_PER_S,
            "target_peak_rss_mb": TARGET_PEAK_RSS_MB,
            "rows_per_s_met": rate >= TARGET_ROWS_PER_S,
            "peak_rss_met": peak_mb <= TARGET_PEAK_RSS_MB,
        }
        print(json.dumps(figures))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
