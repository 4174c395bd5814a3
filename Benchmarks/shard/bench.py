#!/usr/bin/env python3
"""Shard benchmark driver for mbdata (run via Benchmarks/shard/run.sh).

For each dataset (CIFAR-shaped from ingest/generate.py NPY files; variable-length
token sequences from generate_tokens.py JSONL):

  inputs (skipped if present) -> `mbdata ingest` into a SQLite dataset (not part of
  the benchmark; reused while inputs and binary are unchanged) -> read the DB once
  (page cache) -> `mbdata shard DB --out DIR --batch-size 256 --epochs 1 --seed 7`
  under `/usr/bin/time -v` -> read every shard's footer -> `mbdata inspect DIR --json`
  (cross-checked against the footers) -> `mbdata verify DIR` (not timed in the rates)
  -> ceiling: decompress the first CEILING_MB of batches into one file and run
  `lz4 -b1 -i3 FILE` (single-core LZ4 fast compression of the same bytes) x nproc.
Before the datasets, the disk's sequential write bandwidth (dd with fsync) is measured
once, as a second reference: shard files are fsynced, so compressed MB/s cannot exceed it.

Results: markdown (default Benchmarks/results/shard.md, plus .json next to it) and stdout.

Environment:
  N_CIFAR      CIFAR samples (default 1000000)
  N_TOKENS     token sequences, lengths uniform 64..1024 (default 200000)
  MBDATA       mbdata binary (default .build/release/mbdata)
  WORK         work folder (default Benchmarks/work/shard; gitignored)
  RESULTS      markdown output (default Benchmarks/results/shard.md)
  DATASETS     comma list, subset of cifar,tokens (default both)
  CIFAR_INPUTS folder that already holds ingest/generate.py output for N_CIFAR samples
               (images.npy, labels.npy, cifar.schema.json, manifest.json), used read-only
               instead of generating WORK/cifar (e.g. the ingest benchmark's work folder)
  BATCH_SIZE   --batch-size (default 256); EPOCHS (default 1); SEED (default 7)
  DEPTH        if set, passed as --depth and used for the RSS bound (else the default
               from `mbdata help shard`, the manifest or inspect)
  SHARD_ARGS   extra arguments for `mbdata shard` (shell-split), e.g. "--level 1"
  CEILING_MB   decompressed batch bytes for the lz4 -b ceiling (default 384; 0 skips it)
  DD_MB        size of the disk test in MiB, `dd ... conv=fsync` as in the ingest
               benchmark (default 2048; 0 skips it). mbdata fsyncs every shard file,
               so for incompressible batches the disk is the tighter ceiling
  PREWARM      1 (default): read the DB once before each shard run; 0: off
  VERIFY       1 (default): run `mbdata verify DIR` after each run; 0: off
  REINGEST     1: ingest again even if the DB stamp matches (default 0)
  TIMEOUT      per-run limit in seconds (default 0 = none)
  KEEP         1: keep the shard folders and ceiling files (default: delete)
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
INGEST = HERE.parent / "ingest"
ALL_DATASETS = ("cifar", "tokens")

TARGET_CEILING_FRACTION = 0.60
RSS_SLACK_MIB = 64

TRAILER = struct.Struct("<QQ8s")  # footer length, footer xxh64, magic
MAGIC = b"MBSHARD1"
ENTRY = struct.Struct("<QQQIIIIQ")  # offset, length, uncompressed, epoch, batch, rank, samples, xxh64

# Shared helpers of the ingest benchmark (machine info, GNU time parsing, prewarm, fmt).
_spec = importlib.util.spec_from_file_location("ingest_bench", INGEST / "bench.py")
ib = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ib)  # type: ignore[union-attr]
rel, fmt, parse_time_v, prewarm = ib.rel, ib.fmt, ib.parse_time_v, ib.prewarm


def log(msg: str) -> None:
    print(f"[bench-shard] {msg}", file=sys.stderr, flush=True)


def env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    return int(v) if v else default


def file_sha(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()[:12]


def others_busy(seconds: float = 1.0) -> float:
    """Cores kept busy by other processes while this script waits (from /proc/stat)."""
    def sample() -> list[int]:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:]]
    try:
        a = sample()
        time.sleep(seconds)
        b = sample()
    except (OSError, ValueError):
        return float("nan")
    d = [y - x for x, y in zip(a, b)]
    total = sum(d[:8])  # user nice system idle iowait irq softirq steal
    idle = d[3] + d[4]
    return (total - idle) / total * (os.cpu_count() or 1) if total else float("nan")


def run_timed(cmd: list[str], timeout: float | None) -> tuple[object, str, str, float]:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr, time.perf_counter() - t0
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return "timeout", out, err, time.perf_counter() - t0


def last_lines(text: str, k: int) -> str:
    lines = [l for l in text.replace("\r", "\n").splitlines() if l.strip()]
    return "\n".join(lines[-k:])


def short_cmd(cmd: list[str]) -> str:
    return shlex.join(c.replace(f"{ROOT}/", "") for c in cmd)


# ------------------------------------------------------------------ inputs and datasets

def cifar_inputs(work: Path, n: int) -> tuple[Path, dict]:
    src = os.environ.get("CIFAR_INPUTS")
    if src:
        folder = Path(src) if Path(src).is_absolute() else ROOT / src
        man = json.loads((folder / "manifest.json").read_text())
        if man.get("n") != n:
            raise SystemExit(f"CIFAR_INPUTS={folder} holds n={man.get('n')}, not N_CIFAR={n}")
        for name in ("images.npy", "labels.npy", "cifar.schema.json"):
            if not (folder / name).exists():
                raise SystemExit(f"CIFAR_INPUTS={folder} lacks {name}")
        log(f"cifar inputs: using {folder} (n={n:,}, read-only)")
        return folder, man
    folder = work / "cifar"
    cmd = [sys.executable, str(INGEST / "generate.py"), "--n", str(n), "--work", str(folder), "--no-jsonl"]
    log("cifar inputs: " + short_cmd(cmd[1:]))
    subprocess.run(cmd, check=True)
    return folder, json.loads((folder / "manifest.json").read_text())


def token_inputs(work: Path, n: int) -> tuple[Path, dict]:
    folder = work / "tokens"
    cmd = [sys.executable, str(HERE / "generate_tokens.py"), "--n", str(n), "--work", str(folder)]
    log("token inputs: " + short_cmd(cmd[1:]))
    subprocess.run(cmd, check=True)
    return folder, json.loads((folder / "manifest.json").read_text())


def remove_db(db: Path) -> None:
    for p in db.parent.glob(db.name + "*"):
        if p.is_file():
            p.unlink()


def ensure_db(name: str, db: Path, ingest_args: list[str], stamp: dict, mbdata: Path,
              reingest: bool, timeout: float | None) -> dict:
    """Ingest into `db` unless a stamp file says the same inputs and binary made it."""
    stamp_path = db.with_name(db.name + ".stamp.json")
    if not reingest and db.exists() and stamp_path.exists():
        try:
            old = json.loads(stamp_path.read_text())
            if old.get("key") == stamp:
                log(f"{name}: dataset {rel(db)} up to date; reusing (ingest took {old.get('ingest_s')} s)")
                return {**old, "reused": True}
        except json.JSONDecodeError:
            pass
    remove_db(db)
    stamp_path.unlink(missing_ok=True)
    cmd = [str(mbdata), "ingest", str(db)] + ingest_args
    log(f"{name}: ingest: {short_cmd(cmd)}")
    rc, _out, err, wall = run_timed(cmd, timeout)
    if rc != 0:
        raise RuntimeError(f"ingest of {name} failed (exit {rc}):\n{last_lines(err, 15)}")
    info = {"key": stamp, "ingest_s": round(wall, 2), "command": short_cmd(cmd), "db_bytes": db.stat().st_size}
    stamp_path.write_text(json.dumps(info, indent=2) + "\n")
    log(f"{name}: ingest done in {wall:.1f} s ({info['db_bytes'] / 1e6:,.1f} MB)")
    return {**info, "reused": False}


# ------------------------------------------------------------------ shard files

def read_footers(out: Path) -> dict:
    """Totals from every shard's footer (format as in the brief / schemas)."""
    files = sorted(out.glob("*.mbshard"))
    entries: list[tuple] = []
    per_file = []
    problems: list[str] = []
    for f in files:
        size = f.stat().st_size
        with open(f, "rb") as fh:
            if size < TRAILER.size:
                problems.append(f"{f.name}: shorter than the trailer")
                continue
            fh.seek(size - TRAILER.size)
            flen, _fxx, magic = TRAILER.unpack(fh.read(TRAILER.size))
            if magic != MAGIC or flen < 8 or flen > size - TRAILER.size:
                problems.append(f"{f.name}: bad trailer (magic {magic!r}, footer {flen} bytes)")
                continue
            fh.seek(size - TRAILER.size - flen)
            footer = fh.read(flen)
        (count,) = struct.unpack_from("<Q", footer, 0)
        if flen != 8 + count * ENTRY.size:
            problems.append(f"{f.name}: footer is {flen} bytes for {count} entries")
            continue
        es = [(f,) + ENTRY.unpack_from(footer, 8 + i * ENTRY.size) for i in range(count)]
        entries.extend(es)
        per_file.append({"file": f.name, "bytes": size, "batches": count})
    if not entries:
        return {"files": len(files), "problems": problems or ["no batches found"], "batches": 0}
    comp = sum(e[2] for e in entries)
    unc = sum(e[3] for e in entries)
    return {
        "files": len(files),
        "file_bytes": sum(p["bytes"] for p in per_file),
        "batches": len(entries),
        "samples": sum(e[7] for e in entries),
        "compressed_bytes": comp,
        "uncompressed_bytes": unc,
        "max_batch_uncompressed": max(e[3] for e in entries),
        "mean_batch_uncompressed": unc / len(entries),
        "max_batch_compressed": max(e[2] for e in entries),
        "epochs": sorted({e[4] for e in entries}),
        "ranks": sorted({e[6] for e in entries}),
        "problems": problems,
        "_entries": entries,  # dropped before JSON output
    }


