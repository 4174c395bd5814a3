#!/usr/bin/env python3
"""Cluster benchmark (issue 13): state in PostgreSQL against SQLite, several daemons, shard
sets from an HTTP origin. Run via Benchmarks/cluster/run.sh or `make bench-cluster`.

N CIFAR-shaped samples are ingested once into WORK/cifar.mbdb and sharded once (batch 256,
seed 7, one epoch) into WORK/origin/cifar-shards, which nginx serves. PostgreSQL (initdb in a
temporary directory, its own port) and nginx (its own port) are started here and stopped at
the end. Every round runs every configuration once, interleaved; the report gives medians.

Configurations:
  ack-sqlite, ack-pg   one daemon, state in a fresh SQLite file / a fresh PostgreSQL database;
                       one consumer streams an epoch in partition mode (batch 64) and acks
                       every batch synchronously: acks/s; then the time to first batch of
                       GROUPS fresh consumer groups (cursor and pin created on the way)
  share-1x4            PostgreSQL state, four share-mode consumers on one daemon (batch 64)
  share-2x4            the same four consumers on two daemons sharing the database (two of
                       them prefer each daemon): every batch must be acked exactly once;
                       daemon and consumer CPU per batch (this machine has two cores: the
                       figure to compare is CPU per batch, not wall time)
  origin-local         `--spool` a local shard directory (the reference)
  origin-cold          `--spool http://…/cifar-shards/` with an empty `--cache`: every shard
                       fetched from nginx, verified, then served
  origin-warm          a new daemon on the cache the cold run filled: nothing fetched

Environment: N (default 50000), MBDATA (.build/release/mbdata), WORK (Benchmarks/work/cluster),
RESULTS (Benchmarks/results/cluster.md), REPEATS (3), GROUPS (5), RUNS (all of the above),
README_APPEND (1 when RESULTS is the default), TIMEOUT (per run, 300 s).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
_spec = importlib.util.spec_from_file_location("serve_bench", HERE.parent / "serve" / "bench.py")
srv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(srv)  # type: ignore[union-attr]
sb, ib = srv.sb, srv.ib
_spec = importlib.util.spec_from_file_location("inference_bench", HERE.parent / "inference" / "bench.py")
inference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(inference)  # type: ignore[union-attr]

RUNS = ["ack-sqlite", "ack-pg", "share-1x4", "share-2x4", "origin-local", "origin-cold", "origin-warm"]
ACK_BATCH = 64
SHARD_BATCH = 256
SEED = 7
CHILDREN: list[subprocess.Popen] = []


def log(msg: str) -> None:
    print(f"[bench-cluster {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--"] + cmd if os.geteuid() == 0 else cmd


class Postgres:
    """A PostgreSQL server in a temporary directory on a free port, trust authentication."""

    def __init__(self) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            raise RuntimeError("PostgreSQL is not installed (make deps installs it)")
        self.bin = found[-1].parent
        self.dir = Path(tempfile.mkdtemp(prefix="mbdata-bench-pg-"))
        self.data = self.dir / "data"
        self.port = srv.free_port()
        self.user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(as_postgres([str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust",
                                    "-E", "UTF8"]), check=True, stdout=subprocess.DEVNULL)
        subprocess.run(as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-o",
                                    f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1", "start"]),
                       check=True, stdout=subprocess.DEVNULL)
        self.databases = 0

    def new_database(self) -> str:
        self.databases += 1
        name = f"bench{self.databases}"
        subprocess.run(as_postgres([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
                                    name]), check=True)
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"

    def version(self) -> str:
        out = subprocess.run([str(self.bin / "postgres"), "--version"], capture_output=True, text=True)
        return out.stdout.strip()

    def stop(self) -> None:
        subprocess.run(as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


class Nginx:
    """nginx serving `root` on a free port; its access log records the bytes it sent."""

    def __init__(self, root: Path, work: Path) -> None:
        self.dir = work / "nginx"
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir / "tmp").mkdir(parents=True)
        self.port = srv.free_port()
        self.access = self.dir / "access.log"
        user = "user root;\n" if os.geteuid() == 0 else ""
        (self.dir / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {self.dir}/nginx.pid;\nerror_log {self.dir}/error.log;\n"
            f"events {{ worker_connections 256; }}\nhttp {{\n"
            f"  log_format bytes '$status $body_bytes_sent $request';\n"
            f"  access_log {self.access} bytes;\n"
            f"  client_body_temp_path {self.dir}/tmp; proxy_temp_path {self.dir}/tmp; fastcgi_temp_path {self.dir}/tmp;\n"
            f"  uwsgi_temp_path {self.dir}/tmp; scgi_temp_path {self.dir}/tmp;\n"
            f"  types {{ application/json json; }} default_type application/octet-stream;\n"
            f"  server {{ listen 127.0.0.1:{self.port}; root {root}; }}\n}}\n")
        self.proc = subprocess.Popen(["nginx", "-c", str(self.dir / "nginx.conf"), "-p", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        CHILDREN.append(self.proc)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1)
                return
            except urllib.error.HTTPError:
                return  # 403/404 for the directory: it answers
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start: " + (self.dir / "error.log").read_text(errors="replace")[-2000:])

    def bytes_sent(self) -> int:
        try:
            return sum(int(line.split()[1]) for line in self.access.read_text().splitlines() if line.strip())
        except OSError:
            return 0

    def version(self) -> str:
        out = subprocess.run(["nginx", "-v"], capture_output=True, text=True)
        return (out.stderr or out.stdout).strip().removeprefix("nginx version: ")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Daemon:
    """One `mbdata serve` process on a free port."""

    def __init__(self, mbdata: Path, db: Path, state: str, work: Path, tag: str, extra: list[str]) -> None:
        self.port = srv.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / "logs" / f"serve-{tag}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.cmd = [str(mbdata), "serve", str(db), "--port", str(self.port), "--state", state] + extra

    def start(self, timeout: float = 60.0) -> None:
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        CHILDREN.append(self.proc)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mbdata serve exited with {self.proc.returncode}: {sb.short_cmd(self.cmd)}\n"
                                   + sb.last_lines(self.log_path.read_text(errors="replace"), 12))
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        self.cpu0 = srv.proc_cpu_s(self.proc.pid) or 0.0
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mbdata serve not ready after {timeout:.0f} s: {sb.short_cmd(self.cmd)}")

    def cpu_s(self) -> float:
        return (srv.proc_cpu_s(self.proc.pid) or 0.0) - self.cpu0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


def consumers(python: str, specs: list[list[str]], timeout: float) -> list[dict]:
    """Runs the consumers at once; returns their RESULTs in order."""
    procs = [subprocess.Popen([python, str(HERE / "consumer.py")] + spec, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for spec in specs]
    CHILDREN.extend(procs)
    out = []
    for p, spec in zip(procs, specs):
        stdout, stderr = p.communicate(timeout=timeout)
        lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
        if p.returncode != 0 or not lines:
            raise RuntimeError(f"consumer {' '.join(spec)} failed ({p.returncode}):\n{sb.last_lines(stderr, 15)}")
        out.append(json.loads(lines[-1][7:]))
    return out


def prepare(work: Path, n: int, mbdata: Path, timeout: float) -> tuple[Path, Path]:
    """The dataset as the inference benchmark makes it (generated, ingested once, checked), and its shard set."""
    db = inference.prepare(work, n, mbdata, timeout)["db"]
    stamp = {"n": n, "mbdata_sha256": sb.file_sha(mbdata)}  # what the ingested dataset depends on
    shards = work / "origin" / "cifar-shards"
    stamp_file = work / "origin" / ".stamp"
    want = json.dumps(stamp, sort_keys=True)
    if not (shards / "manifest.json").exists() or not stamp_file.exists() or stamp_file.read_text() != want:
        shutil.rmtree(shards, ignore_errors=True)
        shards.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(mbdata), "shard", str(db), "--out", str(shards), "--batch-size", str(SHARD_BATCH), "--epochs", "1",
                        "--seed", str(SEED)], check=True, stdout=subprocess.DEVNULL)
        stamp_file.write_text(want)
    return db, shards


def measure(cfg: str, rnd: int, ctx: dict) -> dict:
    work, mbdata, db, python, timeout = ctx["work"], ctx["mbdata"], ctx["db"], ctx["python"], ctx["timeout"]
    tag = f"{cfg}-r{rnd}"
    daemons: list[Daemon] = []

    def daemon(state: str, extra: list[str] = [], suffix: str = "") -> Daemon:
        d = Daemon(mbdata, db, state, work, tag + suffix, extra)
        d.start()
        daemons.append(d)
        return d

    try:
        if cfg in ("ack-sqlite", "ack-pg"):
            if cfg == "ack-sqlite":
                state_file = work / "state" / f"{tag}.sqlite"
                state_file.parent.mkdir(parents=True, exist_ok=True)
                for p in state_file.parent.glob(state_file.name + "*"):
                    p.unlink()
                state = str(state_file)
            else:
                state = ctx["pg"].new_database()
            d = daemon(state)
            base = ["--urls", d.url, "--batch-size", str(ACK_BATCH)]
            run = consumers(python, [["stream", *base, "--group", "acks"]], timeout)[0]
            first = consumers(python, [["first", *base, "--group", "fresh", "--groups", str(ctx["groups"])]], timeout)[0]
            return {"acks": run["batches"], "acks_per_s": run["batches"] / run["wall_s"], "wall_s": run["wall_s"],
                    "first_ms": statistics.median(first["first_s"]) * 1000, "daemon_cpu_s": d.cpu_s(),
                    "consumer_cpu_s": run["cpu_s"]}
        if cfg in ("share-1x4", "share-2x4"):
            state = ctx["pg"].new_database()
            a = daemon(state, suffix="-a")
            urls = [a.url] * 4
            if cfg == "share-2x4":
                b = daemon(state, suffix="-b")
                urls = [f"{a.url},{b.url}", f"{b.url},{a.url}", f"{a.url},{b.url}", f"{b.url},{a.url}"]
            t0 = time.perf_counter()
            runs = consumers(python, [["share", "--urls", u, "--batch-size", str(ACK_BATCH), "--group", "share"] for u in urls],
                             timeout)
            wall = time.perf_counter() - t0
            acked = sorted(i for r in runs for i in r["acked"])
            expected = list(range(ctx["batches_per_epoch"]))
            daemon_cpu = sum(d.cpu_s() for d in daemons)
            return {"acks": len(acked), "exactly_once": acked == expected, "wall_s": wall, "acks_per_s": len(acked) / wall,
                    "daemon_cpu_ms_per_batch": daemon_cpu / max(1, len(acked)) * 1000,
                    "consumer_cpu_ms_per_batch": sum(r["cpu_s"] for r in runs) / max(1, len(acked)) * 1000,
                    "per_process": [len(r["acked"]) for r in runs]}
        if cfg.startswith("origin-"):
            state_file = work / "state" / f"{tag}.sqlite"
            state_file.parent.mkdir(parents=True, exist_ok=True)
            for p in state_file.parent.glob(state_file.name + "*"):
                p.unlink()
            cache = work / "cache" / f"r{rnd}"
            if cfg == "origin-cold":
                shutil.rmtree(cache, ignore_errors=True)
            if cfg == "origin-local":
                extra = ["--spool", str(ctx["shards"])]
            else:
                extra = ["--spool", f"http://127.0.0.1:{ctx['nginx'].port}/cifar-shards/", "--cache", str(cache)]
            fetched0 = ctx["nginx"].bytes_sent()
            t0 = time.perf_counter()
            d = daemon(str(state_file), extra)
            start_s = time.perf_counter() - t0
            run = consumers(python, [["stream", "--urls", d.url, "--batch-size", str(SHARD_BATCH), "--group", "origin"]],
                            timeout)[0]
            return {"start_s": start_s, "first_ms": run["first_s"] * 1000, "wall_s": run["wall_s"],
                    "samples_per_s": run["samples"] / run["wall_s"], "batches": run["batches"],
                    "fetched_mb": (ctx["nginx"].bytes_sent() - fetched0) / 1e6, "daemon_cpu_s": d.cpu_s()}
        raise ValueError(cfg)
    finally:
        for d in daemons:
            d.stop()


def median_of(reps: list[dict], key: str) -> float | None:
    values = [r[key] for r in reps if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]
    return statistics.median(values) if values else None


def fmt(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def render(info: dict, reps: dict[str, list[dict]], errors: list[str], n: int, repeats: int) -> str:
    lines = ["# mbdata cluster benchmark (issue 13)", "",
             f"N = {n:,} CIFAR-shaped samples; medians of {repeats} interleaved rounds; one machine (2 cores): daemons, "
             "PostgreSQL, nginx and consumers share its CPUs, so compare CPU per batch, not wall time.", "",
             "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in info.items()]
    ack = [c for c in ("ack-sqlite", "ack-pg") if reps.get(c)]
    if ack:
        lines += ["", "## State store: synchronous acks and time to first batch", "",
                  "One daemon, one consumer, partition mode, batch 64, `batch.ack()` after every batch (each answered "
                  "after its commit); first batch: median over fresh consumer groups (cursor and pin created first).", "",
                  "| state | acks | acks/s | first batch ms | daemon CPU s | consumer CPU s | runs |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for c in ack:
            r = reps[c]
            lines.append(f"| {'SQLite file' if c == 'ack-sqlite' else 'PostgreSQL'} | {fmt(median_of(r, 'acks'), 0)} | "
                         f"{fmt(median_of(r, 'acks_per_s'), 0)} | {fmt(median_of(r, 'first_ms'), 1)} | "
                         f"{fmt(median_of(r, 'daemon_cpu_s'), 2)} | {fmt(median_of(r, 'consumer_cpu_s'), 2)} | {len(r)} |")
    share = [c for c in ("share-1x4", "share-2x4") if reps.get(c)]
    if share:
        lines += ["", "## Four share-mode consumers: one daemon against two (PostgreSQL state)", "",
                  "| daemons | batches acked | exactly once (every round) | acks/s | daemon CPU ms/batch | consumer CPU ms/batch | "
                  "batches per process (last round) |", "|---|---:|---|---:|---:|---:|---|"]
        for c in share:
            r = reps[c]
            ok = all(x.get("exactly_once") for x in r)
            lines.append(f"| {1 if c == 'share-1x4' else 2} | {fmt(median_of(r, 'acks'), 0)} | {'yes' if ok else '**NO**'} | "
                         f"{fmt(median_of(r, 'acks_per_s'), 0)} | {fmt(median_of(r, 'daemon_cpu_ms_per_batch'), 2)} | "
                         f"{fmt(median_of(r, 'consumer_cpu_ms_per_batch'), 2)} | {r[-1].get('per_process')} |")
    origin = [c for c in ("origin-local", "origin-cold", "origin-warm") if reps.get(c)]
    if origin:
        names = {"origin-local": "local spool directory", "origin-cold": "HTTP origin (nginx), cold cache",
                 "origin-warm": "HTTP origin, warm cache (new daemon)"}
        lines += ["", "## Shard sets from an HTTP origin", "",
                  "One daemon, one consumer streaming the sharded epoch (batch 256), acking every batch.", "",
                  "| spool | daemon start s | first batch ms | epoch s | samples/s | MB fetched from origin | runs |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for c in origin:
            r = reps[c]
            lines.append(f"| {names[c]} | {fmt(median_of(r, 'start_s'), 2)} | {fmt(median_of(r, 'first_ms'), 1)} | "
                         f"{fmt(median_of(r, 'wall_s'), 2)} | {fmt(median_of(r, 'samples_per_s'), 0)} | "
                         f"{fmt(median_of(r, 'fetched_mb'), 1)} | {len(r)} |")
    if errors:
        lines += ["", "## Failures", ""] + [f"- {e}" for e in errors]
    return "\n".join(lines) + "\n"


def main() -> int:
    n = srv.env_int("N", 50_000)
    repeats = srv.env_int("REPEATS", 3)
    mbdata = Path(os.environ.get("MBDATA", ROOT / ".build/release/mbdata")).resolve()
    work = Path(os.environ.get("WORK", ROOT / "Benchmarks/work/cluster")).resolve()
    default_results = ROOT / "Benchmarks/results/cluster.md"
    results = Path(os.environ.get("RESULTS", default_results)).resolve()
    runs = [r for r in os.environ.get("RUNS", ",".join(RUNS)).split(",") if r]
    timeout = float(os.environ.get("TIMEOUT", "300"))
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    db, shards = prepare(work, n, mbdata, timeout)
    pg = Postgres() if any(r in runs for r in ("ack-pg", "share-1x4", "share-2x4")) else None
    nginx = Nginx(work / "origin", work) if any(r.startswith("origin-") for r in runs) else None
    ctx = {"work": work, "mbdata": mbdata, "db": db, "shards": shards, "python": sys.executable, "timeout": timeout,
           "pg": pg, "nginx": nginx, "groups": srv.env_int("GROUPS", 5), "batches_per_epoch": n // ACK_BATCH}
    reps: dict[str, list[dict]] = {}
    errors: list[str] = []
    try:
        for rnd in range(repeats):
            for cfg in runs:
                log(f"round {rnd + 1}/{repeats}: {cfg}")
                try:
                    reps.setdefault(cfg, []).append(measure(cfg, rnd, ctx))
                    log(f"  {json.dumps(reps[cfg][-1])}")
                except Exception as e:  # noqa: BLE001 — reported in the results
                    errors.append(f"{cfg} round {rnd + 1}: {e}")
                    log(f"  FAILED: {e}")
    finally:
        if nginx:
            nginx.stop()
        if pg:
            pg.stop()
        for p in CHILDREN:
            if p.poll() is None:
                p.kill()
    info = ib.machine_info(work, mbdata)
    info["git commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                        text=True).stdout.strip()
    info["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t_start))
    info["total run time"] = f"{time.time() - t_start:.0f} s"
    if pg:
        info["postgresql"] = pg.version()
    if nginx:
        info["nginx"] = nginx.version()
    md = render(info, reps, errors, n, repeats)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(md)
    results.with_suffix(".json").write_text(json.dumps({"info": info, "runs": reps, "errors": errors}, indent=1))
    log(f"wrote {results}")
    if os.environ.get("README_APPEND", "1" if results == default_results else "0") == "1":
        readme = ROOT / "Benchmarks/README.md"
        text = readme.read_text()
        marker = "## Cluster: PostgreSQL state, several daemons, HTTP origin"
        body = md.split("\n", 2)[2]
        section = f"{marker}\n\n(`make bench-cluster`, full report: [results/cluster.md](results/cluster.md))\n\n{body}"
        if marker in text:
            head, _, rest = text.partition(marker)
            tail = rest.split("\n## ", 1)
            text = head + section + ("\n## " + tail[1] if len(tail) > 1 else "")
        else:
            text = text.rstrip("\n") + "\n\n" + section
        readme.write_text(text)
    print(md)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
