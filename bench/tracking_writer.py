"""Benchmark: the tracking recorder's writer alone, two builds in interleaved pairs, CPU a hit.

    python bench/tracking_writer.py [--base REV] [--kind click|open] [--pairs P] [--messages N]

``bench/tracking.py`` measures the whole server; the writer (:meth:`campaign.services.tracking.HitRecorder.write`,
in the server a thread on the same core) is a third of a click's CPU there, and a change of a few percent of it is
lost in that benchmark's run-to-run noise. Here only the writer runs, in a process of its own: ``bench/tracking.py``'s
database (``N`` sent messages, default 300,000) is made once, then each of ``P`` pairs (default 6) runs the base
build (git revision ``REV``, default ``HEAD``, in a temporary ``git worktree``) and the working tree one after the
other, each in a fresh process on a fresh copy of the database, writing 12 batches of 5,000 hits of new messages
(clicks on the registration link by a browser, each with its registration, or opens) with the garbage collector's
start-up objects frozen as the server freezes them. A run's figure is the median process CPU a hit of its batches
after the first two (the first ones warm SQLite's cache); ``new / base`` below 1 means the working tree's writer
spends less. Prints each pair, then one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import tracking as bench

ROOT = Path(__file__).resolve().parent.parent
BATCHES = 12
BATCH = 5_000
WARM = 2

# Run in a fresh process with the build's root first on sys.path: argv is the root, the kind, the database, the
# wave id and the registration link's index. Prints the median CPU µs a hit.
WRITER = """
import gc, statistics, sys, time
from datetime import UTC, datetime
sys.path.insert(0, sys.argv[1])
from campaign.config import TrackingSettings
from campaign.models import TrackingKind
from campaign.services.tracking import REGISTER_LINK, Hit, HitRecorder
from campaign.store.engine import Database
kind, path, wave, register = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
agent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
db = Database(f"sqlite:///{path}")
recorder = HitRecorder(db, TrackingSettings())
gc.collect()
gc.freeze()
figures = []
for number in range(%(batches)d):
    now, first = datetime.now(UTC), 1 + number * %(batch)d
    if kind == "click":
        batch = [Hit(TrackingKind.CLICK, m, now, "GET", register, REGISTER_LINK, agent, "198.51.100.7")
                 for m in range(first, first + %(batch)d)]
    else:
        batch = [Hit(TrackingKind.OPEN, m, now, "GET", None, None, agent, "198.51.100.7")
                 for m in range(first, first + %(batch)d)]
    started = time.process_time()
    recorder.write(batch)
    figures.append((time.process_time() - started) / %(batch)d * 1e6)
db.dispose()
print(statistics.median(figures[%(warm)d:]))
""" % {"batches": BATCHES, "batch": BATCH, "warm": WARM}  # noqa: UP031 - the script's own braces stay as they are


def run(source: Path, kind: str, pristine: Path, folder: Path, wave_id: int, register: int) -> float:
    """One build's writer on a fresh copy of the database: its median CPU µs a hit."""
    copy = folder / "run.db"
    shutil.copy(pristine, copy)
    try:
        done = subprocess.run(
            [sys.executable, "-c", WRITER, str(source), kind, str(copy), str(wave_id), str(register)],
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        for leftover in folder.glob("run.db*"):
            leftover.unlink()
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="HEAD", help="the git revision to compare with (default HEAD)")
    parser.add_argument("--kind", choices=("click", "open"), default="click", help="what to write (click)")
    parser.add_argument("--pairs", type=int, default=6, help="interleaved pairs of runs (default 6)")
    parser.add_argument("--messages", type=int, default=300_000, help="sent messages in the database (300,000)")
    args = parser.parse_args()
    if args.messages < BATCHES * BATCH:
        sys.exit(f"--messages must be at least {BATCHES * BATCH:,}: every hit is a different message's")
    with tempfile.TemporaryDirectory() as tmp, bench.worktree(Path(tmp), args.base) as worktree:
        folder = Path(tmp)
        pristine = folder / "bench.db"
        wave_id, register = bench.setup(pristine, args.messages)
        base: list[float] = []
        new: list[float] = []
        for pair in range(args.pairs):
            base.append(run(worktree, args.kind, pristine, folder, wave_id, register))
            new.append(run(ROOT, args.kind, pristine, folder, wave_id, register))
            print(f"pair {pair + 1}/{args.pairs}: base {base[-1]:.2f} µs a {args.kind}, new {new[-1]:.2f} µs",
                  flush=True)  # fmt: skip
    ratios = [n / b for n, b in zip(new, base, strict=True)]
    figures = {
        "base": args.base,
        "kind": args.kind,
        "pairs": args.pairs,
        "messages": args.messages,
        "base_us": round(statistics.median(base), 2),
        "new_us": round(statistics.median(new), 2),
        "new_over_base": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
    }
    print(f"writer, {args.kind} with what it writes: base {figures['base_us']} µs, new {figures['new_us']} µs a hit "
          f"(medians); new/base {figures['new_over_base']}")  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
