#!/usr/bin/env python3
"""Where the daemon's memory goes, across dataset sizes and ack styles.

    daemon_memory.py --mbdata .build/release/mbdata --set 50000=DB,SPOOL --set 1000000=DB,SPOOL \
        [--acks default,sync] [--rounds 1] [--work DIR] [--smaps]

For each (size, ack style, round) it starts a fresh spool daemon (fresh state database) and
runs `first_batch.py` against it (a new group's first batch, half an epoch acked, a resume,
the rest), sampling the daemon's `/proc/PID/smaps_rollup` every 20 ms: resident set split
into anonymous memory (heap, stacks) and file-backed pages (the binary, libraries, SQLite
mappings). It prints one line per run and a table of: RSS once ready, peak RSS (VmHWM),
peak anonymous and peak file-backed pages, RSS at the end. `--smaps` also prints the
daemon's largest mappings at the end of each run, for finding what holds the pages.
Datasets and spools are only read; the state databases and logs go to `--work`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import Serve  # noqa: E402


def rollup(pid: int) -> dict[str, int]:
    """Rss, Anonymous, Shmem (kB) of smaps_rollup and VmHWM of status."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("Rss", "Anonymous", "Shmem") or key.startswith("Shmem"):
                out[key] = out.get(key, 0) + int(value.split()[0])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0])
    except (OSError, ValueError):
        pass
    return out


def largest_mappings(pid: int, k: int = 8) -> list[str]:
    """The `k` mappings with the most resident kB: 'RSS kB anon kB name'."""
    rows: list[tuple[int, int, str]] = []
    name, rss, anon = "", 0, 0
    try:
        for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
            head = line.split()
            if head and "-" in head[0] and ":" not in head[0]:
                if name or rss:
                    rows.append((rss, anon, name))
                name, rss, anon = (head[5] if len(head) > 5 else "[anon]"), 0, 0
            elif line.startswith("Rss:"):
                rss = int(head[1])
            elif line.startswith("Anonymous:"):
                anon = int(head[1])
        rows.append((rss, anon, name))
    except (OSError, ValueError, IndexError):
        return []
    rows.sort(reverse=True)
    return [f"{r / 1024:7.1f} MiB rss {a / 1024:7.1f} MiB anon {n}" for r, a, n in rows[:k]]


class Sampler(threading.Thread):
    """Peaks of RSS, anonymous and file-backed resident memory of one pid."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.stop_event = threading.Event()
        self.peak = {"rss": 0, "anon": 0, "file": 0}

    def run(self) -> None:
        while not self.stop_event.is_set():
            now = rollup(self.pid)
            if now:
                self.peak["rss"] = max(self.peak["rss"], now.get("Rss", 0))
                self.peak["anon"] = max(self.peak["anon"], now.get("RssAnon", now.get("Anonymous", 0)))
                self.peak["file"] = max(self.peak["file"], now.get("RssFile", 0))
            self.stop_event.wait(0.02)

    def stop(self) -> dict[str, int]:
        self.stop_event.set()
        self.join(5)
        return self.peak


def run_once(mbdata: Path, db: Path, spool: Path, work: Path, tag: str, ack: str, python: str, smaps: bool,
             extra: list[str]) -> dict:
    serve = Serve(mbdata, db, spool, work, tag, extra)
    row: dict = {"ok": False}
    try:
        serve.start()
        ready = rollup(serve.pid)
        row["ready_mib"] = ready.get("Rss", 0) / 1024
        sampler = Sampler(serve.pid)
        sampler.start()
        cmd = [python, str(HERE / "first_batch.py"), "--url", serve.url, "--dataset", "cifar", "--batch-size", "256",
               "--seed", "7", "--group", f"mem-{tag}", "--ack", ack]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        peak = sampler.stop()
        end = rollup(serve.pid)
        result = [line for line in p.stdout.splitlines() if line.startswith("RESULT ")]
        if p.returncode == 0 and result:
            row.update(json.loads(result[-1][7:]), ok=True)
        else:
            row["error"] = p.stderr[-2000:]
        row.update(hwm_mib=end.get("VmHWM", 0) / 1024, end_mib=end.get("Rss", 0) / 1024,
                   peak_anon_mib=peak["anon"] / 1024, peak_file_mib=peak["file"] / 1024,
                   end_anon_mib=end.get("RssAnon", 0) / 1024, end_file_mib=end.get("RssFile", 0) / 1024)
        if smaps:
            row["mappings"] = largest_mappings(serve.pid)
    finally:
        serve.terminate()
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mbdata", type=Path, required=True)
    ap.add_argument("--set", action="append", required=True, help="N=DB,SPOOL")
    ap.add_argument("--acks", default="default,sync")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--work", type=Path)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--smaps", action="store_true")
    ap.add_argument("--serve-arg", action="append", default=[], help="extra argument for `mbdata serve`")
    args = ap.parse_args()
    sets: dict[int, tuple[Path, Path]] = {}
    for item in args.set:
        size, _, paths = item.partition("=")
        db, _, spool = paths.partition(",")
        sets[int(size)] = (Path(db), Path(spool))
    acks = [a for a in args.acks.split(",") if a]
    work = args.work or Path(tempfile.mkdtemp(prefix="daemon-memory-"))
    rows: dict[tuple[int, str], list[dict]] = {(n, a): [] for n in sets for a in acks}
    for rnd in range(1, args.rounds + 1):
        for (n, ack), done in rows.items():
            db, spool = sets[n]
            row = run_once(args.mbdata, db, spool, work, f"{n}-{ack}-r{rnd}", ack, args.python, args.smaps, args.serve_arg)
            done.append(row)
            status = "ok" if row["ok"] else "FAILED " + row.get("error", "")[-300:]
            print(f"N={n:>9,} ack={ack:<7} round {rnd}: ready {row.get('ready_mib', 0):6.1f} MiB, peak {row.get('hwm_mib', 0):6.1f} MiB "
                  f"(anon {row.get('peak_anon_mib', 0):6.1f}, file {row.get('peak_file_mib', 0):5.1f}), end {row.get('end_mib', 0):6.1f} MiB, "
                  f"new {row.get('new_ms', 0):.1f} ms, resume {row.get('resume_ms', 0):.1f} ms; {status}", flush=True)
            for line in row.get("mappings", []):
                print("    " + line, flush=True)
    print("\n| N | acks | ready MiB | peak RSS MiB | peak anon MiB | peak file MiB | RSS at end MiB | runs ok |")
    print("|---:|---|---:|---:|---:|---:|---:|---|")
    peaks = []
    for (n, ack), done in rows.items():
        good = [r for r in done if r["ok"]]

        def med(key: str) -> float:
            return statistics.median([r[key] for r in good]) if good else float("nan")

        peaks.append(med("hwm_mib"))
        print(f"| {n:,} | {ack} | {med('ready_mib'):.1f} | {med('hwm_mib'):.1f} | {med('peak_anon_mib'):.1f} | "
              f"{med('peak_file_mib'):.1f} | {med('end_mib'):.1f} | {len(good)}/{len(done)} |")
    if peaks:
        print(f"\nspread of peak RSS (max / min - 1): {(max(peaks) / min(peaks) - 1) * 100:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