def flatten(obj, prefix: str = "") -> dict[str, object]:
    """Scalar leaves of a JSON value as dotted paths (lists: first 3 items only)."""
    out: dict[str, object] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            out.update(flatten(v, f"{prefix}[{i}]"))
    else:
        out[prefix] = obj
    return out


def locate(leaves: dict[str, object], value: int, hint: str) -> str | None:
    """Path of a numeric leaf equal to `value` whose name contains `hint` (shortest first)."""
    hits = [k for k, v in leaves.items()
            if isinstance(v, int) and not isinstance(v, bool) and v == value and hint in k.lower()]
    return min(hits, key=len) if hits else None


def find_depth(leaves: dict[str, object]) -> tuple[int, str] | None:
    for k, v in leaves.items():
        if re.search(r"(prefetch)?depth$", k.split(".")[-1], re.I) and isinstance(v, int):
            return v, k
    return None


def help_depth(mbdata: Path) -> int | None:
    """The `--depth` default from `mbdata help shard` (the option's block of lines)."""
    p = subprocess.run([str(mbdata), "help", "shard"], capture_output=True, text=True)
    block: list[str] = []
    for line in (p.stdout + p.stderr).splitlines():
        if re.match(r"\s*-", line):  # a new option starts
            if block:
                break
            if re.match(r"\s*--depth\b", line):
                block.append(line)
        elif block:
            block.append(line)
    m = re.search(r"\(default:? *(\d+)\)", " ".join(block))
    return int(m.group(1)) if m else None


