"""Benchmark: importing a large contacts CSV.

    python bench/import_contacts.py [--rows N] [--keep DIR]

Generates a realistic CSV of ``N`` fictional contacts (default 1,000,000) in a temporary directory, streamed
to disk, then, each in a fresh child process so that peak memory is the import's own:

* imports it with :func:`campaign.services.contact_import.import_contacts` into a fresh SQLite database;
* as a reference measured in the same run, loads the same file with ``csv.DictReader`` and raw ``sqlite3``
  ``executemany`` (no validation, same batch size, one transaction per batch): roughly the fastest this
  machine can move these rows from a CSV into SQLite from Python.

Prints both rates, their ratio and the import's peak RSS, and ends with one JSON line of all figures.
Targets for 1,000,000 rows: >= 50,000 rows/s and peak RSS <= 250 MB.
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
import time
from pathlib import Path
from typing import Any

TARGET_ROWS_PER_S = 50_000
TARGET_PEAK_RSS_MB = 250
BATCH_SIZE = 2_000
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


def child_import(csv_path: Path, db_path: Path) -> dict[str, Any]:
    """Import ``csv_path`` with the campaign engine; returns the timing and the report's counts."""
    from campaign.services.contact_import import import_contacts
    from campaign.services.database import init_database
    from campaign.store.engine import Database

    db = Database(f"sqlite:///{db_path}")
    init_database(db)
    started = time.perf_counter()
    report = import_contacts(db, csv_path, "bench")
    seconds = time.perf_counter() - started
    db.dispose()
    return {
        "seconds": seconds,
        "rows": report.rows,
        "new": report.new,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "duplicates": report.duplicates,
        "rejected": report.rejected,
        "flagged": report.flagged,
    }


def child_baseline(csv_path: Path, db_path: Path) -> dict[str, Any]:
    """The reference: csv.DictReader + raw sqlite3 executemany of the same rows, no validation at all."""
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
            if len(batch) >= BATCH_SIZE:
                rows += _flush(conn, sql, batch)
        rows += _flush(conn, sql, batch)
    seconds = time.perf_counter() - started
    conn.close()
    return {"seconds": seconds, "rows": rows}


def _flush(conn: sqlite3.Connection, sql: str, batch: list[tuple[Any, ...]]) -> int:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(sql, batch)
    conn.execute("COMMIT")
    done = len(batch)
    batch.clear()
    return done


def run_child(kind: str, csv_path: Path, db_path: Path) -> tuple[dict[str, Any], float]:
    """Run one measurement in a fresh interpreter; returns its result and its peak RSS in MB (from wait4)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out_path = db_path.with_suffix(".json")
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", kind, "--csv", str(csv_path), "--db", str(db_path), "--out", str(out_path)],
        env=env,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} child failed with exit code {proc.returncode}")
    peak_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    return json.loads(out_path.read_text()), peak_mb


ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="data rows to generate (default 1,000,000)")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep the files")
    parser.add_argument("--child", choices=["import", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = (child_import if args.child == "import" else child_baseline)(args.csv, args.db)
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
        for stale in (work / "bench.db", work / "baseline.db"):
            for suffix in ("", "-wal", "-shm"):
                Path(f"{stale}{suffix}").unlink(missing_ok=True)

        imported, peak_mb = run_child("import", csv_path, work / "bench.db")
        rate = args.rows / imported["seconds"]
        print(
            f"import:   {rate:>9,.0f} rows/s  ({imported['seconds']:.1f} s, peak RSS {peak_mb:.0f} MB)  "
            f"new={imported['new']:,} duplicates={imported['duplicates']:,} rejected={imported['rejected']:,} "
            f"flagged={imported['flagged']:,}",
            flush=True,
        )
        baseline, baseline_peak_mb = run_child("baseline", csv_path, work / "baseline.db")
        baseline_rate = baseline["rows"] / baseline["seconds"]
        print(
            f"baseline: {baseline_rate:>9,.0f} rows/s  ({baseline['seconds']:.1f} s, peak RSS {baseline_peak_mb:.0f} MB)"
            "  csv.DictReader + sqlite3 executemany, no validation",
            flush=True,
        )
        ratio = rate / baseline_rate
        print(f"ratio:    {ratio:.2f} of the baseline")
        assert imported["rows"] == args.rows, f"import saw {imported['rows']} rows, expected {args.rows}"
        figures = {
            "rows": args.rows,
            "seconds": round(imported["seconds"], 2),
            "rows_per_s": round(rate),
            "peak_rss_mb": round(peak_mb, 1),
            "baseline_seconds": round(baseline["seconds"], 2),
            "baseline_rows_per_s": round(baseline_rate),
            "baseline_peak_rss_mb": round(baseline_peak_mb, 1),
            "ratio": round(ratio, 3),
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
