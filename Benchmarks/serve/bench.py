#!/usr/bin/env python3
"""Serve benchmark driver for mbdata (run via Benchmarks/serve/run.sh or `make bench-serve`).

A do-nothing Python trainer (consumer.py: touches every batch the same way) reads one
shuffled epoch of N CIFAR-shaped samples (image uint8 [3,32,32] + label int64) in batches
of 256, in its own process, from:

  numpy-wK   torch DataLoader over an in-memory numpy array, num_workers K (0, 2, 4):
             BatchSampler + one gather per batch into torch.from_numpy (the peer at its best)
  sqlite-wK  torch DataLoader over SQLite rows (a plain table, one SELECT … IN per batch)
  mbdb-wK    the same over the dataset's own `samples` table (the .mbdb file serve reads)
  serve-spool  `mbdata serve --spool` (the shard set of the same plan) + the Python client,
             `batch.ack()` per batch (the README's loop: queued acks, bounded window)
  serve-spool-sync  the same with `batch.ack(wait=True)` (each ack answered before the next batch)
  serve-spool-socket  serve-spool with `Client(local_files=False)`: the frames through the
             socket instead of read from the daemon's shard files (local delivery, the
             client's default for a daemon on this host)
  serve-live   `mbdata serve` without a spool (batches prepared from SQLite) + the client
  serve-raw    the spool daemon read with wire.py instead of the client (reference)
  adapter-wK   the spool daemon through MBDataIterableDataset in a DataLoader, num_workers K
  serve-kK   K concurrent client processes on one spool daemon, partition mode: rank r of
             world K, global batch 256 x K (each client gets 256), shard set made for it
  idle       baseline: the consumer process with nothing to read (Python + torch)

Steps: inputs (ingest/generate.py NPY) -> `mbdata ingest` into WORK/cifar.mbdb -> `mbdata
shard` per world size into WORK/spool/wK -> the plain SQLite rows DB -> protocol checks
against serve-protocol.md (protocol_check.py) -> the measurements, REPEATS rounds with the
configurations interleaved, each in fresh processes (a fresh daemon and state database for
every serve run) -> Benchmarks/results/serve.md (+ .json) and stdout.

Environment:
  N            samples (default 200000; 50000..1000000 unless ANY_N=1)
  MBDATA       mbdata binary (default .build/release/mbdata)
  WORK         work folder (default Benchmarks/work/serve; gitignored)
  RESULTS      markdown output (default Benchmarks/results/serve.md)
  RUNS         comma list of configurations (default: all of the above, k from CLIENTS)
  WORKERS      DataLoader num_workers values (default 0,2,4)
  CLIENTS      concurrent client counts (default 1; e.g. 1,2,4 adds serve-k2, serve-k4)
  SIZES        dataset sizes of the first-batch and daemon-memory phase (default
               50000,200000,1000000; empty skips it): each size is generated, ingested and
               sharded once and cached under WORK/scale-N
  REPEATS      rounds of every configuration; the report gives the median (default 3)
  BATCH_SIZE   per-client batch (default 256); SEED shuffle seed (default 7)
  SERVE_ARGS   extra arguments for `mbdata serve` (shell-split)
  PROTOCOL_CHECK  1 (default): run the protocol checks first; 0: skip
  PREWARM      1 (default): read each run's files once before it (page cache, not timed)
  TIMEOUT      per-run limit in seconds (default 600)
  KEEP         1: keep state databases, id files and logs of the runs
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
INGEST = HERE.parent / "ingest"
SHARD = HERE.parent / "shard"
sys.path.insert(0, str(HERE))

SAMPLE_BYTES = 3 * 32 * 32 + 8
TARGET_DEFAULT_VS_NUMPY = 1.0   # README's loop (batch.ack()) ÷ numpy DataLoader, 0 workers
TARGET_BEST_VS_NUMPY = 1.5      # fastest ack style ÷ numpy DataLoader, 0 workers
TARGET_LIVE_VS_SQLITE = 2.0     # serve without a spool ÷ best SQLite DataLoader
TARGET_FIRST_BATCH_MS = 20.0
TARGET_SERVE_MEMORY_MIB = 64.0  # above the prefetch budget
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Helpers of the other harnesses (machine info, GNU time parsing, prewarm, dataset stamps).
_spec = importlib.util.spec_from_file_location("shard_bench", SHARD / "bench.py")
sb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sb)  # type: ignore[union-attr]
ib = sb.ib
rel, fmt, parse_time_v, prewarm = ib.rel, ib.fmt, ib.parse_time_v, ib.prewarm
file_sha, ensure_db, last_lines, short_cmd, others_busy = sb.file_sha, sb.ensure_db, sb.last_lines, sb.short_cmd, sb.others_busy

LABELS = {
    "idle": "baseline: consumer process, no data (Python + torch)",
    **{f"numpy-w{w}": f"DataLoader, in-memory numpy, {w} workers" for w in (0, 1, 2, 4, 8)},
    **{f"sqlite-w{w}": f"DataLoader, SQLite rows (plain table), {w} workers" for w in (0, 1, 2, 4, 8)},
    **{f"mbdb-w{w}": f"DataLoader, SQLite rows (the .mbdb), {w} workers" for w in (0, 1, 2, 4, 8)},
    **{f"adapter-w{w}": f"mbdata serve (spool) + MBDataIterableDataset, {w} workers" for w in (0, 1, 2, 4, 8)},
    "serve-spool": "mbdata serve (spool) + Python client, batch.ack()",
    "serve-spool-sync": "mbdata serve (spool) + Python client, batch.ack(wait=True)",
    "serve-spool-socket": "mbdata serve (spool) + Python client, batch.ack(), frames through the socket",
    "serve-live": "mbdata serve (live) + Python client, batch.ack()",
    "serve-raw": "mbdata serve (spool), raw reader (no client)",
}

CHILDREN: list[subprocess.Popen] = []  # every process started here, ended on exit


def exit_on_signals() -> None:
    """SIGTERM, SIGINT and SIGHUP end the driver through SystemExit, so that `stop_children`
    still runs."""
    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)


def stop_children() -> None:
    """SIGTERMs whatever is still running (daemons drain, consumers stop); SIGKILL after 15 s."""
    for p in CHILDREN:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(15)
            except (subprocess.TimeoutExpired, OSError):
                p.kill()


def write_report(results: Path, md: str, doc: dict) -> None:
    """Writes the markdown report and its JSON beside it; prints the markdown."""
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(md)
    results.with_suffix(".json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(md)
    log(f"wrote {rel(results)} and {rel(results.with_suffix('.json'))}")


def client_info() -> str:
    """The installed Python client's version and where it lives."""
    try:
        import mbdata_client
    except ImportError:
        return "not installed"
    return getattr(mbdata_client, "__version__", "?") + f" ({rel(Path(mbdata_client.__file__).parent)})"