# ------------------------------------------------------------------ ceiling

def build_ceiling_file(footers: dict, limit: int, target: Path) -> dict:
    """Decompress frames (in file order) into `target` until `limit` bytes; time lz4.frame too."""
    import lz4.frame

    written = 0
    frames = 0
    comp_time = 0.0
    comp_in = 0
    comp_out = 0
    handles: dict[Path, object] = {}
    try:
        with open(target, "wb") as out:
            for e in footers["_entries"]:
                f, off, length = e[0], e[1], e[2]
                fh = handles.get(f) or handles.setdefault(f, open(f, "rb"))
                fh.seek(off)
                data = lz4.frame.decompress(fh.read(length))
                out.write(data)
                # Single-core frame compression of the same batch, as mbdata frames it.
                t0 = time.perf_counter()
                c = lz4.frame.compress(data, compression_level=0, block_size=lz4.frame.BLOCKSIZE_MAX4MB,
                                       content_checksum=True, store_size=True)
                comp_time += time.perf_counter() - t0
                comp_in += len(data)
                comp_out += len(c)
                written += len(data)
                frames += 1
                if written >= limit:
                    break
    finally:
        for fh in handles.values():
            fh.close()
    return {"bytes": written, "frames": frames,
            "pyframe_mb_s": comp_in / 1e6 / comp_time if comp_time else None,
            "pyframe_ratio": comp_in / comp_out if comp_out else None}


def lz4_bench(path: Path) -> dict:
    cmd = ["lz4", "-b1", "-i3", str(path)]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    text = (p.stdout + p.stderr).replace("\r", "\n")
    m = None
    for m in re.finditer(r"(\d+) -> +(\d+) \(([\d.]+)\), *([\d.]+) MB/s ,? *([\d.]+) MB/s", text):
        pass
    res = {"command": "lz4 -b1 -i3 " + path.name, "exit": p.returncode}
    if m:
        res.update({"in": int(m.group(1)), "out": int(m.group(2)), "ratio": float(m.group(3)),
                    "compress_mb_s": float(m.group(4)), "decompress_mb_s": float(m.group(5))})
    else:
        res["tail"] = last_lines(text, 5)
    return res


# ------------------------------------------------------------------ one dataset

