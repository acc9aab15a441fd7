"""Benchmark: two builds of the tracking server at once on one core, to compare a change on a noisy machine.

    python bench/tracking_ab.py [--base REV] [--kind click|pixel] [--seconds S] [--rounds R] [--messages N]

The machine class is shared, and how fast it runs Python swings by up to 2x within minutes: runs one after the
other (``bench/tracking.py`` before and after a change) compare the minutes as much as the builds. Here both run
at the same time: ``campaign web`` of git revision ``REV`` (default ``HEAD``, checked out in a temporary
``git worktree``) and of the working tree, each on its own copy of one database (``bench/tracking.py``'s, with
``N`` sent messages), both pinned to the same core, each driven by its own ``wrk`` (the same settings as
``bench/tracking.py``'s) pinned to the other core. Each server's CPU time a request answered (user and system,
its threads included, from ``/proc``) is measured; ``new / base`` below 1 means the working tree's server spends
less a request. The two compete for one core, so the absolute figures are higher than ``bench/tracking.py``'s:
read the ratio. Every round starts both servers afresh; the median of the rounds' ratios is reported, and the
last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import tracking as bench


def start(name: str, pin: list[str], folder: Path, source: Path | None) -> tuple[subprocess.Popen[str], str]:
    """``campaign web`` on ``folder``'s database, of the code at ``source`` (None: the working tree's)."""
    (folder / "config.toml").write_text(
        f'[database]\nurl = "sqlite:///{folder / "bench.db"}"\n[paths]\ndata = "{folder}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env["CAMPAIGN_SECRET_KEY"] = bench.KEY
    if source is not None:
        env["PYTHONPATH"] = str(source)  # found before the working tree's (installed in editable mode)
    command = [*pin, sys.executable, "-m", "campaign", "--config", str(folder / "config.toml"), "web", "--host",
               "127.0.0.1", "--port", "0"]  # fmt: skip
    # From a neutral directory: python -m puts the current one first on the path.
    proc = subprocess.Popen(
        command, env=env, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    found = re.match(r"Listening on (\S+)", proc.stdout.readline())
    if found is None:
        proc.kill()
        sys.exit(f"campaign web ({name}) did not start")
    bench.wait_for_url(found.group(1) + "/healthz")
    return proc, found.group(1)


def one_round(
    folder: Path,
    number: int,
    sources: dict[str, Path | None],
    server_pin: list[str],
    wrk_pin: list[str],
    wrk_path: str,
    paths: Path,
    seconds: int,
) -> dict[str, bench.Run]:
    """Both servers started afresh on their own copies of the database, driven at once; their runs by name."""
    servers = {}
    for name, source in sources.items():
        copy = folder / f"{name}{number}"
        copy.mkdir()
        shutil.copy(folder / "bench.db", copy / "bench.db")
        proc, url = start(name, server_pin, copy, source)
        servers[name] = (proc, bench.wrk(wrk_path, wrk_pin, copy, paths, seconds, 50), url)
    runs: dict[str, bench.Run] = {}

    def drive(name: str, proc: subprocess.Popen[str], measure: bench.Measure, url: str) -> None:
        runs[name] = measure(url, proc.pid)

    threads = [threading.Thread(target=drive, args=(name, *server)) for name, server in servers.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for proc, _, _ in servers.values():
        proc.send_signal(signal.SIGTERM)
        proc.wait(bench.STOP_SECONDS)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="HEAD", help="the git revision to compare with (default HEAD)")
    parser.add_argument("--kind", choices=("click", "pixel"), default="click", help="what to request (click)")
    parser.add_argument("--seconds", type=int, default=10, help="length of each round (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--messages", type=int, default=400_000, help="sent messages, one hit each (400,000)")
    args = parser.parse_args()
    wrk_path = bench.tool("wrk")
    server_pin, wrk_pin = bench.cores()
    with tempfile.TemporaryDirectory() as tmp, bench.worktree(Path(tmp), args.base) as worktree:
        folder = Path(tmp)
        wave_id, register = bench.setup(folder / "bench.db", args.messages)
        paths = bench.write_paths(folder, args.messages, wave_id, register)[args.kind]
        ratios: list[float] = []
        cpu: dict[str, list[float]] = {"base": [], "new": []}
        for round_number in range(args.rounds):
            sources = {"base": worktree, "new": None}
            runs = one_round(folder, round_number, sources, server_pin, wrk_pin, wrk_path, paths, args.seconds)
            ratio = runs["new"].cpu_us / runs["base"].cpu_us
            ratios.append(ratio)
            for name in cpu:
                cpu[name].append(runs[name].cpu_us)
            print(
                f"round {round_number + 1}/{args.rounds}: base {runs['base'].cpu_us:.1f} µs a request "
                f"({runs['base'].rps:,.0f} req/s), new {runs['new'].cpu_us:.1f} µs ({runs['new'].rps:,.0f} "
                f"req/s): new/base {ratio:.3f}",
                flush=True,
            )
    figures = {
        "base": args.base,
        "kind": args.kind,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "messages": args.messages,
        "base_cpu_us": round(statistics.median(cpu["base"]), 1),
        "new_cpu_us": round(statistics.median(cpu["new"]), 1),
        "new_over_base_cpu": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
    }
    ratio = figures["new_over_base_cpu"]
    print(f"\n{args.kind}: the working tree's server spends {ratio:.3f}x {args.base}'s CPU a request")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
