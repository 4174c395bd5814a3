#!/usr/bin/env python3
"""Inference write-back benchmark driver (run via Benchmarks/inference/run.sh or `make bench-infer`).

N CIFAR-shaped samples (image uint8 [3,32,32] + label int64) are ingested once into
WORK/cifar.mbdb. A do-nothing model (outputs.Precomputed in Python, PrecomputedModel in
Swift: precomputed outputs, a view per batch) runs over every sample (split all, batch
256, no shuffle, last batch padded) and its outputs are committed, for two output shapes:

  scores     pred int64 + prob float32[10]   (48 bytes a row)
  embedding  emb float32[512]                (2,048 bytes a row)

Write-back contenders (for each shape):
  serve-1, serve-2  `mbdata serve` + the Python client (client.infer … batch.submit), 1 and 2
                    consumer processes sharing the job
  serve-1q, serve-2q  the same pipelined: queued submissions (Client(submit_window=4): each
                    batch's outputs are sent by a background thread) and the next batch
                    leased ahead (client.infer(lease_ahead=1)) while this one is computed
  swift-k1, swift-k4  in process: `mbdata-infer-bench infer`, InferenceJob with k = 1 and 4
  peer      Python: the samples read from the dataset file batch by batch in _id order
            (numpy), the outputs written into an SQLite table of the same file with
            executemany, WAL mode, one transaction per batch, arrays as blobs
  npsave    the lower bound of any store: the same reads, np.save per batch into a directory
  floor     the write floor of any store in the dataset's SQLite file: `sqlite-floor`
            (sqlite_floor.c, built by run.sh) commits the same rows into a table of the file,
            a transaction per batch, WAL, synchronous=NORMAL, outputs built before the clock
            starts, nothing read; checkpoints as mbdata's (WALCheckpointer's thresholds)
  floor-sqlite  the same with SQLite's auto-checkpoint, as the peer's connection does
Read side alone (nothing written):
  serve-read       client.infer without submitting (stopped once every batch was leased)
  serve-read-q     the same with lease_ahead=1, as the pipelined runs lease
  share-read-seq   training's work-sharing stream (client.share, acks) over the same plan
  share-read       the same stream as training uses it: shuffled (seed 7), tail dropped
  swift-read       the InferenceJob's loop (its loader and plan) with a trainer that only reads
  swift-train-read the same loader as training uses it: shuffled (seed 7), tail dropped
  sqlite-read      the peers' reads alone

Every run starts from the same state (untimed): the output dropped and created again
(`mbdata-infer-bench reset`), the peer's table dropped and created, the np.save folder
emptied, the WAL checkpointed, the dataset file read once (page cache). Then fresh
processes (and a fresh daemon for serve runs), READY/go as in the serve benchmark;
REPEATS rounds with every configuration interleaved; the report gives each one's median.
Afterwards the rows are checked: every sample has exactly one output row, of the right size.

Environment:
  N            samples (default 200000)
  MBDATA       mbdata binary (default .build/release/mbdata)
  BENCH_BIN    the in-process bench (default .build/release/mbdata-infer-bench)
  FLOOR_BIN    the write floor's program (default WORK/sqlite-floor, built by run.sh)
  WORK         work folder (default Benchmarks/work/inference; gitignored)
  RESULTS      markdown report (default Benchmarks/results/inference.md; .json beside it)
  README_APPEND  1: append the summary to Benchmarks/README.md § "Inference write-back"
               (default: 1 when RESULTS is the default, else 0)
  SHAPES       default scores,embedding
  RUNS         default serve-1,serve-2,serve-1q,serve-2q,swift-k1,swift-k4,peer,npsave,floor,floor-sqlite,
               serve-read,serve-read-q,
               share-read-seq,share-read,swift-read,swift-train-read,sqlite-read
  REPEATS      rounds (default 3)
  BATCH_SIZE   default 256
  READ_K       k of the in-process read-side runs (default 1)
  PEER_SYNC    the peer's PRAGMA synchronous (default NORMAL, as mbdata's connections in WAL)
  SERVE_ARGS   extra arguments for `mbdata serve`
  TIMEOUT      per-run limit in seconds (default 300)
  KEEP         1: keep the logs and state databases
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from outputs import SCHEMAS, fields, row_bytes, sql_type  # noqa: E402

# The serve benchmark's driver: its daemon wrapper, the READY/go runner with memory sampling,
# and through it the helpers of the shard and ingest drivers (machine info, stamps, prewarm).
_spec = importlib.util.spec_from_file_location("serve_bench", HERE.parent / "serve" / "bench.py")
srv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(srv)  # type: ignore[union-attr]
sb, ib = srv.sb, srv.ib
rel, fmt, prewarm, short_cmd, last_lines = ib.rel, ib.fmt, ib.prewarm, sb.short_cmd, sb.last_lines

SAMPLE_BYTES = 3 * 32 * 32 + 8
TARGET_VS_PEER = 2.0
WRITE_RUNS = ["serve-1", "serve-2", "serve-1q", "serve-2q", "swift-k1", "swift-k4", "peer", "npsave", "floor", "floor-sqlite"]
FLOORS = ["floor", "floor-sqlite"]
READ_RUNS = ["serve-read", "serve-read-q", "share-read-seq", "share-read", "swift-read", "swift-train-read", "sqlite-read"]
MBDATA_WRITERS = ["serve-1", "serve-2", "serve-1q", "serve-2q", "swift-k1", "swift-k4"]
SUBMIT_WINDOW = 4  # the pipelined runs' Client(submit_window=…)
LEASE_AHEAD = 1  # and their client.infer(lease_ahead=…)
READ_OUTPUT = "readside"  # the output the serve-read runs lease against (nothing is written to it)

LABELS = {
    "serve-1": "mbdata serve + Python client, 1 process",
    "serve-2": "mbdata serve + Python client, 2 processes",
    "serve-1q": "mbdata serve + Python client, pipelined, 1 process",
    "serve-2q": "mbdata serve + Python client, pipelined, 2 processes",
    "swift-k1": "in process (InferenceJob), k = 1",
    "swift-k4": "in process (InferenceJob), k = 4",
    "peer": "Python peer: SQLite executemany, WAL, a transaction per batch",
    "npsave": "lower bound: np.save per batch",
    "floor": "write floor: SQLite alone (C, outputs prebuilt, nothing read), mbdata's checkpoints",
    "floor-sqlite": "write floor: SQLite alone (C, outputs prebuilt, nothing read), SQLite's auto-checkpoint",
    "serve-read": "serve, infer leases, no submit",
    "serve-read-q": "serve, infer leases ahead (lease_ahead=1, as pipelined), no submit",
    "share-read-seq": "serve, training's share stream, same plan (no shuffle)",
    "share-read": "serve, training's share stream, shuffled",
    "swift-read": "in process, the job's loop without writing",
    "swift-train-read": "in process, training's loader, shuffled",
    "sqlite-read": "Python, the peers' SQLite reads",
}


def log(msg: str) -> None:
    print(f"[bench-infer] {msg}", file=sys.stderr, flush=True)


srv.log = sb.log = log  # the other drivers' helpers log under this benchmark's name


def env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    return int(v) if v else default


def env_list(name: str, default: list[str]) -> list[str]:
    v = os.environ.get(name)
    return [x.strip() for x in v.split(",") if x.strip()] if v else list(default)


def env_path(name: str, default: Path) -> Path:
    p = Path(os.environ.get(name) or default)
    return p if p.is_absolute() else ROOT / p


# ------------------------------------------------------------------ preparation

def prepare(work: Path, n: int, mbdata: Path, timeout: float) -> dict:
    folder = work / "cifar"
    subprocess.run([sys.executable, str(HERE.parent / "ingest" / "generate.py"), "--n", str(n), "--work", str(folder),
                    "--no-jsonl"], check=True)
    man = json.loads((folder / "manifest.json").read_text())
    db = work / "cifar.mbdb"
    stamp = {"inputs": {k: man.get(k) for k in ("format_version", "n", "seed", "sizes")}, "mbdata_sha256": sb.file_sha(mbdata)}
    ingest = sb.ensure_db("cifar", db, ["--schema", str(folder / "cifar.schema.json"), f"image={folder / 'images.npy'}",
                                        f"label={folder / 'labels.npy'}"], stamp, mbdata, False, timeout)
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    count, page_size = con.execute("SELECT count(*) FROM samples").fetchone()[0], con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    if count != n:
        raise RuntimeError(f"{db}: {count} samples, expected {n}")
    schemas = {}
    for name, schema in SCHEMAS.items():
        path = work / "schemas" / f"{name}.schema.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema) + "\n")
        schemas[name] = path
    return {"db": db, "ingest": ingest, "schemas": schemas, "page_size": page_size, "folder": folder}


# ------------------------------------------------------------------ state before a run

def checkpoint(db: Path) -> None:
    con = sqlite3.connect(str(db), isolation_level=None)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def reset_output(bench_bin: Path, db: Path, output: str, schema: Path, timeout: float) -> None:
    cmd = [str(bench_bin), "reset", str(db), output, str(schema)]
    rc, _out, err, _wall = sb.run_timed(cmd, timeout)
    if rc != 0:
        raise RuntimeError(f"reset failed (exit {rc}): {short_cmd(cmd)}\n{last_lines(err, 10)}")


def reset_table(db: Path, table: str, schema: dict) -> None:
    """The peer's or the write floor's table, dropped and created empty (a column per field)."""
    columns = ", ".join(f"{name} {sql_type(dtype, shape)} NOT NULL" for name, dtype, shape in fields(schema))
    con = sqlite3.connect(str(db), isolation_level=None)
    con.execute(f"DROP TABLE IF EXISTS {table}")
    con.execute(f"CREATE TABLE {table} (_id INTEGER PRIMARY KEY, {columns})")
    con.close()


# ------------------------------------------------------------------ checks after a run

def expected_batches(n: int, batch: int) -> int:
    return -(-n // batch)  # tail padded: every sample is in a batch


def check_output(db: Path, table: str, schema: dict, n: int, job_output: str | None, batches: int) -> dict:
    """Every sample has exactly one row (the table's _id is its primary key), each array
    blob has its size, and for an mbdata output its job recorded every batch once."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    problems = []
    rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    joined = con.execute(f"SELECT count(*) FROM {table} JOIN samples USING (_id)").fetchone()[0]
    if rows != n or joined != n:
        problems.append(f"{rows} rows ({joined} with a sample), expected {n}")
    for name, dtype, shape in fields(schema):
        if shape:
            size = dtype.itemsize * int(np.prod(shape))
            bad = con.execute(f"SELECT count(*) FROM {table} WHERE length({name}) != ?", (size,)).fetchone()[0]
            if bad:
                problems.append(f"{bad} {name} blobs not {size} bytes")
    if job_output is not None:
        got = con.execute("SELECT count(*), coalesce(sum(rows), 0) FROM mbdata_output_batches WHERE job IN "
                          "(SELECT id FROM mbdata_output_jobs WHERE output = ?)", (job_output,)).fetchone()
        if tuple(got) != (batches, n):
            problems.append(f"job records {got[0]} batches / {got[1]} rows, expected {batches} / {n}")
    con.close()
    return {"ok": not problems, "rows": rows, "problems": problems}


def floor_fields(schema: dict) -> list[str]:
    """sqlite-floor's FIELD arguments: NAME=int64 for an integer scalar, NAME=blob:BYTES for an array."""
    out = []
    for name, dtype, shape in fields(schema):
        if shape:
            out.append(f"{name}=blob:{dtype.itemsize * int(np.prod(shape))}")
        elif dtype.kind in "iub":
            out.append(f"{name}=int64")
        else:
            raise ValueError(f"sqlite-floor writes integer scalars and arrays, not a {dtype} scalar ({name})")
    return out


def check_npsave(folder: Path, n: int) -> dict:
    ids = [np.load(p) for p in sorted(folder.glob("*._id.npy"))]
    got = np.concatenate(ids) if ids else np.empty(0, np.int64)
    ok = len(got) == n and len(np.unique(got)) == n
    return {"ok": ok, "rows": int(len(got)), "files": sum(1 for _ in folder.iterdir()),
            "bytes": sum(p.stat().st_size for p in folder.iterdir()), "problems": [] if ok else [f"{len(got)} ids"]}


def outputs_metrics(url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
            for line in r.read().decode(errors="replace").splitlines():
                m = re.match(r"(mbdata_outputs_[a-z_]+)(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)$", line)
                if m:
                    out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    except OSError as e:
        out["error"] = str(e)  # type: ignore[assignment]
    return out


# ------------------------------------------------------------------ one measurement

def consumer(ctx: dict, mode: str, *more: str) -> list[str]:
    return [sys.executable, str(HERE / "consumer.py"), "--mode", mode, "--batch-size", str(ctx["batch"]), *more]


def commands(cfg: str, shape: str | None, ctx: dict, url: str) -> list[list[str]]:
    db, batch, bench_bin = ctx["db"], ctx["batch"], ctx["bench_bin"]
    schema = str(ctx["schemas"][shape]) if shape else ""
    if cfg in ("serve-1", "serve-2", "serve-1q", "serve-2q"):
        window = ["--submit-window", str(SUBMIT_WINDOW), "--lease-ahead", str(LEASE_AHEAD)] if cfg.endswith("q") else []
        return [consumer(ctx, "serve", "--url", url, "--output", shape, "--schema", schema, *window)] * int(cfg[6])
    if cfg.startswith("swift-k"):
        return [[str(bench_bin), "infer", str(db), shape, cfg[7:], str(batch)]]
    if cfg == "peer":
        return [consumer(ctx, "peer", "--db", str(db), "--table", f"peer_{shape}", "--schema", schema,
                         "--synchronous", ctx["peer_sync"])]
    if cfg == "npsave":
        return [consumer(ctx, "npsave", "--db", str(db), "--schema", schema, "--out-dir", str(ctx["npsave_dir"]))]
    if cfg in FLOORS:
        checkpoints = "background" if cfg == "floor" else "sqlite"
        return [[str(ctx["floor_bin"]), str(db), f"floor_{shape}", str(batch), checkpoints, *floor_fields(SCHEMAS[shape])]]
    if cfg in ("serve-read", "serve-read-q"):
        ahead = ["--lease-ahead", str(LEASE_AHEAD)] if cfg.endswith("q") else []
        return [consumer(ctx, "serve-read", "--url", url, "--output", READ_OUTPUT,
                         "--batches", str(expected_batches(ctx["n"], batch)), *ahead)]
    if cfg in ("share-read", "share-read-seq"):
        plan = ["--seed", "7", "--shuffle", "1", "--tail", "drop"] if cfg == "share-read" else \
            ["--seed", "0", "--shuffle", "0", "--tail", "pad"]
        return [consumer(ctx, "share-read", "--url", url, "--group", f"bench-{time.time_ns()}", *plan)]
    if cfg in ("swift-read", "swift-train-read"):
        return [[str(bench_bin), "read", str(db), str(ctx["read_k"]), str(batch)] + (["train"] if cfg == "swift-train-read" else [])]
    if cfg == "sqlite-read":
        return [consumer(ctx, "sqlite-read", "--db", str(db))]
    raise ValueError(f"unknown configuration {cfg}")


def prepare_state(cfg: str, shape: str | None, ctx: dict, timeout: float) -> None:
    db = ctx["db"]
    if cfg in MBDATA_WRITERS:
        reset_output(ctx["bench_bin"], db, shape, ctx["schemas"][shape], timeout)
    elif cfg in ("serve-read", "serve-read-q"):
        reset_output(ctx["bench_bin"], db, READ_OUTPUT, ctx["schemas"]["scores"], timeout)
    elif cfg == "peer":
        reset_table(db, f"peer_{shape}", SCHEMAS[shape])
    elif cfg in FLOORS:
        reset_table(db, f"floor_{shape}", SCHEMAS[shape])
    elif cfg == "npsave":
        shutil.rmtree(ctx["npsave_dir"], ignore_errors=True)
        ctx["npsave_dir"].mkdir(parents=True)
    checkpoint(db)


def measure(cfg: str, shape: str | None, rep: int, ctx: dict, work: Path, mbdata: Path, timeout: float,
            serve_extra: list[str]) -> dict:
    tag = f"{cfg}-{shape}-r{rep}" if shape else f"{cfg}-r{rep}"
    res: dict = {"config": cfg, "shape": shape, "rep": rep}
    serve = None
    try:
        prepare_state(cfg, shape, ctx, timeout)
        res["prewarm_s"] = round(prewarm([p for p in ib.db_files(ctx["db"]) if p.is_file() and not p.name.endswith(".json")]), 2)
        res["others_cores_busy"] = round(sb.others_busy(0.5), 2)
        url = ""
        if cfg.startswith(("serve", "share")):
            serve = srv.Serve(mbdata, ctx["db"], None, work, tag, serve_extra)
            res["serve_command"] = short_cmd(serve.cmd)
            res["serve_ready_s"] = round(serve.start(), 3)
            url = serve.url
        cmds = commands(cfg, shape, ctx, url)
        res["commands"] = [short_cmd(c) for c in cmds]
        log(f"{tag}: " + (f"{len(cmds)} × " if len(cmds) > 1 else "") + short_cmd(cmds[0]))
        run = srv.run_consumers(cmds, work, tag, timeout, serve)
        if serve is not None:
            res["metrics"] = outputs_metrics(serve.url)
        res.update(summarize(run, len(cmds), row_bytes(SCHEMAS[shape]) if shape else 0))
        if run["errors"]:
            srv.record_failure(res, tag, run["errors"])
    except Exception as e:  # noqa: BLE001
        srv.record_failure(res, tag, [f"FAILED: {type(e).__name__}: {e}"])
    finally:
        if serve is not None and serve.proc is not None:
            res["serve_exit"] = serve.terminate()
            res["serve_log_tail"] = serve.log_tail(6)
    if res.get("ok") and shape:
        if cfg == "npsave":
            res["check"] = check_npsave(ctx["npsave_dir"], ctx["n"])
        else:
            table = {"peer": f"peer_{shape}", "floor": f"floor_{shape}", "floor-sqlite": f"floor_{shape}"}.get(cfg, f"outputs_{shape}")
            res["check"] = check_output(ctx["db"], table, SCHEMAS[shape], ctx["n"], shape if cfg in MBDATA_WRITERS else None,
                                        expected_batches(ctx["n"], ctx["batch"]))
        if not res["check"]["ok"]:
            res["ok"] = False
            log(f"{tag}: check failed: {res['check']['problems']}")
    elif res.get("ok") and res["rows"] < ctx["n"] - ctx["batch"]:
        res["ok"] = False
        res.setdefault("errors", []).append(f"read {res['rows']} rows of {ctx['n']}")
    if res.get("rows_per_s"):
        log(f"{tag}: {res['rows_per_s']:,.0f} rows/s"
            + (f", {res['out_mb_per_s']:,.1f} MB/s of outputs" if shape else f", {res['read_mb_per_s']:,.1f} MB/s read")
            + f", peak RSS {res['rss_mib']:,.0f} MiB" + (f", daemon {res['serve_hwm_mib']:,.0f} MiB" if res.get("serve_hwm_mib") else ""))
    return res


def summarize(run: dict, k: int, out_row_bytes: int) -> dict:
    cl = run["clients"]
    if len(cl) != k:
        return {"ok": False}
    rows = sum(c["rows"] for c in cl)
    wall = max(c["seconds"] for c in cl)  # each process times itself from reading `go`
    return {
        "ok": not run["errors"], "rows": rows, "batches": sum(c["batches"] for c in cl), "wall_s": wall,
        "rows_per_s": rows / wall if wall > 0 and rows else None,
        "out_mb_per_s": rows * out_row_bytes / 1e6 / wall if wall > 0 and rows else None,
        "read_mb_per_s": rows * SAMPLE_BYTES / 1e6 / wall if wall > 0 and rows else None,
        "per_process_rows": [c["rows"] for c in cl],
        "rss_mib": max(c.get("time_rss_mib", 0) for c in cl),
        "consumer_cpu_s": sum(c.get("time_user_s", 0) + c.get("time_sys_s", 0) for c in cl),
        "serve_hwm_mib": run["serve"].get("hwm_mib"), "serve_cpu_s": run["serve"].get("cpu_s"),
        "extra": {key: cl[0][key] for key in ("close_s", "journal_mode", "synchronous", "reconnects", "finished", "total")
                  if key in cl[0]},
    }


def median_run(reps: list[dict]) -> dict | None:
    good = sorted((r for r in reps if r.get("ok") and r.get("rows_per_s")), key=lambda r: r["rows_per_s"])
    return good[(len(good) - 1) // 2] if good else (reps[-1] if reps else None)


# ------------------------------------------------------------------ report

def round_ratios(reps: dict, a: tuple, b: tuple) -> list[float]:
    """a's rows/s ÷ b's in each round where both succeeded: the machine's load drifts
    between rounds, so a ratio is taken within a round, where the two ran minutes apart."""
    out = []
    for ra, rb in zip(reps.get(a, []), reps.get(b, [])):
        if ra.get("ok") and rb.get("ok") and ra.get("rows_per_s") and rb.get("rows_per_s"):
            out.append(ra["rows_per_s"] / rb["rows_per_s"])
    return out


def ratio_rows(reps: dict, shapes: list[str], runs: list[str]) -> list[dict]:
    """The median over rounds of each comparison's per-round ratio, with its range."""
    def entry(what: str, a: tuple, b: tuple, target: float | None) -> dict | None:
        values = round_ratios(reps, a, b)
        if not values:
            return None
        v = statistics.median(values)
        return {"what": what, "value": v, "low": min(values), "high": max(values), "rounds": len(values),
                "target": f"≥ {target:g}×" if target else "–",
                "result": ("PASS" if v >= target else "**FAIL**") if target else "(info)"}

    out = []
    for shape in shapes:
        for cfg in MBDATA_WRITERS + ["npsave"] + FLOORS:
            if cfg in runs:
                out.append(entry(f"{shape}: {LABELS[cfg]} ÷ Python SQLite peer", (cfg, shape), ("peer", shape),
                                 TARGET_VS_PEER if cfg in MBDATA_WRITERS else None))
    for a, b, target in (("serve-read", "share-read-seq", 1.0), ("serve-read", "share-read", 1.0),
                         ("serve-read-q", "share-read-seq", 1.0), ("serve-read-q", "share-read", 1.0),
                         ("swift-read", "swift-train-read", 1.0), ("serve-read", "sqlite-read", None)):
        out.append(entry(f"read side: {LABELS[a]} ÷ {LABELS[b]}", (a, None), (b, None), target))
    return [q for q in out if q]


def render(info: dict, settings: dict, table: dict, reps: dict, shapes: list[str], runs: list[str], ratios: list[dict],
           ctx: dict) -> str:
    n, batch = ctx["n"], ctx["batch"]
    out = ["# mbdata inference write-back benchmark\n"]
    out.append(f"N = {n:,} CIFAR-shaped samples (image uint8 [3,32,32] + label int64), split all, batch {batch}, no "
               f"shuffle, last batch padded ({expected_batches(n, batch)} batches); a do-nothing model whose outputs are "
               f"precomputed. Outputs: **scores** = pred int64 + prob float32[10] ({row_bytes(SCHEMAS['scores'])} B a row), "
               f"**embedding** = emb float32[512] ({row_bytes(SCHEMAS['embedding'])} B a row). MB = 10^6 bytes of output "
               f"fields committed (the `_id` not counted). Every figure is the median of {settings['repeats']} runs by rows/s; "
               f"a ratio (÷ peer, targets) is the median of the ratios within each round, as the machine's load drifts "
               f"between rounds.\n")
    out.append("| | |\n|---|---|")
    for k, v in {**info, **settings}.items():
        out.append(f"| {k} | {v} |")
    out.append("")
    for shape in shapes:
        out.append(f"## Write-back: {shape}\n")
        out.append("| contender | rows/s | MB/s of outputs | ÷ peer | wall s | peak RSS MiB | daemon peak RSS MiB | "
                   "consumer CPU s | daemon CPU s | runs ok |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for cfg in WRITE_RUNS:
            r = table.get((cfg, shape))
            if cfg not in runs or r is None:
                continue
            in_rounds = round_ratios(reps, (cfg, shape), ("peer", shape))
            ratio = statistics.median(in_rounds) if in_rounds else None
            ok = sum(1 for x in reps[(cfg, shape)] if x.get("ok"))
            out.append(f"| {LABELS[cfg]} | {fmt(r.get('rows_per_s'), ',.0f')} | {fmt(r.get('out_mb_per_s'), ',.1f')} | "
                       f"{fmt(ratio, '.2f')}{'×' if ratio else ''} | {fmt(r.get('wall_s'), '.2f')} | {fmt(r.get('rss_mib'), ',.0f')} | "
                       f"{fmt(r.get('serve_hwm_mib'), ',.0f')} | {fmt(r.get('consumer_cpu_s'), '.2f')} | "
                       f"{fmt(r.get('serve_cpu_s'), '.2f')} | {ok}/{len(reps[(cfg, shape)])} |")
        out.append("")
    if any(cfg in runs for cfg in READ_RUNS):
        out.append("## Read side alone (nothing written)\n")
        out.append("| loop | rows/s | MB/s of samples read | wall s | peak RSS MiB | daemon peak RSS MiB | runs ok |")
        out.append("|---|---:|---:|---:|---:|---:|---|")
        for cfg in READ_RUNS:
            r = table.get((cfg, None))
            if cfg not in runs or r is None:
                continue
            ok = sum(1 for x in reps[(cfg, None)] if x.get("ok"))
            out.append(f"| {LABELS[cfg]} | {fmt(r.get('rows_per_s'), ',.0f')} | {fmt(r.get('read_mb_per_s'), ',.1f')} | "
                       f"{fmt(r.get('wall_s'), '.2f')} | {fmt(r.get('rss_mib'), ',.0f')} | {fmt(r.get('serve_hwm_mib'), ',.0f')} | "
                       f"{ok}/{len(reps[(cfg, None)])} |")
        out.append("")
    if ratios:
        out.append("## Ratios and targets\n")
        out.append("| comparison | median of the rounds' ratios (range) | target | result |")
        out.append("|---|---:|---:|---|")
        for q in ratios:
            out.append(f"| {q['what']} | {q['value']:.2f}× ({q['low']:.2f}–{q['high']:.2f}, {q['rounds']} rounds) | "
                       f"{q['target']} | {q['result']} |")
        out.append("")
    out.append("## Details\n")
    for (cfg, shape), rs in reps.items():
        first = rs[0] if rs else {}
        out.append(f"- **{cfg}{' / ' + shape if shape else ''}** ({LABELS[cfg]}): `{(first.get('commands') or ['?'])[0]}`"
                   + (f"; daemon `{first['serve_command']}`" if first.get("serve_command") else ""))
        for r in rs:
            if r.get("rows_per_s"):
                body = (f"{r['rows_per_s']:,.0f} rows/s, {r['rows']:,} rows in {r['wall_s']:.2f} s, RSS {r['rss_mib']:,.0f} MiB"
                        + (f", daemon {r['serve_hwm_mib']:,.0f} MiB / {fmt(r.get('serve_cpu_s'), '.2f')} CPU s" if r.get("serve_hwm_mib") else "")
                        + (f", {r['extra']}" if r.get("extra") else ""))
            else:
                body = "no result"
            s = f"run {r['rep']}: {body}, other load {r.get('others_cores_busy')} cores"
            if r.get("check"):
                s += ", check " + ("ok" if r["check"]["ok"] else f"**{r['check']['problems']}**")
            if r.get("metrics"):
                rows_total = sum(v for k, v in r["metrics"].items() if k.startswith("mbdata_outputs_rows_total"))
                refused = sum(v for k, v in r["metrics"].items() if k.startswith("mbdata_outputs_refused_total"))
                s += f", daemon metrics: {rows_total:,.0f} rows, {refused:,.0f} refused"
            if r.get("errors"):
                s += "; **errors**: " + " / ".join(e.replace("\n", " ")[:300] for e in r["errors"])
            out.append(f"  - {s}")
    out.append("")
    out.append(
        f"How it is measured: the dataset `{rel(ctx['db'])}` ({ctx['page_size']} B pages) is ingested once. Before every "
        "run (untimed) the output is dropped and created again (`mbdata-infer-bench reset`), or the peer's table dropped "
        "and created, or the np.save folder emptied; the WAL is checkpointed and the dataset file read once (page cache). "
        "Every run starts fresh processes (and a fresh `mbdata serve` for serve runs); each process sets up (imports, "
        "opens the dataset, creates the job), says READY, and times itself from the driver's `go` to its last batch "
        "committed (or read); **rows/s** = real rows (padding excluded) of all processes ÷ the slowest process's time. "
        "The peer writes into the dataset file itself, into a table `peer_<shape>` (`_id INTEGER PRIMARY KEY`, one "
        "column per field as mbdata types it), with `journal_mode=WAL` and `synchronous` as in the settings (mbdata's "
        "connections run WAL with `synchronous=NORMAL`: a commit survives a crash of the process, not of the machine; "
        "np.save does not sync at all). The write floor (`sqlite-floor`, C, the system's libsqlite3) writes the same rows into `floor_<shape>` of the same file with the same settings, outputs built and sample `_id`s read before READY, nothing else in its loop. After each write run the rows are checked: one per sample, joined to "
        "`samples`, blobs of the right size, and for mbdata outputs the job's committed batches. **peak RSS** = GNU "
        "time's maximum resident set size of the consumer (the largest of the processes); **daemon** = its VmHWM.")
    return "\n".join(out) + "\n"


def readme_summary(info: dict, table: dict, reps: dict, shapes: list[str], runs: list[str], ratios: list[dict], ctx: dict,
                   repeats: int) -> str:
    out = [f"#### Run of {info['date']} ({info['nproc']} cores, {info['cpu']}, {info['memory']}; commit "
           f"{info['git commit']}; N = {ctx['n']:,}, batch {ctx['batch']}, medians of {repeats})\n"]
    head = "| contender | " + " | ".join(f"{s} rows/s | {s} MB/s | ÷ peer" for s in shapes) + " |"
    out += [head, "|---|" + "---:|" * (3 * len(shapes))]
    for cfg in WRITE_RUNS:
        if cfg not in runs:
            continue
        cells = []
        for s in shapes:
            r = table.get((cfg, s)) or {}
            ok = r.get("ok") and r.get("rows_per_s")
            in_rounds = round_ratios(reps, (cfg, s), ("peer", s))
            ratio = statistics.median(in_rounds) if in_rounds else None
            cells += [fmt(r.get("rows_per_s") if ok else None, ",.0f"), fmt(r.get("out_mb_per_s") if ok else None, ",.1f"),
                      fmt(ratio, ".2f") + ("×" if ratio else "")]
        out.append(f"| {LABELS[cfg]} | " + " | ".join(cells) + " |")
    reads = [(cfg, table.get((cfg, None))) for cfg in READ_RUNS if cfg in runs]
    if reads:
        out.append("")
        out.append("Read side alone, rows/s: " + "; ".join(
            f"{LABELS[c]} {fmt(r.get('rows_per_s') if r and r.get('ok') else None, ',.0f')}" for c, r in reads) + ".")
    if ratios:
        out.append("")
        out.append("Targets: " + "; ".join(f"{q['what']} {q['value']:.2f}× ({q['result']})" for q in ratios
                                            if q["result"] != "(info)") + ".")
    out.append("\nFull report: [`results/inference.md`](results/inference.md).\n")
    return "\n".join(out) + "\n"


def append_to_readme(readme: Path, text: str) -> None:
    """Inserts `text` at the end of the § "Inference write-back" (before the next `## `)."""
    lines = readme.read_text().splitlines(keepends=True)
    start = next((i for i, l in enumerate(lines) if l.strip() == "## Inference write-back"), None)
    if start is None:
        lines += ["\n## Inference write-back\n", "\n"]
        start = len(lines) - 2
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    lines[end:end] = ["\n", text.rstrip("\n") + "\n"]
    readme.write_text("".join(lines))


# ------------------------------------------------------------------ main

def main() -> int:
    n = env_int("N", 200_000)
    mbdata = env_path("MBDATA", ROOT / ".build/release/mbdata")
    bench_bin = env_path("BENCH_BIN", ROOT / ".build/release/mbdata-infer-bench")
    work = env_path("WORK", ROOT / "Benchmarks/work/inference")
    default_results = ROOT / "Benchmarks/results/inference.md"
    results = env_path("RESULTS", default_results)
    readme_append = os.environ.get("README_APPEND", "1" if results == default_results else "0") == "1"
    shapes = env_list("SHAPES", list(SCHEMAS))
    runs = env_list("RUNS", WRITE_RUNS + READ_RUNS)
    unknown = [r for r in runs if r not in LABELS] + [s for s in shapes if s not in SCHEMAS]
    if unknown:
        raise SystemExit(f"unknown configuration or shape: {', '.join(unknown)}")
    if "peer" not in runs and any(r in runs for r in MBDATA_WRITERS):
        log("note: no peer run, so no ratios to the peer")
    repeats = env_int("REPEATS", 3)
    timeout = float(env_int("TIMEOUT", 300))
    serve_extra = shlex.split(os.environ.get("SERVE_ARGS", ""))
    floor_bin = env_path("FLOOR_BIN", work / "sqlite-floor")
    for binary in (mbdata, bench_bin) + ((floor_bin,) if any(r in runs for r in FLOORS) else ()):
        if not binary.exists():
            raise SystemExit(f"{binary} not found: build it first (make release; run.sh builds sqlite-floor)")
    (work / "logs").mkdir(parents=True, exist_ok=True)

    srv.exit_on_signals()
    t_start = time.perf_counter()
    ctx = prepare(work, n, mbdata, timeout)
    ctx.update({"n": n, "batch": env_int("BATCH_SIZE", 256), "bench_bin": bench_bin, "read_k": env_int("READ_K", 1),
                "peer_sync": os.environ.get("PEER_SYNC", "NORMAL"), "npsave_dir": work / "npsave", "floor_bin": floor_bin})
    info = ib.machine_info(work, mbdata)
    info["mbdata-infer-bench binary"] = f"{rel(bench_bin)} (sha256 {sb.file_sha(bench_bin)})"
    info["mbdata_client"] = srv.client_info()
    if floor_bin.exists():
        info["sqlite-floor binary"] = f"{rel(floor_bin)} (sha256 {sb.file_sha(floor_bin)})"
    settings = {"N": f"{n:,}", "batch": ctx["batch"], "repeats": repeats, "shapes": ", ".join(shapes),
                "peer": f"journal_mode=WAL, synchronous={ctx['peer_sync']}, one transaction per batch, executemany",
                "in-process read k": ctx["read_k"], "serve extra args": shlex.join(serve_extra) or "none"}

    plan = [(cfg, shape) for shape in shapes for cfg in WRITE_RUNS if cfg in runs] + \
           [(cfg, None) for cfg in READ_RUNS if cfg in runs]
    reps: dict[tuple, list[dict]] = {key: [] for key in plan}
    for rep in range(1, repeats + 1):
        for cfg, shape in plan:
            reps[(cfg, shape)].append(measure(cfg, shape, rep, ctx, work, mbdata, timeout, serve_extra))
    table = {key: median_run(rs) for key, rs in reps.items()}
    ratios = ratio_rows(reps, shapes, runs)
    info["total run time"] = f"{time.perf_counter() - t_start:.0f} s"

    md = render(info, settings, table, reps, shapes, runs, ratios, ctx)

    def clean(o):
        if isinstance(o, dict):
            return {(k if isinstance(k, str) else "/".join(x for x in k if x)): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return rel(o) if isinstance(o, Path) else o

    doc = {"machine": info, "settings": settings, "ratios": ratios,
           "table": clean({k: {kk: vv for kk, vv in (v or {}).items() if kk != "run"} for k, v in table.items()}),
           "runs": clean({k: [{kk: vv for kk, vv in r.items() if kk != "run"} for r in rs] for k, rs in reps.items()}),
           "data": clean({k: ctx[k] for k in ("db", "ingest", "page_size")})}
    srv.write_report(results, md, doc)
    if readme_append:
        append_to_readme(ROOT / "Benchmarks" / "README.md", readme_summary(info, table, reps, shapes, runs, ratios, ctx, repeats))
        log("appended the summary to Benchmarks/README.md § Inference write-back")
    if os.environ.get("KEEP") != "1":
        shutil.rmtree(work / "state", ignore_errors=True)
        shutil.rmtree(ctx["npsave_dir"], ignore_errors=True)
    failed = [f"{c}{'/' + s if s else ''}" for (c, s), rs in reps.items() if not any(r.get("ok") for r in rs)]
    if failed:
        log(f"no successful run of: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        srv.stop_children()