def shard_run(name: str, db: Path, out: Path, mbdata: Path, opts: list[str], work: Path,
              do_prewarm: bool, timeout: float | None) -> dict:
    if out.exists():
        shutil.rmtree(out)
    cmd = [str(mbdata), "shard", str(db), "--out", str(out)] + opts
    res: dict = {"command": short_cmd(cmd)}
    if do_prewarm:
        res["prewarm_s"] = round(prewarm([p for p in db.parent.glob(db.name + "*") if p.is_file()]), 2)
    subprocess.run(["sync"], check=False)
    res["others_cores_busy"] = round(others_busy(), 2)  # other work on the machine skews the figures
    tfile = work / f".time-shard-{name}.txt"
    log(f"{name}: {res['command']}")
    rc, stdout, stderr, wall = run_timed(["/usr/bin/time", "-v", "-o", str(tfile)] + cmd, timeout)
    t_sync = time.perf_counter()
    subprocess.run(["sync"], check=False)
    res["sync_after_s"] = round(time.perf_counter() - t_sync, 2)
    tv = tfile.read_text() if tfile.exists() else ""
    tfile.unlink(missing_ok=True)
    res.update(parse_time_v(tv))
    res.update({"exit": rc, "ok": rc == 0, "wall_s": wall})
    res["stderr_last"] = last_lines(stderr, 1)
    summary = [l for l in (stderr + stdout).splitlines() if re.search(r"\d+ batches, \d+ samples", l)]
    if summary:
        res["summary"] = summary[-1].strip()
        m = re.search(r" in ([\d.]+) s\b", summary[-1])
        if m:
            res["mbdata_own_s"] = float(m.group(1))
    res["stdout_last"] = last_lines(stdout, 1)
    if rc != 0:
        res["stderr_tail"] = last_lines(stderr, 15)
        log(f"{name}: shard FAILED (exit {rc})\n{res['stderr_tail']}")
    return res


