#!/usr/bin/env python3
"""Ingest benchmark driver for mbdata (run via Benchmarks/ingest/run.sh).

Steps: generate inputs (generate.py; skipped if present) -> disk bandwidth
(dd with fsync) -> mbdata NPY ingest -> Python sqlite3 peer (same NPY) ->
mbdata JSONL ingest. Each ingest runs under `/usr/bin/time -v` into a fresh
database (old DB files are deleted first). Results go to a markdown table
(default Benchmarks/results/ingest.md, plus a .json next to it) and stdout.

Environment:
  N            samples (default 1000000)
  MBDATA       mbdata binary (default .build/release/mbdata)
  WORK         work folder for inputs and DBs (default Benchmarks/work)
  RESULTS      markdown output (default Benchmarks/results/ingest.md)
  RUNS         comma list, subset of dd,npy,peer,jsonl (default: all four)
  BATCH_ROWS   if set, passed to mbdata as --batch-rows
  MBDATA_ARGS  extra arguments for `mbdata ingest` (shell-split)
  DD_MB        size of the dd test in MiB (default 2048)
  PREWARM      1 (default): read each input file once before its run, so
               runs start from a warm page cache as far as RAM allows; 0: off
  TIMEOUT      per-run limit in seconds (default 0 = none)
  KEEP_DB      1: keep the last database of each run (default: delete)
Page caches are never dropped; `sync` runs before dd and before each ingest.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PAYLOAD_BYTES = 3 * 32 * 32 + 8  # image uint8[3,32,32] + label int64
ALL_RUNS = ("dd", "npy", "peer", "jsonl")

TARGET_NPY_SPS = 46_000
TARGET_DISK_FRACTION = 0.45
TARGET_RSS_MIB = 256


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def env_path(name: str, default: Path) -> Path:
    v = os.environ.get(name)
    p = Path(v) if v else default
    return p if p.is_absolute() else (ROOT / p)


def sh(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT).stdout.strip()
    except OSError:
        return ""


# ------------------------------------------------------------------ machine info

def machine_info(work: Path, mbdata: Path) -> dict[str, str]:
    info: dict[str, str] = {}
    info["date"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    info["host"] = platform.node()
    info["nproc"] = sh(["nproc"])
    try:
        meminfo = Path("/proc/meminfo").read_text()
        kb = int(re.search(r"MemTotal:\s+(\d+) kB", meminfo).group(1))
        info["memory"] = f"{kb / 1024 / 1024:.1f} GiB"
    except Exception:
        info["memory"] = "?"
    try:
        cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text()).group(1).strip()
    except Exception:
        cpu = platform.processor() or "?"
    info["cpu"] = cpu
    info["kernel"] = platform.release()
    info["filesystem"] = " on ".join(sh(["findmnt", "-T", str(work), "-no", "FSTYPE,SOURCE"]).split()) or "?"
    info["sqlite (system lib)"] = system_sqlite_version()
    info["sqlite (python peer)"] = sqlite3.sqlite_version
    commit = sh(["git", "rev-parse", "--short=12", "HEAD"]) or "(no commits)"
    dirty = sh(["git", "status", "--porcelain", "--untracked-files=no"])
    untracked = sh(["git", "status", "--porcelain"])
    info["git commit"] = commit + (" +dirty" if dirty or (commit == "(no commits)" and untracked) else "")
    if mbdata.exists():
        h = hashlib.sha256(mbdata.read_bytes()).hexdigest()[:12]
        mtime = dt.datetime.fromtimestamp(mbdata.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        info["mbdata binary"] = f"{rel(mbdata)} (sha256 {h}, built {mtime})"
    info["python / numpy"] = f"{platform.python_version()} / {numpy_version()}"
    return info


def system_sqlite_version() -> str:
    name = ctypes.util.find_library("sqlite3")
    if not name:
        return sh(["sqlite3", "--version"]).split(" ")[0] or "?"
    try:
        lib = ctypes.CDLL(name)
        lib.sqlite3_libversion.restype = ctypes.c_char_p
        return f"{lib.sqlite3_libversion().decode()} ({name})"
    except OSError:
        return "?"


def numpy_version() -> str:
    try:
        import numpy

        return numpy.__version__
    except ImportError:
        return "?"


def rel(p: Path) -> str:
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


# ------------------------------------------------------------------ helpers

def db_files(db: Path) -> list[Path]:
    return sorted(db.parent.glob(db.name + "*"))


def remove_db(db: Path) -> None:
    for p in db_files(db):
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


def db_size(db: Path) -> int:
    return sum(p.stat().st_size for p in db_files(db) if p.is_file())


def prewarm(paths: list[Path]) -> float:
    t0 = time.perf_counter()
    buf = bytearray(16 << 20)
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass
    return time.perf_counter() - t0


def parse_time_v(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        out["rss_mib"] = int(m.group(1)) / 1024
    for key, pat in (("user_s", r"User time \(seconds\): ([\d.]+)"), ("sys_s", r"System time \(seconds\): ([\d.]+)")):
        m = re.search(pat, text)
        if m:
            out[key] = float(m.group(1))
    return out


def table_rows(db: Path) -> str:
    """'table=max(rowid)' for each table: a cheap sanity check, not a count."""
    try:
        wal = Path(f"{db}-wal")
        # immutable=1 creates no -shm/-wal, but would ignore a WAL that was left non-empty
        mode = "ro" if wal.exists() and wal.stat().st_size > 0 else "ro&immutable=1"
        con = sqlite3.connect(f"file:{db}?mode={mode}", uri=True)
        names = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        parts = []
        for name in names:
            try:
                mx = con.execute(f'SELECT max(rowid) FROM "{name}"').fetchone()[0]
                parts.append(f"{name}={mx}")
            except sqlite3.Error:
                parts.append(f"{name}=?")
        con.close()
        return ", ".join(parts)
    except sqlite3.Error as e:
        return f"(not readable: {e})"


# ------------------------------------------------------------------ steps

def run_dd(work: Path, mib: int) -> dict:
    target = work / "dd.tmp"
    subprocess.run(["sync"], check=False)
    cmd = ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={mib}", "conv=fsync"]
    log("disk: " + " ".join(cmd))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    finally:
        target.unlink(missing_ok=True)
    last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    m = re.match(r"(\d+) bytes .* copied, ([\d.]+) s, ([\d.]+ \S+)", last)
    if p.returncode != 0 or not m:
        return {"name": "disk (dd, fsync)", "ok": False, "note": f"dd failed: {p.stderr.strip()[-300:]}"}
    nbytes, secs = int(m.group(1)), float(m.group(2))
    return {
        "name": "disk (dd, fsync)", "ok": True, "bytes": nbytes, "wall_s": secs,
        "mb_s": nbytes / 1e6 / secs, "dd_says": m.group(3),
        "command": " ".join(cmd).replace(str(target), rel(target)),
    }


def run_ingest(name: str, cmd: list[str], db: Path, n: int, inputs: list[Path], work: Path,
               do_prewarm: bool, timeout: float | None, keep_db: bool) -> dict:
    remove_db(db)
    subprocess.run(["sync"], check=False)
    res: dict = {"name": name, "command": shlex.join(c.replace(f"{ROOT}/", "") for c in cmd)}
    if do_prewarm:
        res["prewarm_s"] = round(prewarm(inputs), 2)
    tfile = work / f".time-{name}.txt"
    full = ["/usr/bin/time", "-v", "-o", str(tfile)] + cmd
    log(f"{name}: {res['command']}")
    t0 = time.perf_counter()
    try:
        p = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
        rc, stdout, stderr = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, stdout, stderr = "timeout", str(e.stdout or ""), str(e.stderr or "")
    wall = time.perf_counter() - t0
    t_sync = time.perf_counter()
    subprocess.run(["sync"], check=False)
    res["sync_after_s"] = round(time.perf_counter() - t_sync, 2)  # dirty data the run left behind
    tv = tfile.read_text() if tfile.exists() else ""
    tfile.unlink(missing_ok=True)
    res.update(parse_time_v(tv))
    res["exit"] = rc
    res["ok"] = rc == 0
    res["wall_s"] = wall
    if res["ok"]:  # rates of a failed run would be meaningless
        res["samples_s"] = n / wall
        res["mb_s"] = n * PAYLOAD_BYTES / 1e6 / wall
    res["db_bytes"] = db_size(db)
    lines = [l for l in stderr.strip().splitlines() if l.strip()]
    res["stderr_last"] = lines[-1] if lines else ""
    if not res["ok"]:
        res["stderr_tail"] = "\n".join(lines[-15:])
        log(f"{name}: FAILED (exit {rc})\n" + res["stderr_tail"])
    if name == "peer" and stdout.strip():
        try:
            res["peer"] = json.loads(stdout.strip().splitlines()[-1])
        except json.JSONDecodeError:
            pass
    if res["ok"] and name != "peer" and db.exists():
        res["tables"] = table_rows(db)
    log(f"{name}: {'ok' if res['ok'] else 'FAILED'} {wall:.2f} s, {res.get('samples_s', 0):,.0f} samples/s, "
        f"{res.get('mb_s', 0):.1f} MB/s, RSS {res.get('rss_mib', float('nan')):.1f} MiB, DB {res['db_bytes'] / 1e6:.1f} MB")
    if not keep_db:
        remove_db(db)
    return res


# ------------------------------------------------------------------ report

def fmt(v, spec: str, missing: str = "–") -> str:
    return missing if v is None else format(v, spec)


def render(info: dict, n: int, results: dict[str, dict], runs: list[str], settings: dict) -> str:
    out: list[str] = []
    out.append("# mbdata ingest benchmark\n")
    out.append(f"N = {n:,} samples; payload {PAYLOAD_BYTES} bytes/sample "
               f"({n * PAYLOAD_BYTES / 1e9:.2f} GB); MB = 10^6 bytes, MiB = 2^20 bytes.\n")
    if n < 1_000_000:
        out.append(f"> **N = {n:,} < 1,000,000: indicative only; the targets apply to the 1M run.**\n")
    out.append("| | |\n|---|---|")
    for k, v in info.items():
        out.append(f"| {k} | {v} |")
    for k, v in settings.items():
        out.append(f"| {k} | {v} |")
    out.append("")
    out.append("| run | samples/s | payload MB/s | wall s | CPU s (user+sys) | peak RSS MiB | DB size MB | exit |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---|")
    labels = {"npy": "mbdata ingest (NPY)", "jsonl": "mbdata ingest (JSONL)", "peer": "python sqlite3 peer (NPY)"}
    for key in ("npy", "jsonl", "peer"):
        if key not in results:
            continue
        r = results[key]
        cpu = (r["user_s"] + r["sys_s"]) if "user_s" in r and "sys_s" in r else None
        out.append(
            f"| {labels[key]} | {fmt(r.get('samples_s'), ',.0f')} | {fmt(r.get('mb_s'), ',.1f')} | "
            f"{fmt(r.get('wall_s'), '.2f')} | {fmt(cpu, '.2f')} | {fmt(r.get('rss_mib'), ',.1f')} | "
            f"{fmt(r.get('db_bytes', 0) / 1e6, ',.1f')} | {r.get('exit')} |")
    if "dd" in results:
        d = results["dd"]
        if d.get("ok"):
            out.append(f"| disk: dd {d['bytes'] >> 20} MiB, conv=fsync | – | {d['mb_s']:,.1f} | {d['wall_s']:.2f} | – | – | – | 0 |")
        else:
            out.append(f"| disk: dd | – | – | – | – | – | – | {d.get('note', 'failed')} |")
    out.append("")

    # Ratios and targets
    npy, peer, ddr = results.get("npy"), results.get("peer"), results.get("dd")
    lines: list[str] = []
    if npy and npy.get("ok") and peer and peer.get("ok"):
        lines.append(f"- mbdata NPY vs python sqlite3 peer: **{npy['samples_s'] / peer['samples_s']:.2f}x** samples/s")
    if npy and npy.get("ok") and ddr and ddr.get("ok"):
        lines.append(f"- mbdata NPY payload MB/s as % of disk bandwidth: **{100 * npy['mb_s'] / ddr['mb_s']:.1f}%**")
    if lines:
        out.append("## Ratios\n")
        out.extend(lines)
        out.append("")

    targets: list[tuple[str, str, str]] = []

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "**FAIL**"

    if npy:
        if npy.get("ok"):
            targets.append((f"NPY ingest ≥ {TARGET_NPY_SPS:,} samples/s", f"{npy['samples_s']:,.0f}",
                            verdict(npy["samples_s"] >= TARGET_NPY_SPS)))
            if ddr and ddr.get("ok"):
                frac = npy["mb_s"] / ddr["mb_s"]
                targets.append((f"NPY payload MB/s ≥ {TARGET_DISK_FRACTION:.0%} of disk",
                                f"{npy['mb_s']:,.1f} / {ddr['mb_s']:,.1f} = {frac:.1%}",
                                verdict(frac >= TARGET_DISK_FRACTION)))
        else:
            targets.append(("NPY ingest", f"exit {npy.get('exit')}", "**FAIL**"))
    for key in ("npy", "jsonl"):
        r = results.get(key)
        if r and r.get("ok") and "rss_mib" in r:
            targets.append((f"peak RSS ({key}) ≤ {TARGET_RSS_MIB} MiB", f"{r['rss_mib']:,.1f} MiB",
                            verdict(r["rss_mib"] <= TARGET_RSS_MIB)))
        elif r:
            targets.append((f"peak RSS ({key}) ≤ {TARGET_RSS_MIB} MiB", f"run failed (exit {r.get('exit')})", "**FAIL**"))
    if targets:
        out.append("## Targets\n")
        out.append("| target | measured | result |\n|---|---|---|")
        for t in targets:
            out.append(f"| {t[0]} | {t[1]} | {t[2]} |")
        out.append("")

    out.append("## Details\n")
    for key in runs:
        r = results.get(key)
        if not r:
            continue
        out.append(f"- **{key}**: `{r.get('command', '')}`")
        if r.get("prewarm_s") is not None:
            out.append(f"  - input prewarm (page cache) took {r['prewarm_s']} s, not counted")
        if r.get("sync_after_s") is not None:
            out.append(f"  - `sync` right after the run took {r['sync_after_s']} s (not counted)")
        if r.get("stderr_last") and key != "peer":
            out.append(f"  - mbdata stderr, last line: `{r['stderr_last']}`")
        if r.get("tables"):
            out.append(f"  - tables (max rowid): {r['tables']}")
        if r.get("peer"):
            pr = r["peer"]
            out.append(f"  - peer: journal_mode={pr.get('journal_mode')}, synchronous={pr.get('synchronous')}, "
                       f"in-process {pr.get('seconds')} s (insert {pr.get('insert_s')} s, commit {pr.get('commit_s')} s, "
                       f"close/checkpoint {pr.get('close_checkpoint_s')} s)")
        if r.get("stderr_tail"):
            out.append("  - stderr tail:\n\n```\n" + r["stderr_tail"] + "\n```")
    out.append("")
    out.append("Wall time is measured around the whole process (start-up, open, insert, commit, close). "
               "Page cache was not dropped; inputs were read once before each run when prewarm is on. "
               "Peak RSS is `Maximum resident set size` from GNU time -v.\n")
    return "\n".join(out)


# ------------------------------------------------------------------ main

def main() -> int:
    n = int(os.environ.get("N") or 1_000_000)
    mbdata = env_path("MBDATA", ROOT / ".build" / "release" / "mbdata")
    work = env_path("WORK", ROOT / "Benchmarks" / "work")
    results_md = env_path("RESULTS", ROOT / "Benchmarks" / "results" / "ingest.md")
    runs = [r.strip() for r in (os.environ.get("RUNS") or ",".join(ALL_RUNS)).split(",") if r.strip()]
    bad = [r for r in runs if r not in ALL_RUNS]
    if bad:
        log(f"unknown RUNS entries {bad}; choose from {','.join(ALL_RUNS)}")
        return 2
    batch_rows = os.environ.get("BATCH_ROWS") or ""
    extra = shlex.split(os.environ.get("MBDATA_ARGS") or "")
    dd_mb = int(os.environ.get("DD_MB") or 2048)
    do_prewarm = (os.environ.get("PREWARM") or "1") != "0"
    timeout = float(os.environ.get("TIMEOUT") or 0) or None
    keep_db = (os.environ.get("KEEP_DB") or "0") == "1"

    if not Path("/usr/bin/time").exists():
        log("/usr/bin/time (GNU time) is missing; run.sh installs it (apt-get install -y time)")
        return 2
    if ("npy" in runs or "jsonl" in runs) and not os.access(mbdata, os.X_OK):
        log(f"mbdata binary not found at {mbdata}; build it (swift build -c release) or set MBDATA, "
            f"or set RUNS=dd,peer")
        return 2

    work.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(work).free
    need = n * (3080 + 11200) * ("jsonl" in runs) + n * 3080 + 2 * n * 4200 + dd_mb * (1 << 20)
    if free < need:
        log(f"warning: {free / 1e9:.1f} GB free in {work}, run may need about {need / 1e9:.1f} GB")

    gen = [sys.executable, str(HERE / "generate.py"), "--n", str(n), "--work", str(work)]
    if "jsonl" not in runs:
        gen.append("--no-jsonl")
    log("inputs: " + " ".join(gen[1:]))
    subprocess.run(gen, check=True)

    info = machine_info(work, mbdata)
    settings = {
        "N": f"{n:,}",
        "mbdata options": " ".join(([f"--batch-rows {batch_rows}"] if batch_rows else []) + extra) or "(defaults)",
        "prewarm inputs": "yes" if do_prewarm else "no",
    }
    schema = work / "cifar.schema.json"
    images, labels, jsonl = work / "images.npy", work / "labels.npy", work / "cifar.jsonl"
    mb_opts = (["--batch-rows", batch_rows] if batch_rows else []) + extra

    results: dict[str, dict] = {}
    for step in runs:
        if step == "dd":
            results["dd"] = run_dd(work, dd_mb)
            d = results["dd"]
            log(f"disk: {d['mb_s']:.1f} MB/s (dd says {d['dd_says']})" if d["ok"] else d["note"])
        elif step == "npy":
            db = work / "bench-npy.db"
            cmd = [str(mbdata), "ingest", str(db), "--schema", str(schema),
                   f"image={images}", f"label={labels}"] + mb_opts
            results["npy"] = run_ingest("npy", cmd, db, n, [images, labels], work, do_prewarm, timeout, keep_db)
        elif step == "jsonl":
            db = work / "bench-jsonl.db"
            cmd = [str(mbdata), "ingest", str(db), "--schema", str(schema), str(jsonl)] + mb_opts
            results["jsonl"] = run_ingest("jsonl", cmd, db, n, [jsonl], work, do_prewarm, timeout, keep_db)
        elif step == "peer":
            db = work / "bench-peer.db"
            cmd = [sys.executable, str(HERE / "sqlite_peer.py"), "--db", str(db),
                   "--images", str(images), "--labels", str(labels)]
            results["peer"] = run_ingest("peer", cmd, db, n, [images, labels], work, do_prewarm, timeout, keep_db)

    md = render(info, n, results, runs, settings)
    results_md.parent.mkdir(parents=True, exist_ok=True)
    results_md.write_text(md)
    results_md.with_suffix(".json").write_text(
        json.dumps({"n": n, "machine": info, "settings": settings, "results": results}, indent=2, default=str) + "\n")
    print(md)
    log(f"wrote {rel(results_md)} and {rel(results_md.with_suffix('.json'))}")
    failed = [k for k, r in results.items() if not r.get("ok")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
