#!/usr/bin/env python3
"""Batch inference on the digits dataset through `mbdata serve`, written back exactly once.

    mbdata ingest digits.mbdb --schema samples/digits/digits.schema.json --val-fraction 0.2 \\
        samples/digits/digits.jsonl
    mbdata outputs create digits.mbdb --name preds --schema samples/digits/preds.schema.json
    mbdata serve digits.mbdb --port 7070 &
    python samples/infer_digits.py --url http://127.0.0.1:7070 --dataset digits --output preds --db digits.mbdb

First it trains softmax regression (numpy only) on the `train` split, read through the
client as a partition stream for a few epochs. Then it runs inference over the `val`
split with two processes (`Client.infer`, share-style leases): each leases a batch,
computes `pred` (int64) and `prob` (float32[10]) and submits them, which commits the
outputs and the batch's completion in one transaction. Mid-way the script kills one of
the processes with SIGKILL and starts a re-run in its place, which —
with the survivor — finishes the batches that are left; the killed process's leased batch
comes back when its lease expires. Last, the held-out accuracy comes from SQL:

    select avg(s.label = o.pred) from samples s join outputs_preds o using (_id)

and the rows of `outputs_preds` must be exactly the job's `val` samples. Exits 1 when the
accuracy is under --min-accuracy or the rows are not one per sample.

Needs numpy and the client: pip install ./clients/python
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mbdata_client import Client, MBDataError, acked_batches

CLASSES = 10


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("MBDATA_URL", "http://127.0.0.1:7070"))
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--output", default="preds", help="the output table (mbdata outputs create)")
    parser.add_argument("--db", type=Path, help="the dataset file, for the SQL join (skipped without it)")
    parser.add_argument("--split", default="val", help="the split inference runs over")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs")
    parser.add_argument("--train-batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=16, help="inference batch size")
    parser.add_argument("--processes", type=int, default=2, help="inference processes")
    parser.add_argument("--lease-seconds", type=int, default=2,
                        help="how long a batch stays with a consumer that does not submit it")
    parser.add_argument("--kill-after", type=int, default=3,
                        help="SIGKILL the first process once it has submitted this many batches")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds each batch's inference takes at least")
    parser.add_argument("--min-accuracy", type=float, default=0.9, help="exit 1 below this held-out accuracy")
    parser.add_argument("--token", default=None, help="bearer token (default: $MBDATA_TOKEN)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # model weights: run as an inference process
    return parser.parse_args()


def features(batch) -> np.ndarray:
    """uint8 images of 0..16 → float32 inputs in [0, 1], one row of 64 per sample."""
    return batch["image"].reshape(len(batch.ids), -1).astype(np.float32) / 16.0


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


# --- training -----------------------------------------------------------------------------


def train(client: Client, args) -> tuple[np.ndarray, np.ndarray]:
    """Softmax regression by minibatch gradient descent on the train split's partition
    stream; each batch is acked after its step, in a consumer group of this run's own."""
    group = f"infer-digits-train-{os.getpid()}-{int(time.time())}"
    weights = np.zeros((64, CLASSES), np.float32)
    bias = np.zeros(CLASSES, np.float32)
    started, seen, correct = time.perf_counter(), 0, 0
    for epoch in range(args.epochs):
        seen = correct = 0
        for batch in client.batches(args.dataset, args.train_batch_size, epoch=epoch, seed=args.seed, rank=0,
                                    world=1, group=group, split="train"):
            x, labels = features(batch), batch["label"]
            prob = softmax(x @ weights + bias)
            correct += int((prob.argmax(1) == labels).sum())
            seen += len(labels)
            prob[np.arange(len(labels)), labels] -= 1.0  # ∂ cross-entropy / ∂ logits
            weights -= args.lr * (x.T @ prob) / len(labels)
            bias -= args.lr * prob.mean(axis=0)
            batch.ack(wait=False)
    elapsed = time.perf_counter() - started
    print(f"trained softmax regression: {args.epochs} epochs of {seen} train samples in {elapsed:.2f} s, "
          f"last epoch's accuracy {correct / max(1, seen):.4f}", flush=True)
    return weights, bias


# --- inference ----------------------------------------------------------------------------


def run_worker(args) -> int:
    """One inference process: leases batches of the job until it is complete, printing
    one line per batch submitted (the parent counts them to choose when to kill)."""
    model = np.load(args.worker)
    weights, bias = model["weights"], model["bias"]
    client = Client(args.url, token=args.token, poll_interval=0.05)
    for batch in client.infer(args.dataset, output=args.output, batch_size=args.batch_size, split=args.split,
                              lease_seconds=args.lease_seconds):
        prob = softmax(features(batch) @ weights + bias).astype(np.float32)
        time.sleep(args.delay)  # a bigger model would take this long
        try:
            answer = batch.submit({"pred": prob.argmax(1).astype(np.int64), "prob": prob})
        except MBDataError as error:
            if error.code != "lease_expired":
                raise
            print(f"lost batch {batch.index} (lease expired: another process gets it)", flush=True)
            continue
        print(f"submitted batch {batch.index} ({answer['rows']} rows)", flush=True)
    return 0