def bench_dataset(name: str, n: int, work: Path, mbdata: Path, shard_opts: list[str], depth_env: int | None,
                  ceiling_bytes: int, nproc: int, do_prewarm: bool, do_verify: bool, reingest: bool,
                  timeout: float | None, keep: bool) -> dict:
    sha = file_sha(mbdata)
    if name == "cifar":
        folder, man = cifar_inputs(work, n)
        schema = folder / "cifar.schema.json"
        ingest_args = ["--schema", str(schema), f"image={folder / 'images.npy'}", f"label={folder / 'labels.npy'}"]
        payload = n * (3 * 32 * 32 + 8)
        desc = f"{n:,} samples, image uint8[3,32,32] (uniform random, incompressible) + label int64"
    else:
        folder, man = token_inputs(work, n)
        schema = folder / "tokens.schema.json"
        ingest_args = ["--schema", str(schema), str(folder / "tokens.jsonl")]
        payload = man["payload_bytes"]
        desc = (f"{n:,} sequences, tokens int32[null], lengths uniform {man['min_len']}..{man['max_len']} "
                f"(mean {man['tokens'] / n:.1f}), Zipf ids over a {man['vocab']:,} vocabulary")
    stamp = {"inputs": {k: man.get(k) for k in ("format_version", "n", "seed", "sizes", "jsonl_bytes", "tokens")},
             "folder": str(folder), "mbdata_sha256": sha}
    db = work / f"{name}.mbdb"
    res: dict = {"dataset": name, "n": n, "description": desc, "payload_bytes": payload}
    res["ingest"] = ensure_db(name, db, ingest_args, stamp, mbdata, reingest, timeout)
    out = work / f"shards-{name}"
    run = shard_run(name, db, out, mbdata, shard_opts, work, do_prewarm, timeout)
    res["shard"] = run
    if not run["ok"]:
        return res

    foot = read_footers(out)
    entries = foot.pop("_entries", None)
    res["footers"] = foot
    wall = run["wall_s"]
    if foot.get("batches"):
        run["batches_s"] = foot["batches"] / wall
        run["samples_s"] = foot["samples"] / wall
        run["uncompressed_mb_s"] = foot["uncompressed_bytes"] / 1e6 / wall
        run["compressed_mb_s"] = foot["compressed_bytes"] / 1e6 / wall
        run["ratio"] = foot["uncompressed_bytes"] / foot["compressed_bytes"]
    if "user_s" in run and "sys_s" in run:
        run["cpu_s"] = run["user_s"] + run["sys_s"]
        run["cores_busy"] = run["cpu_s"] / wall

    # inspect --json: record it and find where its totals live
    p = subprocess.run([str(mbdata), "inspect", str(out), "--json"], capture_output=True, text=True)
    insp: dict = {"exit": p.returncode}
    leaves: dict[str, object] = {}
    if p.returncode == 0:
        try:
            doc = json.loads(p.stdout)
            leaves = flatten(doc)
            insp["top_level_keys"] = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
            for key, hint in (("batches", "batch"), ("samples", "sample"),
                              ("uncompressed_bytes", "uncompress"), ("compressed_bytes", "compress")):
                if key in foot:
                    insp[f"{key}_at"] = locate(leaves, foot[key], hint)
        except json.JSONDecodeError as e:
            insp["error"] = f"not JSON: {e}"
    else:
        insp["error"] = last_lines(p.stderr, 5)
    res["inspect"] = insp

    # prefetch depth for the RSS bound
    manifest = {}
    if (out / "manifest.json").exists():
        try:
            manifest = json.loads((out / "manifest.json").read_text())
        except json.JSONDecodeError:
            pass
    res["manifest_keys"] = sorted(manifest) if isinstance(manifest, dict) else []
    if depth_env is not None:
        depth, depth_src = depth_env, "DEPTH (passed as --depth)"
    elif (d := help_depth(mbdata)) is not None:
        depth, depth_src = d, "`mbdata help shard` default"
    elif (d2 := find_depth(flatten(manifest)) or find_depth(leaves)) is not None:
        depth, depth_src = d2[0], f"`{d2[1]}` in manifest/inspect"
    else:
        depth, depth_src = None, "not found"
    res["depth"], res["depth_source"] = depth, depth_src
    if depth is not None and foot.get("batches"):
        res["rss_bound_mib"] = (depth * foot["max_batch_uncompressed"]) / 2**20 + RSS_SLACK_MIB
        # Prefetcher.swift documents depth × (compressed + uncompressed batch size)
        res["rss_bound_lib_mib"] = depth * (foot["max_batch_uncompressed"] + foot["max_batch_compressed"]) / 2**20

    if do_verify:
        vcmd = [str(mbdata), "verify", str(out), "--dataset", str(db)]
        rc, _o, err, vwall = run_timed(vcmd, timeout)
        res["verify"] = {"exit": rc, "wall_s": round(vwall, 2), "last": last_lines(err + _o, 1),
                         "command": short_cmd(vcmd)}
        log(f"{name}: verify exit {rc} in {vwall:.1f} s")

    # ceiling: single-core lz4 -b1 on the same batch bytes, x nproc
    if entries and ceiling_bytes > 0:
        target = work / f"ceiling-{name}.bin"
        foot["_entries"] = entries
        cf = build_ceiling_file(foot, ceiling_bytes, target)
        foot.pop("_entries")
        lb = lz4_bench(target)
        res["ceiling"] = {**cf, "lz4_bench": lb, "nproc": nproc}
        if "compress_mb_s" in lb:
            res["ceiling"]["ceiling_mb_s"] = lb["compress_mb_s"] * nproc
            run["fraction_of_ceiling"] = run.get("uncompressed_mb_s", 0) / res["ceiling"]["ceiling_mb_s"]
        if not keep:
            target.unlink(missing_ok=True)
        log(f"{name}: ceiling {lb.get('compress_mb_s', float('nan')):,.1f} MB/s x {nproc} on "
            f"{cf['bytes'] / 1e6:,.1f} MB ({cf['frames']} batches); lz4.frame in Python "
            f"{cf['pyframe_mb_s'] or 0:,.1f} MB/s")

    log(f"{name}: {wall:.2f} s, {run.get('batches_s', 0):,.1f} batches/s, {run.get('samples_s', 0):,.0f} samples/s, "
        f"{run.get('uncompressed_mb_s', 0):,.1f} MB/s uncompressed, ratio {run.get('ratio', 0):.3f}, "
        f"RSS {run.get('rss_mib', float('nan')):,.1f} MiB")
    if not keep:
        shutil.rmtree(out, ignore_errors=True)
    return res


# ------------------------------------------------------------------ report

def verdict(ok: bool) -> str:
    return "PASS" if ok else "**FAIL**"