def log(msg: str) -> None:
    print(f"[bench-serve] {msg}", file=sys.stderr, flush=True)


def env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    return int(v) if v else default


def env_list(name: str, default: str) -> list[str]:
    return [x.strip() for x in os.environ.get(name, default).split(",") if x.strip()]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ /proc

def proc_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])  # kB
    except (OSError, ValueError):
        pass
    return out


def proc_pss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def proc_cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
    except (OSError, ValueError, IndexError):
        return None


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = [int(x) for x in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, ValueError):
            kids = []
        out.extend(kids)
        todo.extend(kids)
    return out


class Sampler(threading.Thread):
    """Samples, every `interval` s, the summed RSS and PSS of the consumer processes (the
    descendants of each /usr/bin/time wrapper: the consumer and its DataLoader workers)
    and the daemon's RSS; keeps the peaks of each phase ("setup" until go, then "epoch")."""

    def __init__(self, roots: list[int], serve_pid: int | None, interval: float = 0.05,
                 pss_interval: float = 1.0) -> None:
        # PSS comes from /proc/PID/smaps_rollup, which walks the page tables: ~18 ms for a
        # 1 GiB process on this VM, so it is read only every `pss_interval` s to keep the
        # sampler's own CPU use (on a 2-core machine) small. RSS (/proc/PID/status) is cheap.
        super().__init__(daemon=True)
        self.roots, self.serve_pid, self.interval, self.pss_interval = roots, serve_pid, interval, pss_interval
        self.stop_event = threading.Event()
        self.phase = "setup"
        self.peaks: dict[str, dict[str, int]] = {}

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        self.next_pss = time.perf_counter() + min(0.5, self.pss_interval)

    def run(self) -> None:
        self.next_pss = time.perf_counter() + self.pss_interval
        while not self.stop_event.is_set():
            phase = self.phase
            pids = [d for r in self.roots for d in descendants(r)]
            now = {"rss_kb": sum(proc_status(p).get("VmRSS", 0) for p in pids), "procs": len(pids),
                   "serve_rss_kb": proc_status(self.serve_pid).get("VmRSS", 0) if self.serve_pid else 0}
            if time.perf_counter() >= self.next_pss:
                now["pss_kb"] = sum(proc_pss_kb(p) or 0 for p in pids)
                self.next_pss = time.perf_counter() + self.pss_interval
            pk = self.peaks.setdefault(phase, {"samples": 0})
            for k, v in now.items():
                pk[k] = max(pk.get(k, 0), v)
            pk["samples"] += 1
            self.stop_event.wait(self.interval)

    def peak_mib(self, phase: str, key: str) -> float | None:
        v = self.peaks.get(phase, {}).get(key)
        return None if v is None else v / 1024

    def stop(self) -> None:
        self.stop_event.set()
        self.join(5)


# ------------------------------------------------------------------ the daemon