def start_worker(args, model: Path) -> subprocess.Popen:
    command = [sys.executable, os.path.abspath(__file__), "--worker", str(model), "--url", args.url,
               "--dataset", args.dataset, "--output", args.output, "--split", args.split,
               "--batch-size", str(args.batch_size), "--lease-seconds", str(args.lease_seconds),
               "--delay", str(args.delay)]
    if args.token:
        command += ["--token", args.token]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def submitted(lines: list[str]) -> int:
    return sum(line.startswith("submitted ") for line in lines)


def infer(args, model: Path) -> None:
    """Runs `--processes` inference processes, SIGKILLs the first after `--kill-after`
    submissions, starts a re-run in its place, and waits for all to finish."""
    started = time.perf_counter()
    workers = [start_worker(args, model) for _ in range(args.processes)]
    victim, victim_lines = workers[0], []
    for line in victim.stdout:
        victim_lines.append(line)
        if submitted(victim_lines) >= args.kill_after:
            victim.send_signal(signal.SIGKILL)
            break
    killed = victim.wait() == -signal.SIGKILL
    victim.stdout.close()
    if killed:
        print(f"killed inference process {victim.pid} (SIGKILL) mid-job after {submitted(victim_lines)} batches "
              f"(a batch it had leased comes back when the lease expires); starting a re-run", flush=True)
        workers.append(start_worker(args, model))
    else:
        print(f"inference process {victim.pid} finished before it could be killed", flush=True)
    failed = False
    for worker in workers[1:]:
        output, _ = worker.communicate()
        lines = output.splitlines()
        lost = sum(line.startswith("lost ") for line in lines)
        print(f"inference process {worker.pid}: {submitted(lines)} batches submitted"
              f"{f', {lost} lost to expired leases' if lost else ''}, exit {worker.returncode}", flush=True)
        failed |= worker.returncode != 0
    if failed:
        raise SystemExit("an inference process failed")
    print(f"inference done in {time.perf_counter() - started:.2f} s", flush=True)


# --- the result, from SQL -----------------------------------------------------------------


def report(args, state: dict) -> int:
    """The held-out accuracy from an SQL join of the outputs with the samples, and the check
    that the outputs are one row per sample of the job's split at its pinned version."""
    table = f"outputs_{args.output}"
    with sqlite3.connect(args.db) as db:
        (accuracy,) = db.execute(f"select avg(s.label = o.pred) from samples s join {table} o using (_id)").fetchone()
        (rows,) = db.execute(f"select count(*) from {table}").fetchone()
        (in_split,) = db.execute(f"select count(*) from {table} o join samples s using (_id) where s._split = ?",
                                 (args.split,)).fetchone()
        (expected,) = db.execute(
            "select count(*) from samples where _split = ? and _id <= "
            "(select max_id from mbdata_versions where version = ?)", (args.split, state["dataset_version"]),
        ).fetchone()
    accuracy = accuracy or 0.0
    print(f"held-out accuracy (SQL join of samples and {table}): {accuracy:.4f}")
    print(f"{table}: {rows} rows, {in_split} of them {args.split} samples; the job's {args.split} split has "
          f"{expected} samples (dataset version {state['dataset_version']})")
    if not rows == in_split == expected:
        print(f"error: expected exactly one output row per {args.split} sample", file=sys.stderr)
        return 1
    return 0 if accuracy >= args.min_accuracy else 1


def main() -> int:
    args = parse_arguments()
    if args.worker is not None:
        return run_worker(args)
    client = Client(args.url, token=args.token)
    weights, bias = train(client, args)
    state = client.infer_cursor(args.dataset, args.output, args.batch_size, split=args.split)
    done = len(acked_batches(state, 0))
    print(f"inference job {state['cursor']}: {done} of {state['batches_per_epoch']} batches already committed",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="infer-digits-") as folder:
        model = Path(folder) / "model.npz"
        np.savez(model, weights=weights, bias=bias)
        infer(args, model)
    state = client.infer_cursor(args.dataset, args.output, args.batch_size, split=args.split)
    print(f"inference job {state['cursor']}: {len(acked_batches(state, 0))} of {state['batches_per_epoch']} "
          f"batches committed", flush=True)
    if args.db is None:
        print("no --db: skipping the SQL join")
        return 0
    return report(args, state)


if __name__ == "__main__":
    sys.exit(main())