def render(info: dict, settings: dict, results: dict[str, dict], small: bool, disk: dict | None) -> str:
    out: list[str] = ["# mbdata shard benchmark\n"]
    out.append("MB = 10^6 bytes, MiB = 2^20 bytes. Uncompressed = decoded safetensors bytes of the batches "
               "(the footers' `uncompressed` field), compressed = LZ4 frame bytes.\n")
    if small:
        out.append("> **Smaller than N_CIFAR = 1,000,000 / N_TOKENS = 200,000: indicative only.**\n")
    out.append("| | |\n|---|---|")
    for k, v in {**info, **settings}.items():
        out.append(f"| {k} | {v} |")
    out.append("")
    for name, r in results.items():
        out.append(f"- **{name}**: {r.get('description', '')}")
    out.append("")

    out.append("| dataset | batches | samples | wall s | batches/s | samples/s | uncompressed MB/s | "
               "compressed MB/s | ratio | CPU s | cores busy | peak RSS MiB | exit |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, r in results.items():
        s, f = r.get("shard", {}), r.get("footers", {})
        out.append(
            f"| {name} | {fmt(f.get('batches'), ',')} | {fmt(f.get('samples'), ',')} | {fmt(s.get('wall_s'), '.2f')} | "
            f"{fmt(s.get('batches_s'), ',.1f')} | {fmt(s.get('samples_s'), ',.0f')} | "
            f"{fmt(s.get('uncompressed_mb_s'), ',.1f')} | {fmt(s.get('compressed_mb_s'), ',.1f')} | "
            f"{fmt(s.get('ratio'), '.3f')} | {fmt(s.get('cpu_s'), '.2f')} | {fmt(s.get('cores_busy'), '.2f')} | "
            f"{fmt(s.get('rss_mib'), ',.1f')} | {s.get('exit', r.get('error', '?'))} |")
    out.append("")

    out.append("## Ceiling: LZ4 fast compression of the same batch bytes\n")
    out.append("| dataset | bytes benched MB | lz4 -b1 1 core MB/s | × nproc = ceiling MB/s | lz4 -b ratio | "
               "lz4.frame (Python, per batch) MB/s | mbdata uncompressed MB/s | mbdata ÷ ceiling |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        c = r.get("ceiling")
        if not c:
            continue
        lb = c.get("lz4_bench", {})
        out.append(
            f"| {name} | {c['bytes'] / 1e6:,.1f} | {fmt(lb.get('compress_mb_s'), ',.1f')} | "
            f"{fmt(c.get('ceiling_mb_s'), ',.1f')} ({c['nproc']} cores) | {fmt(lb.get('ratio'), '.3f')} | "
            f"{fmt(c.get('pyframe_mb_s'), ',.1f')} | {fmt(r['shard'].get('uncompressed_mb_s'), ',.1f')} | "
            f"{fmt(100 * r['shard']['fraction_of_ceiling'] if 'fraction_of_ceiling' in r['shard'] else None, '.1f')}% |")
    out.append("")

    if disk:
        out.append("## Disk: sequential write bandwidth\n")
        if disk.get("ok"):
            out.append(f"`{disk['command']}`: **{disk['mb_s']:,.1f} MB/s** ({disk['bytes'] >> 20} MiB in {disk['wall_s']:.2f} s). "
                       "`mbdata shard` fsyncs every shard file, so its compressed MB/s is bounded by this, and its "
                       "uncompressed MB/s by this × the compression ratio.\n")
            out.append("| dataset | compressed MB/s written | ratio | disk × ratio MB/s | mbdata uncompressed MB/s | "
                       "mbdata ÷ disk (compressed ÷ disk MB/s) |")
            out.append("|---|---:|---:|---:|---:|---:|")
            for name, r in results.items():
                s = r.get("shard", {})
                if "fraction_of_disk" in s:
                    out.append(f"| {name} | {s['compressed_mb_s']:,.1f} | {s['ratio']:.3f} | {disk['mb_s'] * s['ratio']:,.1f} | "
                               f"{s['uncompressed_mb_s']:,.1f} | {100 * s['fraction_of_disk']:.1f}% |")
        else:
            out.append(f"dd failed: {disk.get('note')}")
        out.append("")

    targets: list[tuple[str, str, str]] = []
    for name, r in results.items():
        s = r.get("shard", {})
        if not s.get("ok"):
            targets.append((f"{name}: shard runs", f"exit {s.get('exit', r.get('error', '?'))}", "**FAIL**"))
            continue
        if "fraction_of_ceiling" in s:
            fr = s["fraction_of_ceiling"]
            targets.append((f"{name}: uncompressed MB/s ≥ {TARGET_CEILING_FRACTION:.0%} of ceiling",
                            f"{s['uncompressed_mb_s']:,.1f} / {r['ceiling']['ceiling_mb_s']:,.1f} = {fr:.1%}",
                            verdict(fr >= TARGET_CEILING_FRACTION)))
        if "rss_bound_mib" in r and "rss_mib" in s:
            f = r["footers"]
            targets.append((f"{name}: peak RSS ≤ depth × batch + {RSS_SLACK_MIB} MiB",
                            f"{s['rss_mib']:,.1f} MiB vs {r['depth']} × {f['max_batch_uncompressed'] / 2**20:.2f} MiB "
                            f"+ {RSS_SLACK_MIB} = {r['rss_bound_mib']:,.1f} MiB",
                            verdict(s["rss_mib"] <= r["rss_bound_mib"])))
        elif "rss_mib" in s:
            targets.append((f"{name}: peak RSS bound", f"{s['rss_mib']:,.1f} MiB; prefetch depth unknown", "–"))
        if "verify" in r:
            targets.append((f"{name}: `mbdata verify` of the shards", f"exit {r['verify']['exit']}",
                            verdict(r["verify"]["exit"] == 0)))
    if targets:
        out.append("## Targets\n")
        out.append("| target | measured | result |\n|---|---|---|")
        out.extend(f"| {a} | {b} | {c} |" for a, b, c in targets)
        out.append("")

    out.append("## Details\n")
    for name, r in results.items():
        s = r.get("shard", {})
        out.append(f"- **{name}**: `{s.get('command', '')}`")
        ing = r.get("ingest", {})
        if ing:
            out.append(f"  - dataset: {'reused, ' if ing.get('reused') else ''}ingest took {ing.get('ingest_s')} s "
                       f"(not counted), {ing.get('db_bytes', 0) / 1e6:,.1f} MB: `{ing.get('command', '')}`")
        if s.get("prewarm_s") is not None:
            out.append(f"  - DB prewarm (page cache) took {s['prewarm_s']} s, not counted")
        if s.get("sync_after_s") is not None:
            out.append(f"  - `sync` right after the run took {s['sync_after_s']} s (not counted)")
        if s.get("others_cores_busy") is not None:
            busy = " — **the machine was busy; figures may be low**" if s["others_cores_busy"] >= 0.25 else ""
            out.append(f"  - cores busy with other work in the second before the run: {s['others_cores_busy']}{busy}")
        if s.get("mbdata_own_s") is not None:
            out.append(f"  - mbdata's own timer: {s['mbdata_own_s']} s of the {s['wall_s']:.2f} s process wall time")
        f = r.get("footers")
        if f and f.get("batches"):
            out.append(f"  - shards: {f['files']} files, {f['file_bytes'] / 1e6:,.1f} MB; batch uncompressed "
                       f"mean {f['mean_batch_uncompressed'] / 1e6:.3f} MB, max {f['max_batch_uncompressed'] / 1e6:.3f} MB; "
                       f"payload {r['payload_bytes'] / 1e6:,.1f} MB of {r['n']:,} samples; epochs {f['epochs']}, ranks {f['ranks']}")
        if f and f.get("problems"):
            out.append(f"  - footer problems: {'; '.join(f['problems'][:5])}")
        if "depth" in r:
            line = f"  - prefetch depth {r['depth']} ({r['depth_source']})"
            if "rss_bound_lib_mib" in r:
                line += (f"; depth × (largest uncompressed + largest compressed batch), the bound Prefetcher.swift "
                         f"documents, = {r['rss_bound_lib_mib']:,.1f} MiB (no allowance for the process itself)")
            out.append(line)
        insp = r.get("inspect")
        if insp:
            if insp.get("error"):
                out.append(f"  - `mbdata inspect --json` failed (exit {insp['exit']}): {insp['error']}")
            else:
                where = ", ".join(f"{k[:-3]} → `{v}`" if v else f"{k[:-3]} → **not found**"
                                  for k, v in insp.items() if k.endswith("_at"))
                out.append(f"  - `mbdata inspect --json` (keys {insp.get('top_level_keys')}): footer totals found at {where}")
        if r.get("manifest_keys"):
            out.append(f"  - manifest.json keys: {r['manifest_keys']}")
        if r.get("verify"):
            v = r["verify"]
            out.append(f"  - `{v.get('command', 'mbdata verify')}`: exit {v['exit']} in {v['wall_s']} s: `{v['last']}`")
        if s.get("summary"):
            out.append(f"  - mbdata summary: `{s['summary']}`")
        if s.get("stderr_last") and s.get("stderr_last") != s.get("summary"):
            out.append(f"  - mbdata stderr, last line: `{s['stderr_last']}`")
        if s.get("stderr_tail"):
            out.append("  - stderr tail:\n\n```\n" + s["stderr_tail"] + "\n```")
        if r.get("error"):
            out.append(f"  - error: {r['error']}")
    out.append("")
    out.append("Wall time is measured around the whole `mbdata shard` process (start-up, plan, reads, collation, "
               "compression, writes, manifest). The dataset was read once before the run when prewarm is on; "
               "page caches are never dropped. Peak RSS is `Maximum resident set size` from GNU time -v. "
               "The ceiling runs after the shard run, on the first batches of the output, decompressed.\n")
    return "\n".join(out)


# ------------------------------------------------------------------ main

def main() -> int:
    n_cifar = env_int("N_CIFAR", 1_000_000)
    n_tokens = env_int("N_TOKENS", 200_000)
    mbdata = ib.env_path("MBDATA", ROOT / ".build" / "release" / "mbdata")
    work = ib.env_path("WORK", ROOT / "Benchmarks" / "work" / "shard")
    results_md = ib.env_path("RESULTS", ROOT / "Benchmarks" / "results" / "shard.md")
    datasets = [d.strip() for d in (os.environ.get("DATASETS") or ",".join(ALL_DATASETS)).split(",") if d.strip()]
    if bad := [d for d in datasets if d not in ALL_DATASETS]:
        log(f"unknown DATASETS entries {bad}; choose from {','.join(ALL_DATASETS)}")
        return 2
    batch_size, epochs, seed = env_int("BATCH_SIZE", 256), env_int("EPOCHS", 1), env_int("SEED", 7)
    depth_env = int(os.environ["DEPTH"]) if os.environ.get("DEPTH") else None
    extra = shlex.split(os.environ.get("SHARD_ARGS") or "")
    ceiling_bytes = env_int("CEILING_MB", 384) * 10**6
    dd_mb = env_int("DD_MB", 2048)
    do_prewarm = (os.environ.get("PREWARM") or "1") != "0"
    do_verify = (os.environ.get("VERIFY") or "1") != "0"
    reingest = (os.environ.get("REINGEST") or "0") == "1"
    keep = (os.environ.get("KEEP") or "0") == "1"
    timeout = float(os.environ.get("TIMEOUT") or 0) or None

    for tool in ("/usr/bin/time",):
        if not Path(tool).exists():
            log(f"{tool} is missing; run.sh installs it (apt-get install -y time)")
            return 2
    if not shutil.which("lz4"):
        log("the lz4 command is missing; run.sh installs it (apt-get install -y lz4)")
        return 2
    if not os.access(mbdata, os.X_OK):
        log(f"mbdata binary not found at {mbdata}; build it (swift build -c release) or set MBDATA")
        return 2
    h = subprocess.run([str(mbdata), "help", "shard"], capture_output=True, text=True)
    if h.returncode != 0 or "--batch-size" not in h.stdout + h.stderr:
        log(f"{rel(mbdata)} has no usable `shard` subcommand yet:\n{last_lines(h.stdout + h.stderr, 5)}")
        return 2

    work.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(work).free
    need = (("cifar" in datasets) * n_cifar * 3080 * (3 + (not os.environ.get("CIFAR_INPUTS")))
            + ("tokens" in datasets) * n_tokens * 544 * (6 + 4 * 3))
    if free < need:
        log(f"warning: {free / 1e9:.1f} GB free in {work}, run may need about {need / 1e9:.1f} GB")

    nproc = int(ib.sh(["nproc"]) or os.cpu_count() or 1)
    info = ib.machine_info(work, mbdata)
    info.pop("sqlite (python peer)", None)
    info["lz4 (CLI / python lz4)"] = f"{ib.sh(['lz4', '--version']).split(',')[0].replace('*** ', '')} / " \
                                     f"{__import__('lz4').__version__} (liblz4 {__import__('lz4').library_version_string()})"
    opts = ["--batch-size", str(batch_size), "--epochs", str(epochs), "--seed", str(seed)]
    if depth_env is not None:
        opts += ["--depth", str(depth_env)]
    opts += extra
    settings = {
        "N_CIFAR / N_TOKENS": f"{n_cifar:,} / {n_tokens:,}",
        "shard options": " ".join(opts),
        "prewarm DB": "yes" if do_prewarm else "no",
        "cifar inputs": os.environ.get("CIFAR_INPUTS") or "generated in WORK/cifar",
        "ceiling bytes": f"first {ceiling_bytes / 1e6:,.0f} MB of batches per dataset, `lz4 -b1 -i3`, × nproc = {nproc}",
    }

    disk = None
    if dd_mb > 0:
        disk = ib.run_dd(work, dd_mb)
        log(f"disk: {disk['mb_s']:.1f} MB/s (dd says {disk['dd_says']})" if disk["ok"] else disk["note"])

    results: dict[str, dict] = {}
    for name in datasets:
        n = n_cifar if name == "cifar" else n_tokens
        try:
            results[name] = bench_dataset(name, n, work, mbdata, opts, depth_env, ceiling_bytes, nproc,
                                          do_prewarm, do_verify, reingest, timeout, keep)
        except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
            log(f"{name}: {e}")
            results[name] = {"dataset": name, "n": n, "error": str(e).splitlines()[0] if str(e) else repr(e),
                             "shard": {"ok": False}}

    small = ("cifar" in datasets and n_cifar < 1_000_000) or ("tokens" in datasets and n_tokens < 200_000)
    for r in results.values():
        s = r.get("shard", {})
        if disk and disk.get("ok") and "compressed_mb_s" in s:
            s["fraction_of_disk"] = s["compressed_mb_s"] / disk["mb_s"]
    md = render(info, settings, results, small, disk)
    results_md.parent.mkdir(parents=True, exist_ok=True)
    results_md.write_text(md)
    results_md.with_suffix(".json").write_text(json.dumps(
        {"n_cifar": n_cifar, "n_tokens": n_tokens, "machine": info, "settings": settings, "disk": disk,
         "results": results},
        indent=2, default=str) + "\n")
    print(md)
    log(f"wrote {rel(results_md)} and {rel(results_md.with_suffix('.json'))}")
    return 0 if all(r.get("shard", {}).get("ok") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
