#!/usr/bin/env python3
"""What this machine allows: bounds on two of issue 15's targets, measured in one
sitting, independently of how mbdata serve and its client are built.

    bounds.py --work Benchmarks/work/serve [--rounds 5]    (needs make bench-serve's
              cifar.mbdb and rows.sqlite in --work, and the release builds)

live      A daemon serving from SQLite cannot send batches faster than it can read them.
          Reads of the same shuffled plan (seed 7, batch 256, tail dropped) from the
          dataset file in process with mbdata's own loader (`mbdata-infer-bench read …
          train`: k = 1 and 2 batches at once, no socket, no Python), against the serve
          benchmark's SQLite DataLoader peer (0 workers, plain table) and `mbdata serve`
          live with the client's README loop (consumer.py). Serve live must reach 2× the
          peer; it can at most reach what k = 2 reads with both cores and nothing else.
workers   PyTorch's DataLoader hands every item of a worker to the training process
          through a pipe: the item is pickled by a feeder thread in the worker and
          unpickled in the training process. (a) The ceiling of that hand-off alone: an
          IterableDataset that yields a dict holding an int, in 2 persistent workers.
          (b) MBDataIterableDataset over a spool daemon, 0 workers and 2 persistent
          workers, past the first epoch (workers started): wall, training-process CPU and
          worker CPU per batch (/proc; each process's threads included, so with the client's
          native module the training process's CPU with 0 workers counts its reader threads). With workers, the training process's CPU per batch
          plus the workers' is what the machine's 2 cores share; 0 workers does all of it
          in one.

Each round runs every contender once, in alternating order. Prints a markdown report
(also written to --out).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import bench  # the serve benchmark's daemon, consumer commands and /proc readings

ROOT = bench.ROOT
HERE = bench.HERE
EPOCHS = 3  # of the workers' spool: the first starts the workers, the others are measured


def ready_go(cmd: list[str], timeout: float = 300) -> dict:
    """Runs one READY/go process (bench.py's protocol) alone, without bench.py's samplers → its RESULT."""
    process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    for line in process.stdout:
        if line.startswith("READY"):
            break
    else:
        raise SystemExit(f"{cmd[0]}: no READY")
    out, _ = process.communicate("go\n", timeout=timeout)
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise SystemExit(f"{' '.join(cmd)}: no RESULT (exit {process.returncode})")


@contextlib.contextmanager
def daemon(args, spool: Path | None, tag: str):
    """`bench.Serve` on the dataset (from `spool` when given) → its URL; stopped on exit."""
    serve = bench.Serve(args.mbdata, args.work / "cifar.mbdb", spool, args.work, f"bounds-{tag}", [])
    serve.start()
    try:
        yield serve.url
    finally:
        serve.terminate()


# ------------------------------------------------------------------ live

def live(args) -> dict:
    """Each reader's samples/s in every round: mbdata's loader in process (k = 1, 2), the
    SQLite DataLoader peer, and serve live with the client's README loop."""
    ctx = {"n": args.n, "seed": 7, "batch": 256, "rows_db": args.work / "rows.sqlite", "id_base": 1, "dataset": "cifar"}
    contenders = {
        f"in process, k = {k}": lambda round_, k=k: [str(args.bench_bin), "read", str(args.work / "cifar.mbdb"), str(k), "256", "train"]
        for k in (1, 2)
    }
    contenders["SQLite DataLoader, 0 workers"] = lambda round_: bench.consumer_cmd(args.python, "sqlite-w0", ctx)
    with daemon(args, spool=None, tag="live") as url:
        contenders["mbdata serve (live) + Python client, batch.ack()"] = lambda round_: bench.consumer_cmd(
            args.python, "serve-live", ctx, url=url, group=f"bounds-live-{round_}")
        rates: dict[str, list[float]] = {name: [] for name in contenders}
        for round_ in range(args.rounds):
            for name in contenders if round_ % 2 == 0 else reversed(list(contenders)):
                result = ready_go(contenders[name](round_))
                rate = result["rows"] / result["seconds"] if "rows" in result else result["samples_per_s"]
                rates[name].append(rate)
                print(f"[bounds] live {name}: {rate:,.0f} samples/s", file=sys.stderr, flush=True)
    return rates


# ------------------------------------------------------------------ workers

def ensure_spool(args) -> Path:
    """The shard set of EPOCHS epochs of the plan (seed 7, batch 256), made once."""
    spool = args.work / f"spool-bounds-e{EPOCHS}"
    if not (spool / "manifest.json").exists():
        subprocess.run([str(args.mbdata), "shard", str(args.work / "cifar.mbdb"), "--out", str(spool), "--batch-size", "256",
                        "--epochs", str(EPOCHS), "--seed", "7"], check=True, stdout=subprocess.DEVNULL)
    return spool


def workers(args) -> dict:
    """`child`'s measurements, in the torch virtualenv, against a daemon over the spool."""
    with daemon(args, spool=ensure_spool(args), tag="workers") as url:
        out = subprocess.run([args.python, __file__, "--child", url, "--rounds", str(args.rounds)],
                             check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.splitlines()[-1])


def child(url: str, rounds: int) -> dict:
    """In the torch virtualenv: the hand-off ceiling and the adapter's CPU per batch."""
    import numpy as np
    from torch.utils.data import DataLoader, IterableDataset, get_worker_info

    from mbdata_client.torch import MBDataIterableDataset

    class Nothing(IterableDataset):
        def __iter__(self):
            info = get_worker_info()
            if info is None or info.id == 0:
                for _ in range(781):
                    yield {"x": 1}

    def epoch(loader, dataset=None, number=0) -> tuple[float, int, float, float]:
        """→ (seconds, items, training-process CPU s, workers' CPU s) of one epoch."""
        if dataset is not None:
            dataset.set_epoch(number)
        pids = [w.pid for w in getattr(loader._iterator, "_workers", [])] if loader._iterator is not None else []
        worker_cpu = sum(map(bench.proc_cpu_s, pids))
        started, cpu, items = time.perf_counter(), time.process_time(), 0
        for item in loader:
            if isinstance(item, dict) and "image" in item:
                int(item["image"].numpy().reshape(-1)[::4096].sum(dtype=np.uint64))
                int(item["label"].numpy().sum())
            items += 1
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        pids = [w.pid for w in loader._iterator._workers] if getattr(loader._iterator, "_workers", None) else pids
        return seconds, items, cpu, sum(map(bench.proc_cpu_s, pids)) - worker_cpu

    results: dict[str, list] = {"hand-off ceiling, 2 workers": [], "adapter, 0 workers": [], "adapter, 2 persistent workers": []}
    ceiling = DataLoader(Nothing(), batch_size=None, num_workers=2, persistent_workers=True)
    epoch(ceiling)  # starts the workers
    for round_ in range(rounds):
        results["hand-off ceiling, 2 workers"].append(epoch(ceiling))
        for workers_ in (0, 2) if round_ % 2 == 0 else (2, 0):
            dataset = MBDataIterableDataset(url, "cifar", batch_size=256, seed=7, group=f"bounds-{workers_}-{round_}")
            loader = DataLoader(dataset, batch_size=None, num_workers=workers_, persistent_workers=workers_ > 0)
            measured = [epoch(loader, dataset, number) for number in range(EPOCHS)][1:]
            name = "adapter, 0 workers" if workers_ == 0 else "adapter, 2 persistent workers"
            results[name].extend(measured)
            del loader
    return results


# ------------------------------------------------------------------ report

def report(live_rates: dict, worker_runs: dict, args) -> str:
    """The markdown report of both sittings."""
    lines = [
        "# What this machine allows (Benchmarks/serve/bounds.py)", "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, {args.rounds} rounds, "
        "medians (ratios: median of the rounds' ratios).", "",
        "## Live: reading the shuffled plan from SQLite", "",
        "| reader | samples/s | ÷ SQLite DataLoader |", "|---|---:|---:|",
    ]
    peer = live_rates["SQLite DataLoader, 0 workers"]
    for name, rates in live_rates.items():
        ratio = statistics.median(r / p for r, p in zip(rates, peer))
        lines.append(f"| {name} | {statistics.median(rates):,.0f} | {ratio:.2f}× |")
    lines += ["", "## DataLoader workers: per batch (781 batches an epoch, epochs after the first)", "",
              "| configuration | wall µs | training process CPU µs | workers' CPU µs | both µs | samples/s |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, runs in worker_runs.items():
        per = [(s / n * 1e6, c / n * 1e6, w / n * 1e6, n / s * 256) for s, n, c, w in runs]
        wall, main, work, rate = (statistics.median(x[i] for x in per) for i in range(4))
        lines.append(f"| {name} | {wall:.0f} | {main:.0f} | {work:.0f} | {main + work:.0f} | "
                     f"{'–' if name.startswith('hand-off') else f'{rate:,.0f}'} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=ROOT / "Benchmarks/work/serve")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=200000)
    ap.add_argument("--mbdata", type=Path, default=ROOT / ".build/release/mbdata")
    ap.add_argument("--bench-bin", type=Path, default=ROOT / ".build/release/mbdata-infer-bench")
    ap.add_argument("--python", default=sys.executable, help="the torch virtualenv's python")
    ap.add_argument("--out", type=Path, default=ROOT / "Benchmarks/results/bounds.md")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rounds)))
        return 0
    args.work = args.work.resolve()
    text = report(live(args), workers(args), args)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