class Serve:
    """One `mbdata serve` process on a free port with a fresh state database."""

    def __init__(self, mbdata: Path, db: Path, spool: Path | None, work: Path, tag: str, extra: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state = work / "state" / f"{tag}.sqlite"
        self.state.parent.mkdir(parents=True, exist_ok=True)
        for p in self.state.parent.glob(self.state.name + "*"):
            p.unlink()
        self.log_path = work / "logs" / f"serve-{tag}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.cmd = [str(mbdata), "serve", str(db), "--port", str(self.port), "--state", str(self.state)]
        if spool is not None:
            self.cmd += ["--spool", str(spool)]
        self.cmd += extra
        self.proc: subprocess.Popen | None = None
        self.exit: int | None = None

    def start(self, timeout: float = 60.0) -> float:
        t0 = time.perf_counter()
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        CHILDREN.append(self.proc)
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mbdata serve exited with {self.proc.returncode} before it was ready: "
                                   f"{short_cmd(self.cmd)}\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - t0
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"mbdata serve not ready after {timeout:.0f} s: {short_cmd(self.cmd)}\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        try:
            with urllib.request.urlopen(self.url + "/metrics", timeout=5) as r:
                for line in r.read().decode(errors="replace").splitlines():
                    m = re.match(r"(mbdata_[a-z_]+)(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)$", line)
                    if m and m.group(1) in ("mbdata_batches_served_total", "mbdata_bytes_served_total",
                                            "mbdata_stalls_total", "mbdata_stall_seconds_sum",
                                            "mbdata_stall_seconds", "mbdata_lease_expiries_total",
                                            "mbdata_compression_ratio"):
                        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
        except OSError as e:
            out["error"] = str(e)  # type: ignore[assignment]
        return out

    def terminate(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (drain), wait; SIGKILL if it does not exit. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"mbdata serve (pid {self.proc.pid}) still running {timeout:.0f} s after SIGTERM; SIGKILL")
                self.proc.kill()
                self.proc.wait()
        self.exit = self.proc.returncode
        self.logf.close()
        return self.exit

    def log_tail(self, k: int = 12) -> str:
        try:
            return last_lines(self.log_path.read_text(errors="replace"), k)
        except OSError:
            return ""


# ------------------------------------------------------------------ consumers

def consumer_cmd(python: str, cfg: str, ctx: dict, *, rank: int = 0, world: int = 1, url: str = "",
                 group: str = "", ids_path: Path | None = None) -> list[str]:
    base = [python, str(HERE / "consumer.py"), "--n", str(ctx["n"]), "--seed", str(ctx["seed"])]
    if cfg == "idle":
        return base + ["--mode", "idle"]
    kind, _, w = cfg.partition("-w")
    if kind == "numpy":
        return base + ["--mode", "numpy", "--workers", w, "--batch-size", str(ctx["batch"]),
                       "--images", str(ctx["images"]), "--labels", str(ctx["labels"])]
    if kind in ("sqlite", "mbdb"):
        db, col = (ctx["rows_db"], "id") if kind == "sqlite" else (ctx["db"], "_id")
        return base + ["--mode", "sqlite", "--workers", w, "--batch-size", str(ctx["batch"]), "--db", str(db),
                       "--table", "samples", "--id-col", col, "--id-base", str(ctx["id_base"])]
    mode = "serve-raw" if cfg == "serve-raw" else "adapter" if kind == "adapter" else "serve"
    cmd = base + ["--mode", mode, "--url", url, "--dataset", ctx["dataset"], "--group", group,
                  "--batch-size", str(ctx["batch"] * world), "--world", str(world), "--rank", str(rank)]
    if kind == "adapter":
        cmd += ["--workers", w]
    if cfg == "serve-spool-sync":
        cmd += ["--ack", "sync"]
    if cfg == "serve-spool-socket":
        cmd += ["--local-files", "0"]
    if ids_path is not None:
        cmd += ["--save-ids", str(ids_path)]
    return cmd


def run_consumers(cmds: list[list[str]], work: Path, tag: str, timeout: float, serve: Serve | None) -> dict:
    """Start every command under /usr/bin/time -v, wait for READY from all, send go to all,
    wait for all; sample memory meanwhile. Returns the per-process results and the totals."""
    procs, tfiles = [], []
    t_spawn = time.time()
    for i, cmd in enumerate(cmds):
        tfile = work / "logs" / f"time-{tag}-{i}.txt"
        tfile.unlink(missing_ok=True)
        p = subprocess.Popen(["/usr/bin/time", "-v", "-o", str(tfile)] + cmd, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        CHILDREN.append(p)
        procs.append(p)
        tfiles.append(tfile)
    sampler = Sampler([p.pid for p in procs], serve.pid if serve else None)
    sampler.start()
    ready = []
    deadline = time.time() + 300
    for p in procs:
        line = ""
        while time.time() < deadline:
            line = p.stdout.readline()
            if not line or line.startswith("READY "):
                break
        if not line.startswith("READY "):
            p.wait(10)
            raise RuntimeError(f"consumer did not get ready (exit {p.returncode}): {shlex.join(p.args[4:])}\n"
                               f"{last_lines(p.stderr.read(), 15)}")
        ready.append(json.loads(line[6:]))
    serve_cpu0 = proc_cpu_s(serve.pid) if serve else None
    t_go = time.time()
    sampler.set_phase("epoch")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results, errors = [], []
    end = time.time() + timeout
    outs = [None] * len(procs)

    def drain(i: int, p: subprocess.Popen) -> None:
        outs[i] = p.communicate()

    threads = [threading.Thread(target=drain, args=(i, p), daemon=True) for i, p in enumerate(procs)]
    for t in threads:
        t.start()
    for t, p in zip(threads, procs):
        t.join(max(0.0, end - time.time()))
        if t.is_alive():
            p.kill()
            t.join(5)
            errors.append(f"consumer timed out after {timeout:.0f} s: {shlex.join(p.args[4:])}")
    sampler.stop()
    serve_info: dict = {}
    if serve:
        st = proc_status(serve.pid)
        cpu1 = proc_cpu_s(serve.pid)
        serve_info = {"hwm_mib": st.get("VmHWM", 0) / 1024, "rss_end_mib": st.get("VmRSS", 0) / 1024,
                      "sampled_peak_rss_mib": sampler.peak_mib("epoch", "serve_rss_kb"),
                      "cpu_s": None if cpu1 is None or serve_cpu0 is None else cpu1 - serve_cpu0,
                      "cpu_total_s": cpu1, "metrics": serve.metrics()}
    for i, (p, tfile) in enumerate(zip(procs, tfiles)):
        out, err = outs[i] or ("", "")
        tv = parse_time_v(tfile.read_text()) if tfile.exists() else {}
        res_line = [l for l in (out or "").splitlines() if l.startswith("RESULT ")]
        if p.returncode != 0 or not res_line:
            errors.append(f"consumer {i} exit {p.returncode}: {shlex.join(p.args[4:])}\n{last_lines(err or '', 15)}")
            continue
        r = json.loads(res_line[-1][7:])
        r.update({"exit": p.returncode, **{f"time_{k}": v for k, v in tv.items()}, "ready": ready[i],
                  "ttfb_from_spawn_s": None if r.get("t_first_unix") is None else r["t_first_unix"] - t_spawn,
                  "stderr_tail": last_lines(err or "", 3)})
        results.append(r)
    return {"clients": results, "errors": errors, "serve": serve_info, "t_go": t_go,
            "memory": sampler.peaks,
            "epoch_rss_mib": sampler.peak_mib("epoch", "rss_kb"), "epoch_pss_mib": sampler.peak_mib("epoch", "pss_kb"),
            "setup_pss_mib": sampler.peak_mib("setup", "pss_kb")}


def summarize(run: dict, k: int) -> dict:
    cl = run["clients"]
    if len(cl) != k:
        return {"ok": False}
    samples = sum(c["samples"] for c in cl)
    t0 = min(c["t_go_unix"] for c in cl)
    t1 = max(c["t_last_unix"] for c in cl)
    wall = t1 - t0
    ttfbs = [c["ttfb_s"] for c in cl if c.get("ttfb_s") is not None]
    cpu = [c.get("time_user_s", 0) + c.get("time_sys_s", 0) for c in cl]
    return {
        "ok": not run["errors"], "samples": samples, "batches": sum(c["batches"] for c in cl), "wall_s": wall,
        "samples_per_s": samples / wall if wall > 0 and samples else None,
        "mb_per_s": samples * SAMPLE_BYTES / 1e6 / wall if wall > 0 and samples else None,
        "ttfb_s": max(ttfbs) if ttfbs else None,
        "ttfb_from_spawn_s": max((c["ttfb_from_spawn_s"] or 0) for c in cl),
        "per_client_samples_per_s": [c["samples_per_s"] for c in cl],
        "rss_mib": max(c.get("time_rss_mib", 0) for c in cl),  # GNU time: process (+ reaped workers' max)
        "epoch_rss_mib": run["epoch_rss_mib"], "epoch_pss_mib": run["epoch_pss_mib"],
        "processes": run["memory"].get("epoch", {}).get("procs"),
        "consumer_cpu_s": sum(cpu),
        "serve_hwm_mib": run["serve"].get("hwm_mib"), "serve_cpu_s": run["serve"].get("cpu_s"),
        "source": sorted({str(c.get("source")) for c in cl}),
    }


def check_ids(paths: list[Path], n: int, batch: int, k: int, labels: np.ndarray) -> dict:
    """Served ids over all clients: distinct, the expected count, labels equal the input's."""
    ids, labs = [], []
    for p in paths:
        if not p.exists():
            return {"ok": False, "problem": f"{p.name} missing"}
        z = np.load(p)
        ids.append(z["ids"])
        labs.append(z["labels"])
    ids_a, labs_a = np.concatenate(ids), np.concatenate(labs)
    want = (n // (batch * k)) * batch * k
    problems = []
    if len(ids_a) != want:
        problems.append(f"{len(ids_a)} samples, expected {want}")
    if len(np.unique(ids_a)) != len(ids_a):
        problems.append(f"{len(ids_a) - len(np.unique(ids_a))} duplicate ids")
    if len(ids_a) and (ids_a.min() < 1 or ids_a.max() > n):
        problems.append(f"ids outside 1..{n}")
    elif len(ids_a) and not np.array_equal(labels[ids_a - 1], labs_a):
        problems.append(f"{int((labels[ids_a - 1] != labs_a).sum())} labels differ from labels.npy")
    return {"ok": not problems, "samples": int(len(ids_a)), "problems": problems}


# ------------------------------------------------------------------ preparation

def ensure_dataset(work: Path, n: int, mbdata: Path, python: str, timeout: float) -> dict:
    """The inputs (WORK/cifar) and the dataset (WORK/cifar.mbdb) of N samples, made once and
    reused while their stamp matches."""
    folder = work / "cifar"
    subprocess.run([python, str(INGEST / "generate.py"), "--n", str(n), "--work", str(folder), "--no-jsonl"], check=True)
    man = json.loads((folder / "manifest.json").read_text())
    images, labels = folder / "images.npy", folder / "labels.npy"
    db = work / "cifar.mbdb"
    stamp = {"inputs": {k: man.get(k) for k in ("format_version", "n", "seed", "sizes")}, "folder": str(folder),
             "mbdata_sha256": file_sha(mbdata)}
    ingest = ensure_db("cifar", db, ["--schema", str(folder / "cifar.schema.json"),
                                     f"image={images}", f"label={labels}"], stamp, mbdata, False, timeout)
    return {"folder": folder, "images": images, "labels": labels, "db": db, "stamp": stamp, "ingest": ingest}


def ensure_spool(out: Path, db: Path, stamp: dict, opts: list[str], mbdata: Path, timeout: float) -> dict:
    """The shard set `mbdata shard DB --out OUT OPTS`, made once and reused while its key
    (dataset stamp and options) matches."""
    key = {"db": stamp, "opts": opts}
    sp = out.with_name(out.name + ".stamp.json")
    cached = None
    if sp.exists() and (out / "manifest.json").exists():
        try:
            old = json.loads(sp.read_text())
            cached = old if old.get("key") == key else None
        except json.JSONDecodeError:
            pass
    if cached:
        log(f"shard set {rel(out)} up to date; reusing")
        run = {**cached, "reused": True}
    else:
        if out.exists():
            shutil.rmtree(out)
        sp.unlink(missing_ok=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [str(mbdata), "shard", str(db), "--out", str(out)] + opts
        log("shard: " + short_cmd(cmd))
        rc, _o, err, wall = sb.run_timed(cmd, timeout)
        if rc != 0:
            raise RuntimeError(f"shard failed (exit {rc}): {short_cmd(cmd)}\n{last_lines(err, 15)}")
        info = {"key": key, "command": short_cmd(cmd), "wall_s": round(wall, 2),
                "bytes": sum(p.stat().st_size for p in out.iterdir() if p.is_file())}
        sp.write_text(json.dumps(info, indent=2) + "\n")
        run = {**info, "reused": False}
    m = json.loads((out / "manifest.json").read_text())
    run["manifest_totals"] = m.get("totals")
    run["plan"] = m.get("plan")
    return run


def prepare(work: Path, n: int, mbdata: Path, batch: int, seed: int, worlds: list[int], python: str,
            timeout: float) -> dict:
    data = ensure_dataset(work, n, mbdata, python, timeout)
    folder, images, labels, db, stamp = data["folder"], data["images"], data["labels"], data["db"], data["stamp"]
    ctx: dict = {"n": n, "batch": batch, "seed": seed, "images": images, "labels": labels, "dataset": "cifar",
                 "folder": folder, "ingest": data["ingest"], "db": db}
    # _id of row i: check that the dataset holds labels.npy in order (ids 1..N)
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    mn, mx, cnt = con.execute("SELECT min(_id), max(_id), count(*) FROM samples").fetchone()
    db_labels = np.fromiter((r[0] for r in con.execute("SELECT label FROM samples ORDER BY _id")), dtype=np.int64)
    con.close()
    lab = np.load(labels)
    if cnt != n or not np.array_equal(db_labels, lab):
        raise RuntimeError(f"{db}: {cnt} rows (_id {mn}..{mx}) do not hold labels.npy in _id order")
    ctx["id_base"] = mn
    if mn != 1 or mx != n:
        log(f"note: _id runs {mn}..{mx}")

    # shard sets, one per world size
    ctx["spool_root"] = work / "spool"
    ctx["spool"] = {}
    ctx["shard_runs"] = {}
    for k in worlds:
        out = ctx["spool_root"] / f"w{k}"
        opts = ["--batch-size", str(batch * k), "--epochs", "1", "--seed", str(seed)] + (["--world", str(k)] if k > 1 else [])
        ctx["shard_runs"][k] = ensure_spool(out, db, stamp, opts, mbdata, timeout)
        ctx["spool"][k] = out

    # plain SQLite rows for the DataLoader peer
    rows = work / "rows.sqlite"
    rstamp = rows.with_name(rows.name + ".stamp.json")
    rkey = {"inputs": stamp["inputs"], "script": file_sha(HERE / "make_sqlite.py")}
    info = None
    if rows.exists() and rstamp.exists():
        try:
            old = json.loads(rstamp.read_text())
            info = {**old, "reused": True} if old.get("key") == rkey else None
        except json.JSONDecodeError:
            pass
    if info is None:
        rows.unlink(missing_ok=True)
        cmd = [python, str(HERE / "make_sqlite.py"), "--db", str(rows), "--images", str(images), "--labels", str(labels)]
        log("rows DB: " + short_cmd(cmd))
        p = subprocess.run(cmd, capture_output=True, text=True, check=True)
        info = {"key": rkey, **json.loads(p.stdout.strip().splitlines()[-1])}
        rstamp.write_text(json.dumps(info, indent=2) + "\n")
        info["reused"] = False
    ctx["rows_db"], ctx["rows_info"] = rows, info
    return ctx


def files_for(cfg: str, ctx: dict) -> list[Path]:
    if cfg.startswith("numpy"):
        return [ctx["images"], ctx["labels"]]
    if cfg.startswith("sqlite"):
        return [ctx["rows_db"]]
    if cfg.startswith("mbdb") or cfg == "serve-live":
        return [p for p in ctx["db"].parent.glob(ctx["db"].name + "*") if p.is_file() and not p.name.endswith(".json")]
    if cfg in ("serve-spool", "serve-spool-sync", "serve-spool-socket", "serve-raw") or cfg.startswith("adapter"):
        return sorted(ctx["spool"][1].glob("*.mbshard"))
    m = re.match(r"serve-k(\d+)$", cfg)
    if m:
        return sorted(ctx["spool"][int(m.group(1))].glob("*.mbshard"))
    return []


# ------------------------------------------------------------------ one measurement

def record_failure(res: dict, tag: str, errors: list[str]) -> None:
    """Marks the run `res` failed, with its errors (also logged)."""
    res["ok"] = False
    res.setdefault("errors", []).extend(errors)
    for e in errors:
        log(f"{tag}: {e}")


def measure(cfg: str, rep: int, ctx: dict, work: Path, mbdata: Path, python: str, timeout: float,
            serve_extra: list[str], do_prewarm: bool) -> dict:
    tag = f"{cfg}-r{rep}"
    res: dict = {"config": cfg, "rep": rep}
    if do_prewarm:
        res["prewarm_s"] = round(prewarm(files_for(cfg, ctx)), 2)
    res["others_cores_busy"] = round(others_busy(0.5), 2)
    serve = None
    k = 1
    try:
        if cfg.startswith(("serve", "adapter")):
            m = re.match(r"serve-k(\d+)$", cfg)
            k = int(m.group(1)) if m else 1
            spool = None if cfg == "serve-live" else ctx["spool"][k]
            serve = Serve(mbdata, ctx["db"], spool, work, tag, serve_extra)
            res["serve_command"] = short_cmd(serve.cmd)
            res["serve_ready_s"] = round(serve.start(), 3)
            group = f"bench-{tag}-{int(time.time() * 1000)}"
            ids = [work / "ids" / f"{tag}-rank{r}.npz" for r in range(k)]
            ids[0].parent.mkdir(parents=True, exist_ok=True)
            for p in ids:
                p.unlink(missing_ok=True)
            cmds = [consumer_cmd(python, cfg, ctx, rank=r, world=k, url=serve.url, group=group, ids_path=ids[r])
                    for r in range(k)]
        else:
            cmds = [consumer_cmd(python, cfg, ctx)]
        res["consumer_commands"] = [short_cmd(c) for c in cmds]
        log(f"{tag}: " + (f"{k} × " if k > 1 else "") + short_cmd(cmds[0]))
        run = run_consumers(cmds, work, tag, timeout, serve)
        res["run"] = run
        res.update(summarize(run, len(cmds)))
        if serve:
            res["ids"] = check_ids(ids, ctx["n"], ctx["batch"], k, np.load(ctx["labels"]))
            if not res["ids"]["ok"]:
                res["ok"] = False
        if run["errors"]:
            record_failure(res, tag, run["errors"])
    except Exception as e:  # noqa: BLE001
        record_failure(res, tag, [f"FAILED: {type(e).__name__}: {e}"])
    finally:
        if serve is not None and serve.proc is not None:
            res["serve_exit"] = serve.terminate()
            if res["serve_exit"] != 0:
                res.setdefault("notes", []).append(f"mbdata serve exited {res['serve_exit']} after SIGTERM")
            res["serve_log_tail"] = serve.log_tail(6)
    if res.get("samples_per_s"):
        log(f"{tag}: {res['samples_per_s']:,.0f} samples/s, {res['mb_per_s']:,.1f} MB/s, first batch "
            f"{res['ttfb_s'] * 1000:,.0f} ms, peak RSS {res['rss_mib']:,.0f} MiB"
            + (f", serve {res['serve_hwm_mib']:,.0f} MiB" if res.get("serve_hwm_mib") else ""))
    return res


def median_run(reps: list[dict]) -> dict | None:
    good = [r for r in reps if r.get("ok") and r.get("samples_per_s")]
    if not good:
        return reps[-1] if reps else None
    good.sort(key=lambda r: r["samples_per_s"])
    return good[(len(good) - 1) // 2]


# ------------------------------------------------------------------ first batch and memory across sizes

def proc_mib(pid: int, key: str) -> float | None:
    value = proc_status(pid).get(key)
    return None if value is None else value / 1024


def prefetch_budget_mib(serve_extra: list[str], batch: int) -> float:
    """What a stream's prefetch may hold: `--depth` (default 8) whole batch messages."""
    depth = 8
    for flag, value in zip(serve_extra, serve_extra[1:]):
        if flag == "--depth":
            depth = int(value)
    return depth * batch * SAMPLE_BYTES / 2**20


def scale_phase(sizes: list[int], n: int, ctx: dict, work: Path, mbdata: Path, python: str, timeout: float,
                serve_extra: list[str], repeats: int) -> list[dict]:
    """First batch (new group, resume) and daemon memory at each size, with each ack style,
    `repeats` interleaved rounds; one row per (size, ack style) with the medians."""
    sets: dict[int, tuple[Path, Path]] = {}
    for size in sizes:
        if size == n:
            sets[size] = (ctx["db"], ctx["spool"][1])
            continue
        folder = work / f"scale-{size}"
        folder.mkdir(parents=True, exist_ok=True)
        data = ensure_dataset(folder, size, mbdata, python, timeout)
        out = folder / "spool" / "w1"
        ensure_spool(out, data["db"], data["stamp"], ["--batch-size", str(ctx["batch"]), "--epochs", "1",
                                                       "--seed", str(ctx["seed"])], mbdata, timeout)
        sets[size] = (data["db"], out)
    runs: dict[tuple[int, str], list[dict]] = {(size, ack): [] for size in sizes for ack in ("default", "sync")}
    for rep in range(1, repeats + 1):
        for (size, ack), rows in runs.items():
            db, spool = sets[size]
            tag = f"scale-{size}-{ack}-r{rep}"
            if os.environ.get("PREWARM", "1") != "0":
                prewarm(sorted(spool.glob("*.mbshard")))
            serve = Serve(mbdata, db, spool, work, tag, serve_extra)
            row: dict = {"ok": False}
            try:
                serve.start()
                cmd = [python, str(HERE / "first_batch.py"), "--url", serve.url, "--dataset", "cifar",
                       "--batch-size", str(ctx["batch"]), "--seed", str(ctx["seed"]), "--group", f"bench-{tag}",
                       "--ack", ack]
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
                result = [line for line in p.stdout.splitlines() if line.startswith("RESULT ")]
                if p.returncode == 0 and result:
                    row.update(json.loads(result[-1][7:]), ok=True)
                else:
                    row["error"] = last_lines(p.stderr, 8)
                row["serve_hwm_mib"] = proc_mib(serve.pid, "VmHWM")
                row["serve_rss_mib"] = proc_mib(serve.pid, "VmRSS")
            except Exception as e:  # noqa: BLE001
                row["error"] = f"{type(e).__name__}: {e}"
            finally:
                serve.terminate()
            log(f"{tag}: " + (f"new {row['new_ms']:.1f} ms, resume {row['resume_ms']:.1f} ms, daemon "
                              f"{fmt(row.get('serve_hwm_mib'), '.1f')} MiB" if row["ok"] else f"FAILED {row.get('error')}"))
            rows.append(row)
    table = []
    for (size, ack), rows in runs.items():
        good = [r for r in rows if r["ok"]]

        def median(key: str) -> float | None:
            values = [r[key] for r in good if r.get(key) is not None]
            return statistics.median(values) if values else None

        table.append({"n": size, "ack": ack, "runs": len(rows), "ok": len(good), "new_ms": median("new_ms"),
                      "resume_ms": median("resume_ms"), "serve_hwm_mib": median("serve_hwm_mib"),
                      "serve_rss_mib": median("serve_rss_mib"), "rounds": rows})
    return table


# ------------------------------------------------------------------ report

def render(info: dict, settings: dict, n: int, table: dict[str, dict], reps: dict[str, list[dict]],
           clients: list[int], checks: list[dict] | None, ctx: dict, ratios: list[dict], scale_rows: list[dict]) -> str:
    out: list[str] = ["# mbdata serve benchmark\n"]
    out.append(f"N = {n:,} CIFAR-shaped samples (image uint8 [3,32,32] + label int64, {SAMPLE_BYTES} bytes), "
               f"batch {ctx['batch']}, shuffled (seed {ctx['seed']}), one epoch per run, tail dropped "
               f"({n % ctx['batch']} samples) in every configuration. MB = 10^6 bytes, MiB = 2^20 bytes. "
               f"Every figure is the median run of {settings['repeats']} by samples/s.\n")
    if not 200_000 <= n:
        out.append(f"> N = {n:,}: a short run; start-up costs weigh more than at 200k–1M.\n")
    out.append("| | |\n|---|---|")
    for k, v in {**info, **settings}.items():
        out.append(f"| {k} | {v} |")
    out.append("")
    out.append("| configuration | samples/s | MB/s | first batch ms | peak RSS MiB | epoch RSS Σ MiB | epoch PSS Σ MiB | "
               "serve peak RSS MiB | consumer CPU s | serve CPU s | runs ok |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for cfg, r in table.items():
        if cfg.startswith("serve-k") or r is None:
            continue
        ok = sum(1 for x in reps[cfg] if x.get("ok"))
        out.append(
            f"| {LABELS.get(cfg, cfg)} | {fmt(r.get('samples_per_s'), ',.0f')} | {fmt(r.get('mb_per_s'), ',.1f')} | "
            f"{fmt(None if r.get('ttfb_s') is None else r['ttfb_s'] * 1000, ',.0f')} | {fmt(r.get('rss_mib'), ',.0f')} | "
            f"{fmt(r.get('epoch_rss_mib'), ',.0f')} | {fmt(r.get('epoch_pss_mib'), ',.0f')} | {fmt(r.get('serve_hwm_mib'), ',.1f')} | "
            f"{fmt(r.get('consumer_cpu_s'), '.2f')} | {fmt(r.get('serve_cpu_s'), '.2f')} | {ok}/{len(reps[cfg])} |")
    out.append("")
    conc = [(k, table.get("serve-spool" if k == 1 else f"serve-k{k}")) for k in clients]
    if any(r for _, r in conc):
        out.append(f"Concurrent clients on one spool daemon (partition mode: rank r of world k, global batch "
                   f"{ctx['batch']} × k, each client {ctx['batch']} a batch):\n")
        out.append("| clients | aggregate samples/s | aggregate MB/s | per client samples/s | slowest first batch ms | "
                   "serve peak RSS MiB | serve CPU s | client peak RSS MiB (max) | runs ok |")
        out.append("|---:|---:|---:|---|---:|---:|---:|---:|---|")
        for k, r in conc:
            if not r:
                continue
            cfg = "serve-spool" if k == 1 else f"serve-k{k}"
            per = ", ".join(f"{x:,.0f}" for x in r.get("per_client_samples_per_s") or [])
            ok = sum(1 for x in reps[cfg] if x.get("ok"))
            out.append(f"| {k} | {fmt(r.get('samples_per_s'), ',.0f')} | {fmt(r.get('mb_per_s'), ',.1f')} | {per} | "
                       f"{fmt(None if r.get('ttfb_s') is None else r['ttfb_s'] * 1000, ',.0f')} | "
                       f"{fmt(r.get('serve_hwm_mib'), ',.1f')} | {fmt(r.get('serve_cpu_s'), '.2f')} | "
                       f"{fmt(r.get('rss_mib'), ',.0f')} | {ok}/{len(reps[cfg])} |")
        out.append("")
    if ratios:
        out.append("## Ratios and targets\n")
        out.append("| comparison | value | target | result |")
        out.append("|---|---:|---:|---|")
        for q in ratios:
            unit = q.get("unit", "×")
            value = fmt(q.get("value"), ".2f" if unit == "×" else ".1f")
            out.append(f"| {q['what']} | {value}{'' if unit == '×' else ' '}{unit} | {q.get('target_text', '–')} | {q['result']} |")
        out.append("")
    if scale_rows:
        out.append("## First batch and daemon memory across dataset sizes\n")
        out.append("One spool daemon per run (fresh state, new group), `Benchmarks/serve/first_batch.py`: first batch "
                   "of a new group (request → batch in hand), half the epoch acked, stream and client closed, then "
                   "the same group reopened (resume: request → first batch in hand) and the rest read. Medians of "
                   "the rounds; daemon peak RSS = VmHWM at the end.\n")
        out.append("| N | acks | first batch, new group ms | first batch after resume ms | daemon peak RSS MiB | daemon RSS at end MiB | runs ok |")
        out.append("|---:|---|---:|---:|---:|---:|---|")
        for row in scale_rows:
            out.append(f"| {row['n']:,} | {row['ack']} | {fmt(row.get('new_ms'), '.1f')} | {fmt(row.get('resume_ms'), '.1f')} | "
                       f"{fmt(row.get('serve_hwm_mib'), '.1f')} | {fmt(row.get('serve_rss_mib'), '.1f')} | {row['ok']}/{row['runs']} |")
        out.append("")
    ref = []
    for cfg, want in (("sqlite-w0", "64–89k (best SQLite)"), ("numpy-w0", "386–401k")):
        r = table.get(cfg)
        if r and r.get("samples_per_s"):
            ref.append(f"{LABELS[cfg]}: {want} in the issue, {r['samples_per_s']:,.0f} here")
    if ref:
        out.append("Reference figures the issue quotes for this machine kind (samples/s): " + "; ".join(ref) + ".\n")
    if checks is not None:
        failed = [c for c in checks if c["ok"] is False]
        counted = [c for c in checks if c["ok"] is not None]
        out.append("## Protocol checks (serve-protocol.md)\n")
        out.append("Run before the measurements on daemons of their own (`Benchmarks/serve/protocol_check.py`, "
                   "wire-level, no client library).\n")
        out.append(f"{len(counted) - len(failed)} of {len(counted)} checks as documented"
                   + (". **Discrepancies:**\n" if failed else ".\n"))
        if failed:
            out.append("| check | what | documented | observed |")
            out.append("|---|---|---|---|")
            for c in failed:
                esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
                out.append(f"| {c['id']} | {esc(c['what'])} | {esc(c['expected'])} | {esc(c['got'])} |")
            out.append("")
        out.append("<details><summary>all checks</summary>\n")
        for c in checks:
            mark = "info" if c["ok"] is None else "ok" if c["ok"] else "**differs**"
            out.append(f"- {mark} `{c['id']}`: {c['what']} — got {c['got']}")
        out.append("\n</details>\n")
    out.append("## Details\n")
    for cfg, rs in reps.items():
        lines = []
        for r in rs:
            if r.get("samples_per_s"):
                body = (f"{r['samples_per_s']:,.0f} samples/s, first batch {r['ttfb_s'] * 1000:,.0f} ms, "
                        f"{r['samples']:,} samples in {r['wall_s']:.2f} s, RSS {r['rss_mib']:,.0f} MiB, "
                        f"epoch PSS {fmt(r.get('epoch_pss_mib'), ',.0f')} MiB")
            elif r.get("ok") and cfg == "idle":
                body = (f"no data; RSS {r['rss_mib']:,.0f} MiB, PSS {fmt(r.get('epoch_pss_mib'), ',.0f')} MiB "
                        f"(set-up {r['run']['clients'][0]['ready']['setup_s']} s)")
            else:
                body = "no result"
            s = (f"run {r['rep']}: " + body
                 + (f", serve {r['serve_hwm_mib']:,.1f} MiB (ready in {r.get('serve_ready_s')} s)" if r.get("serve_hwm_mib") else "")
                 + f", other load {r.get('others_cores_busy')} cores"
                 + (f", ids {'ok' if r['ids']['ok'] else r['ids']['problems']}" if "ids" in r else "")
                 + (f", source {','.join(r['source'])}" if r.get("source") and r["source"] != ["None"] else ""))
            if r.get("errors"):
                s += "; **errors**: " + " / ".join(e.replace("\n", " ")[:400] for e in r["errors"])
            if r.get("serve_exit") not in (None, 0):
                s += f"; serve exit {r['serve_exit']}: {r.get('serve_log_tail', '')[:300]}"
            lines.append(s)
        first = rs[0] if rs else {}
        out.append(f"- **{cfg}** ({LABELS.get(cfg, cfg)}): `{(first.get('consumer_commands') or ['?'])[0]}`"
                   + (f"; daemon `{first['serve_command']}`" if first.get("serve_command") else ""))
        for s in lines:
            out.append(f"  - {s}")
    out.append("")
    out.append("- data: " + ", ".join(f"{k} {v}" for k, v in {
        "inputs": rel(ctx["folder"]), "dataset": f"{rel(ctx['db'])} (ingest {ctx['ingest'].get('ingest_s')} s)",
        "rows DB": f"{rel(ctx['rows_db'])} ({ctx['rows_info'].get('db_bytes', 0) / 1e6:,.0f} MB, "
                   f"{ctx['rows_info'].get('page_size')} B pages)"}.items()))
    for k, s in ctx["shard_runs"].items():
        out.append(f"- shard set w{k}: `{s.get('command')}` ({s.get('wall_s')} s{', reused' if s.get('reused') else ''}; "
                   f"totals {s.get('manifest_totals')})")
    out.append("")
    out.append(
        "How it is measured: every configuration runs in fresh processes. A consumer process "
        "(`Benchmarks/serve/consumer.py`) imports torch, sets up (loads the array / builds the DataLoader / nothing "
        "for serve), says READY and waits; the driver sends `go` to all consumers of the run at once; the clock starts "
        "there. **samples/s** = samples delivered ÷ (last batch touched − go), over all clients of a run; **MB/s** = the "
        f"same × {SAMPLE_BYTES} bytes (decoded image + label); **first batch** = go → first batch in hand (for the "
        "DataLoader this includes creating the iterator and starting its workers; for serve the first request and the "
        "daemon's plan set-up). Each batch is touched alike: image and labels as torch tensors, a checksum of one byte "
        "per 4 KiB page of the image tensor, the label sum; serve consumers also ack every batch "
        "(`POST /v1/cursors/{id}/acks`). **peak RSS** = `Maximum resident set size` of GNU time -v around the consumer "
        "over its whole life, torch import included (Linux reports the largest of the process and its reaped "
        "children, not their sum); **epoch RSS Σ / PSS Σ** = the peak, between go and the end of the run, of the "
        "summed resident / proportional set size of the consumer and its DataLoader workers (all clients of a run), "
        "sampled from /proc every 50 ms (RSS) and every second from 0.5 s after go (PSS, which counts pages shared "
        "after fork once; reading it costs ~18 ms per GiB of the process, hence the coarser rate; a run shorter "
        "than 0.5 s has no PSS figure). **serve peak RSS** = VmHWM of the daemon read just before SIGTERM; **serve CPU s** "
        "= its user + system time between go and the end of the run. The daemon is started fresh for every run (new "
        "state database, new consumer group), on a free port; the files a run reads are read once before it (page "
        "cache). The torch import alone takes the resident size shown in the baseline row."
    )
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ main

def main() -> int:
    n = env_int("N", 200_000)
    if not 50_000 <= n <= 1_000_000 and os.environ.get("ANY_N") != "1":
        raise SystemExit(f"N={n}: the benchmark is defined for 50,000..1,000,000 samples (ANY_N=1 overrides)")
    mbdata = Path(os.environ.get("MBDATA", ROOT / ".build/release/mbdata"))
    mbdata = mbdata if mbdata.is_absolute() else ROOT / mbdata
    work = Path(os.environ.get("WORK", ROOT / "Benchmarks/work/serve"))
    work = work if work.is_absolute() else ROOT / work
    results = Path(os.environ.get("RESULTS", ROOT / "Benchmarks/results/serve.md"))
    results = results if results.is_absolute() else ROOT / results
    batch, seed = env_int("BATCH_SIZE", 256), env_int("SEED", 7)
    repeats = env_int("REPEATS", 3)
    timeout = float(env_int("TIMEOUT", 600))
    workers = [int(x) for x in env_list("WORKERS", "0,2,4")]
    clients = [int(x) for x in env_list("CLIENTS", "1")]
    sizes = [int(x) for x in env_list("SIZES", "50000,200000,1000000")]
    default_runs = (["idle"] + [f"numpy-w{w}" for w in workers] + [f"sqlite-w{w}" for w in workers]
                    + [f"mbdb-w{w}" for w in workers] + ["serve-spool", "serve-spool-sync", "serve-spool-socket", "serve-live", "serve-raw"]
                    + [f"adapter-w{w}" for w in workers] + [f"serve-k{k}" for k in clients if k > 1])
    runs = env_list("RUNS", ",".join(default_runs))
    if 1 in clients and "serve-spool" not in runs and any(re.match(r"serve-k\d+$", r) for r in runs):
        runs.append("serve-spool")
    serve_extra = shlex.split(os.environ.get("SERVE_ARGS", ""))
    do_prewarm = os.environ.get("PREWARM", "1") != "0"
    keep = os.environ.get("KEEP") == "1"
    python = sys.executable
    needs_serve = any(r.startswith(("serve", "adapter")) for r in runs)
    if not mbdata.exists():
        raise SystemExit(f"{mbdata} not found: build it first (make release)")
    work.mkdir(parents=True, exist_ok=True)
    (work / "logs").mkdir(exist_ok=True)

    exit_on_signals()
    worlds = sorted({1} | {int(r[7:]) for r in runs if re.match(r"serve-k\d+$", r)})
    ctx = prepare(work, n, mbdata, batch, seed, worlds, python, timeout)

    info = ib.machine_info(work, mbdata)
    import torch

    info["python / numpy / torch"] = f"{info.pop('python / numpy')} / {torch.__version__}"
    info.pop("sqlite (system lib)", None)
    info["mbdata_client"] = client_info()
    settings = {"N": f"{n:,}", "batch": batch, "seed": seed, "repeats": repeats,
                "DataLoader": f"BatchSampler(RandomSampler, generator seeded {seed}, drop_last=True), batch_size=None "
                              f"(one gather / one SELECT … IN per batch, no collate), persistent_workers=False with workers",
                "serve extra args": shlex.join(serve_extra) or "none"}

    checks = None
    if needs_serve and os.environ.get("PROTOCOL_CHECK", "1") != "0":
        import protocol_check

        spool_srv = Serve(mbdata, ctx["db"], ctx["spool_root"], work, "check-spool", serve_extra)
        live_srv = Serve(mbdata, ctx["db"], None, work, "check-live", serve_extra)
        try:
            spool_srv.start()
            live_srv.start()
            checks = protocol_check.run(base=spool_srv.url, live=live_srv.url, dataset=ctx["dataset"], n=n, batch=batch,
                                        seed=seed, spool_sets=ctx["spool"], mbdb=ctx["db"],
                                        terminate=spool_srv.terminate, log=log)
        except Exception as e:  # noqa: BLE001
            checks = [{"id": "start", "what": "start the daemons for the checks", "expected": "ready",
                       "got": f"{type(e).__name__}: {e}"[:400], "ok": False}]
            log(f"protocol checks failed to run: {e}")
        finally:
            spool_srv.terminate()
            rc = live_srv.terminate()
            if checks is not None:
                checks.append({"id": "live.exit", "what": "live daemon exits 0 after SIGTERM", "expected": "0",
                               "got": str(rc), "ok": rc == 0})

    reps: dict[str, list[dict]] = {cfg: [] for cfg in runs}
    for rep in range(1, repeats + 1):
        for cfg in runs:
            reps[cfg].append(measure(cfg, rep, ctx, work, mbdata, python, timeout, serve_extra, do_prewarm))
    table = {cfg: median_run(rs) for cfg, rs in reps.items()}

    ratios = []

    def sps(cfg: str) -> float | None:
        r = table.get(cfg)
        return r.get("samples_per_s") if r and r.get("ok") else None

    def ratio(what: str, num: str | None, den: str | None, target: float | None) -> None:
        if not (num and den and sps(num) and sps(den)):
            return
        v = sps(num) / sps(den)
        entry = {"what": f"{what}: {LABELS.get(num, num)} ÷ {LABELS.get(den, den)}", "value": v, "result": "(info)"}
        if target is not None:
            entry.update(target=target, target_text=f"≥ {target:g}×", result="PASS" if v >= target else "**MISS**")
        ratios.append(entry)

    sqlite_cfgs = [c for c in runs if c.startswith(("sqlite-", "mbdb-")) and sps(c)]
    best_sql = max(sqlite_cfgs, key=lambda c: sps(c), default=None)
    spool_cfgs = [c for c in ("serve-spool", "serve-spool-sync", "serve-spool-socket") if sps(c)]
    best_spool = max(spool_cfgs, key=lambda c: sps(c), default=None)
    ratio("README's loop", "serve-spool", "numpy-w0", TARGET_DEFAULT_VS_NUMPY)
    ratio("fastest ack style", best_spool, "numpy-w0", TARGET_BEST_VS_NUMPY)
    ratio("no spool", "serve-live", best_sql, TARGET_LIVE_VS_SQLITE)
    ratio("spool", "serve-spool", best_sql, None)
    for w in workers:
        if w > 0:
            ratio(f"adapter, {w} workers", f"adapter-w{w}", "adapter-w0", 1.0)
    ratio("adapter", "adapter-w0", "numpy-w0", None)
    ratio("sync acks", "serve-spool-sync", "serve-spool", None)
    ratio("local delivery ÷ through the socket", "serve-spool", "serve-spool-socket", None)
    ratio("client ÷ raw reader (same spool daemon)", "serve-spool", "serve-raw", None)

    scale_rows = scale_phase(sizes, n, ctx, work, mbdata, python, timeout, serve_extra, repeats) if sizes else []
    for row in scale_rows:
        for key, what in (("new_ms", "first batch, new group"), ("resume_ms", "first batch after resume")):
            if row.get(key) is not None and row["ack"] == "default":
                ratios.append({"what": f"{what}, N = {row['n']:,}", "value": row[key], "unit": "ms",
                               "target_text": f"< {TARGET_FIRST_BATCH_MS:g} ms",
                               "result": "PASS" if row[key] < TARGET_FIRST_BATCH_MS else "**MISS**"})
    hwm = [row["serve_hwm_mib"] for row in scale_rows if row.get("serve_hwm_mib")]
    if hwm:
        budget = prefetch_budget_mib(serve_extra, ctx["batch"])
        ratios.append({"what": f"daemon peak RSS, largest over sizes and ack styles (prefetch budget {budget:.1f} MiB + "
                               f"{TARGET_SERVE_MEMORY_MIB:g} MiB)", "value": max(hwm), "unit": "MiB",
                       "target_text": f"≤ {budget + TARGET_SERVE_MEMORY_MIB:.1f} MiB",
                       "result": "PASS" if max(hwm) <= budget + TARGET_SERVE_MEMORY_MIB else "**MISS**"})
        spread = max(hwm) / min(hwm) - 1
        ratios.append({"what": "daemon peak RSS, spread over sizes and ack styles (max ÷ min − 1)", "value": spread * 100,
                       "unit": "%", "target_text": "≤ 10 %", "result": "PASS" if spread <= 0.10 else "**MISS**"})

    md = render(info, settings, n, table, reps, clients, checks, ctx, ratios, scale_rows)

    def clean(o):
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, Path):
            return rel(o)
        return o

    doc = {"n": n, "machine": info, "settings": settings, "ratios": ratios, "scale": clean(scale_rows),
           "protocol_checks": checks,
           "table": {k: clean({kk: vv for kk, vv in (v or {}).items() if kk != "run"}) for k, v in table.items()},
           "runs": clean(reps),
           "data": clean({k: ctx[k] for k in ("folder", "db", "rows_db", "rows_info", "ingest", "shard_runs", "id_base")})}
    write_report(results, md, doc)
    if not keep:
        for d in ("state", "ids"):
            shutil.rmtree(work / d, ignore_errors=True)
    failed = [cfg for cfg, rs in reps.items() if not any(r.get("ok") for r in rs)]
    if failed:
        log(f"no successful run of: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        stop_children()
