#!/usr/bin/env python3
"""mbdata packing benchmark (issue 14 §6): efficiency and throughput of sequence packing
against Grain's first-fit packing and the greedy bounds, on log-normal lengths.

Steps (STEPS selects, in this order):
  data     generate.py: N sequences, log-normal lengths (median MEDIAN, sigma SIGMA), then
           `mbdata ingest` into WORK/tokens.mbdb (both skipped when current)
  bounds   packers.py on the same lengths: unwindowed first-fit, first-fit-decreasing (the
           greedy bound), and mbdata's windowed first-fit re-implemented (a cross-check)
  shard    `mbdata shard --pack tokens=L --pack-window W` for each W in WINDOWS, ROUNDS
           times (efficiency, split/dropped, wall time, tokens/s); then once with
           `--overlong drop` and once shuffled (--seed SEED) at the largest W
  loader   mbdata-packing-bench: MultiBatchLoader from the largest W's shards, and live from
           the dataset (MultiBatchLoader(dataset:packing:)), ROUNDS rounds each
  memory   mbdata-packing-bench: SequencePacker + PackedTensors on the tokens held in memory
  grain    grain_bench.py in its own virtualenv: FirstFitPackIterDataset with as many bins
           as mbdata's windows hold rows on average, ROUNDS rounds each
  mixture  the mixture-overhead case (mixture of 3 datasets against one, target ≤ 5%
           slower): the live loader over one dataset and over the dataset cut in three
           parts (web 0.6, code 0.25, books 0.15, each drawn whole), in fresh processes
           alternating MIXTURE_PAIRS times (order swapped every time), unpacked at each
           batch size of MIXTURE_BATCHES and packed (rows of L tokens, BATCH rows);
           MIXTURE_COPIES=1 adds three copies of the dataset each drawn in part

Every mbdata run reads the rows in ingest order (`--no-shuffle`), the order Grain and the
Python packers get, so the efficiencies compare the same sequence of lengths. Writes
RESULTS (markdown) and the raw numbers as JSON beside it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import packers  # noqa: E402

_spec = importlib.util.spec_from_file_location("shard_bench", ROOT / "Benchmarks" / "shard" / "bench.py")
sb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sb)  # type: ignore[union-attr]
ib = sb.ib
rel, fmt = ib.rel, ib.fmt

ALL_STEPS = ["data", "bounds", "shard", "loader", "memory", "grain", "mixture"]
MIXTURE_TARGET = 0.05  # a mixture of 3 datasets at most 5% slower than one dataset


def log(msg: str) -> None:
    print(f"[bench-packing {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def env_list(name: str, default: str) -> list[str]:
    return [x.strip() for x in os.environ.get(name, default).split(",") if x.strip()]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


class Context:
    """Settings from the environment and the paths every step shares."""

    def __init__(self) -> None:
        self.n = sb.env_int("N", 200_000)
        self.row_length = sb.env_int("L", 2048)
        self.windows = sorted(int(w) for w in env_list("WINDOWS", "64,256,1024"))
        self.batch = sb.env_int("BATCH", 64)
        self.seed = sb.env_int("SEED", 7)
        self.rounds = sb.env_int("ROUNDS", 3)
        self.median = float(os.environ.get("MEDIAN", "400"))
        self.sigma = float(os.environ.get("SIGMA", "1.0"))
        self.timeout = float(os.environ.get("TIMEOUT", "0")) or None
        self.keep = os.environ.get("KEEP") == "1"
        self.beside = os.environ.get("BESIDE") == "1"
        self.work = ib.env_path("WORK", ROOT / "Benchmarks" / "work" / "packing")
        self.results = ib.env_path("RESULTS", ROOT / "Benchmarks" / "results" / "packing.md")
        self.mbdata = ib.env_path("MBDATA", ROOT / ".build" / "release" / "mbdata")
        self.driver = ib.env_path("DRIVER", ROOT / ".build" / "release" / "mbdata-packing-bench")
        self.grain_python = ib.env_path("GRAIN_PYTHON", self.work / "venv-grain" / "bin" / "python")
        self.data = self.work / "data"
        self.db = self.work / "tokens.mbdb"
        self.steps = env_list("STEPS", ",".join(ALL_STEPS))
        # Without the mbdata binary, the driver's ingest and shard modes call the same library code.
        self.use_cli = self.mbdata.exists()
        self.shard_tool = self.mbdata if self.use_cli else self.driver

    def grain_rounds(self, count: int) -> list[int]:
        """Rounds for each Grain bins value: GRAIN_ROUNDS, or ROUNDS for the last (the largest
        window's match) and one for the others — a pass of Grain takes minutes here."""
        given = [int(r) for r in env_list("GRAIN_ROUNDS", "")]
        return given if len(given) == count else [1] * (count - 1) + [self.rounds]

    def settings(self) -> dict:
        return {"N": self.n, "L": self.row_length, "windows": self.windows, "batch rows": self.batch,
                "seed": self.seed, "rounds": self.rounds, "lengths": f"log-normal, median {self.median:g}, sigma {self.sigma:g}, clipped >= 1",
                "order": "ingest order (--no-shuffle) unless marked shuffled", "overlong": "split unless marked drop"}

    def shard_dir(self, window: int, tag: str = "") -> Path:
        return self.work / f"shards-w{window}{tag}"


# ------------------------------------------------------------------ steps

def step_data(ctx: Context) -> dict:
    cmd = [sys.executable, str(HERE / "generate.py"), "--n", str(ctx.n), "--work", str(ctx.data),
           "--median", str(ctx.median), "--sigma", str(ctx.sigma)]
    log("data: " + sb.short_cmd(cmd[1:]))
    subprocess.run(cmd, check=True)
    manifest = json.loads((ctx.data / "manifest.json").read_text())
    schema, jsonl = str(ctx.data / "tokens.schema.json"), str(ctx.data / "tokens.jsonl")
    ingest = sb.ensure_db("tokens", ctx.db, ["--schema", schema, jsonl] if ctx.use_cli else [schema, jsonl],
                          {"data": manifest, "binary": sb.file_sha(ctx.shard_tool)}, ctx.shard_tool, False, ctx.timeout)
    return {"manifest": manifest, "ingest": ingest}


def step_bounds(ctx: Context, lengths: np.ndarray) -> dict:
    out: dict = {}
    for name, run in (("first_fit", lambda: packers.first_fit(lengths, ctx.row_length)),
                      ("first_fit_decreasing", lambda: packers.first_fit_decreasing(lengths, ctx.row_length))):
        started = time.perf_counter()
        out[name] = {**run().as_dict(), "python_seconds": round(time.perf_counter() - started, 2)}
        log(f"bounds: {name} {out[name]['efficiency']:.4%}")
    out["windowed"] = {}
    for window in ctx.windows:
        packed = packers.windowed_first_fit(lengths, ctx.row_length, window)
        windows = -(-len(lengths) // window)
        out["windowed"][str(window)] = {**packed.as_dict(), "rows_per_window": packed.rows / windows}
        log(f"bounds: windowed first-fit W={window} {packed.efficiency:.4%}")
    return out


def packed_shard(ctx: Context, window: int, tag: str, shuffle: bool = False, overlong: str = "split") -> dict:
    """One `mbdata shard --pack` run into a fresh folder under GNU time, with the manifest's
    packing member; through the driver's `shard` mode when the mbdata binary is not built."""
    out = ctx.shard_dir(window, tag)
    shutil.rmtree(out, ignore_errors=True)
    if ctx.use_cli:
        cmd = [str(ctx.mbdata), "shard", str(ctx.db), "--out", str(out), "--batch-size", str(ctx.batch), "--pack",
               f"tokens={ctx.row_length}", "--pack-window", str(window), "--overlong", overlong]
        cmd += ["--seed", str(ctx.seed)] if shuffle else ["--no-shuffle"]
    else:
        cmd = [str(ctx.driver), "shard", str(ctx.db), str(out), str(ctx.row_length), str(window), str(ctx.batch), str(ctx.seed),
               "1" if shuffle else "0", overlong]
    ib.prewarm([p for p in ctx.db.parent.glob(ctx.db.name + "*") if p.is_file()])
    subprocess.run(["sync"], check=False)
    busy = round(sb.others_busy(), 2)  # other work on the machine skews the figures
    _, res = run_json(ctx, f"shard w{window}{tag}", cmd)
    res.update({"ok": res["exit"] == 0, "others_cores_busy": busy})
    if res["ok"]:
        manifest = json.loads((out / "manifest.json").read_text())
        res["packing"] = manifest["packing"]
        res["compressed_bytes"] = manifest["totals"].get("compressed_bytes")
    return res


def step_shard(ctx: Context) -> dict:
    out: dict = {"windows": {}, "variants": {}}
    for window in ctx.windows:
        count = ctx.rounds if window == ctx.windows[-1] else sb.env_int("SHARD_ROUNDS", ctx.rounds)
        rounds = [packed_shard(ctx, window, "") for _ in range(count)]
        out["windows"][str(window)] = rounds
        good = [r for r in rounds if r["ok"]]
        if good:
            log(f"shard W={window}: efficiency {good[0]['packing']['efficiency']:.4%}, "
                f"median {median([r['wall_s'] for r in good]):.2f} s")
    largest = ctx.windows[-1]
    for tag, shuffle, overlong in (("-drop", False, "drop"), ("-shuffled", True, "split")):
        out["variants"][tag.lstrip("-")] = packed_shard(ctx, largest, tag, shuffle, overlong)
        if not ctx.keep:
            shutil.rmtree(ctx.shard_dir(largest, tag), ignore_errors=True)
    if not ctx.keep:
        for window in ctx.windows[:-1]:
            shutil.rmtree(ctx.shard_dir(window), ignore_errors=True)
    return out


def run_json(ctx: Context, label: str, cmd: list[str], ok_exits: tuple = (0,)) -> tuple[list[dict], dict]:
    """Runs `cmd` under GNU time; the JSON objects it printed, one a line, and the run's exit,
    wall time, peak RSS and (on failure) stderr."""
    log(f"{label}: " + sb.short_cmd(cmd))
    with tempfile.NamedTemporaryFile("r", dir=ctx.work, prefix=".time-", suffix=".txt") as times:
        rc, stdout, stderr, wall = sb.run_timed(["/usr/bin/time", "-v", "-o", times.name] + cmd, ctx.timeout)
        usage = ib.parse_time_v(Path(times.name).read_text())
    objects = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    run = {"command": sb.short_cmd(cmd), "exit": rc, "wall_s": wall, **usage}
    if rc not in ok_exits:
        run["stderr_tail"] = sb.last_lines(stderr, 15)
        log(f"{label} FAILED (exit {rc})\n{run['stderr_tail']}")
    return objects, run


def driver(ctx: Context, args: list[str]) -> tuple[list[dict], dict]:
    """Runs mbdata-packing-bench (exit 3: a case it cannot measure yet)."""
    return run_json(ctx, "driver", [str(ctx.driver)] + args, ok_exits=(0, 3))


def step_loader(ctx: Context) -> dict:
    largest = ctx.windows[-1]
    shards = ctx.shard_dir(largest)
    out: dict = {"window": largest}
    if (shards / "manifest.json").exists():
        ib.prewarm(sorted(shards.iterdir()))
        out["shards"], out["shards_run"] = driver(ctx, ["shards", str(shards), str(ctx.rounds)])
    else:
        out["shards_run"] = {"exit": "skipped", "reason": f"no shard set at {rel(shards)} (run the shard step first)"}
    ib.prewarm([p for p in ctx.db.parent.glob(ctx.db.name + "*") if p.is_file()])
    out["live"], out["live_run"] = driver(
        ctx, ["live", str(ctx.db), str(ctx.row_length), str(largest), str(ctx.batch), str(ctx.seed), "0", str(ctx.rounds)])
    return out


def step_memory(ctx: Context) -> dict:
    rounds, run = driver(ctx, ["memory", str(ctx.data), str(ctx.row_length), str(ctx.windows[-1]), str(ctx.batch), str(ctx.rounds)])
    return {"window": ctx.windows[-1], "rounds": rounds, "run": run}


def grain_bins(ctx: Context, bounds: dict) -> list[int]:
    """Bins matching each window's rows on average (Grain holds that many rows open), unless
    GRAIN_BINS names them."""
    if os.environ.get("GRAIN_BINS"):
        return [int(b) for b in env_list("GRAIN_BINS", "")]
    return [max(1, round(bounds["windowed"][str(w)]["rows_per_window"])) for w in ctx.windows]


def step_grain(ctx: Context, bins: list[int]) -> dict:
    if not ctx.grain_python.exists() or subprocess.run([str(ctx.grain_python), "-c", "import grain"], capture_output=True).returncode != 0:
        return {"installed": False, "reason": f"Grain does not import in {rel(ctx.grain_python)} (run.sh installs it from PyPI)"}
    cmd = [str(ctx.grain_python), str(HERE / "grain_bench.py"), "--data", str(ctx.data), "--row-length", str(ctx.row_length),
           "--bins", ",".join(map(str, bins)), "--batch", str(ctx.batch), "--rounds", ",".join(map(str, ctx.grain_rounds(len(bins))))]
    objects, run = run_json(ctx, "grain", cmd)
    return {"installed": True, **run, **(objects[-1] if run["exit"] == 0 and objects else {})}


def step_mixture(ctx: Context) -> dict:
    """The mixture-overhead case (the driver's `runMixtureOverhead`): one dataset against the
    mixture of its three parts, each drawn whole (the same rows, so what differs is the
    mixture's own work), unpacked at each batch size of MIXTURE_BATCHES and packed into rows of
    L tokens, BATCH rows a batch. On this shared VM a 5% target is inside the spread between
    sittings, so the cases alternate in fresh processes (2 rounds each), MIXTURE_PAIRS times,
    the order swapped each time, and the report gives the median of each pair's ratio."""
    pairs = sb.env_int("MIXTURE_PAIRS", max(ctx.rounds, 8))
    batches = [int(b) for b in env_list("MIXTURE_BATCHES", f"{ctx.batch},256,512")]
    cases = ["one", "parts"] + (["mixture"] if os.environ.get("MIXTURE_COPIES") == "1" else [])
    settings = [(b, 0) for b in batches] + [(ctx.batch, ctx.row_length)]
    rounds: list[dict] = []
    runs: list[dict] = []
    for pair in range(pairs):
        for batch, packed in settings:
            for case in (cases if pair % 2 == 0 else cases[::-1]):
                env = ["env", f"MIXTURE_CASES={case}"] + ([f"MIXTURE_PACK={packed}"] if packed else [])
                objects, run = run_json(ctx, "driver", env + [str(ctx.driver), "mixture", str(ctx.db), str(batch), str(ctx.seed), "2",
                                                            str(ctx.data / "tokens.schema.json"), str(ctx.data / "tokens.jsonl")])
                runs.append(run)
                rounds += [{**r, "pair": pair, "batch": batch} for r in objects]
    measured = all(r["exit"] == 0 for r in runs) and any(r.get("measured") for r in rounds)
    failed = next((r for r in runs if r["exit"] != 0), None)
    return {"measured": measured, "rounds": rounds, "pairs": pairs, "settings": settings, "target": MIXTURE_TARGET,
            **({} if measured else {"reason": f"driver exit {failed['exit'] if failed else '?'}"})}


# ------------------------------------------------------------------ report

def pct(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v * 100:.{digits}f}%"


def rate(tokens: float | None, seconds: float | None) -> str:
    return "–" if not tokens or not seconds else f"{tokens / seconds / 1e6:,.2f}"


def process_cpu_per_round(run: dict, rounds: int) -> float | None:
    """User + system seconds of a process that ran `rounds` rounds, over `rounds` (start-up included)."""
    return (run["user_s"] + run["sys_s"]) / rounds if rounds and "user_s" in run and "sys_s" in run else None


def approx(cpu: float | None) -> str:
    return "–" if cpu is None else f"≈ {cpu:.1f}"


def render_mixture(mixture: dict) -> str:
    """The mixture table: per setting and case the medians, and the median of the pairs'
    ratios (each pair: the two cases' median rounds in fresh processes side by side)."""
    labels = {"parts": "three parts, each drawn whole", "mixture": "three copies, each drawn in part"}
    rows = mixture["rounds"]
    lines = [f"The live loader, shuffled (seed 7), first epoch; {mixture['pairs']} pairs of fresh processes (2 rounds each, the "
             "order swapped every pair); CPU s = the process's user + system seconds over a round; ÷ one = the median of the "
             "pairs' ratios, quartiles in brackets.\n",
             "| batch | case | rows | CPU s (median) | seconds (median) | ÷ one (CPU) | ÷ one (wall) | verdict |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for batch, packed in mixture["settings"]:
        here = [r for r in rows if r["batch"] == batch and r.get("packed", 0) == packed]
        label = f"{batch} rows of {packed} tokens" if packed else f"{batch} samples"

        def at(case: str, key: str, pair: int | None = None) -> float | None:
            return median([r[key] for r in here if r["case"] == case and (pair is None or r["pair"] == pair)])

        for case in ("one", "parts", "mixture"):
            if not any(r["case"] == case for r in here):
                continue
            samples = max(r["rows"] for r in here if r["case"] == case)
            if case == "one":
                lines.append(f"| {label} | one dataset | {samples:,} | {at(case, 'cpu_seconds'):.2f} | {at(case, 'seconds'):.2f} | | | |")
                continue
            ratios = {}
            for key in ("cpu_seconds", "seconds"):
                paired = [at(case, key, p) / at("one", key, p) for p in range(mixture["pairs"])
                          if at(case, key, p) and at("one", key, p)]
                q = statistics.quantiles(paired, n=4) if len(paired) > 1 else [paired[0]] * 3
                ratios[key] = (statistics.median(paired), q[0], q[2])
            cpu, wall = ratios["cpu_seconds"], ratios["seconds"]
            verdict = "met" if cpu[0] - 1 <= mixture["target"] else "MISSED"
            lines.append(f"| {label} | {labels[case]} | {samples:,} | {at(case, 'cpu_seconds'):.2f} | {at(case, 'seconds'):.2f} | "
                         f"{cpu[0] - 1:+.0%} ({cpu[1] - 1:+.0%}…{cpu[2] - 1:+.0%}) | {wall[0] - 1:+.0%} | {verdict} |")
    return "\n".join(lines)


def render(ctx: Context, info: dict, doc: dict) -> str:
    out = ["# Packing benchmark: mbdata against Grain's first-fit and the greedy bounds\n"]
    data = doc.get("data", {}).get("manifest", {})
    if data:
        out.append(f"{data['n']:,} sequences, {data['tokens']:,} tokens: lengths log-normal with median {data['median']:g} and "
                   f"sigma {data['sigma']:g} (measured median {data['median_length']:.0f}, mean {data['mean_length']:.1f}, "
                   f"max {data['max_length']:,}), clipped at 1; rows of L = {ctx.row_length} tokens, batches of {ctx.batch} rows. "
                   f"Throughput figures are medians of {ctx.rounds} rounds; tokens are non-padding tokens; M = 10^6.\n")
    out.append("This machine has 2 cores shared with other work (see 'others busy'), so compare figures of the same run.\n")
    if ctx.beside:
        out.append("In this run the bounds and Grain (one Python process) ran beside the mbdata steps (`BESIDE=1`) to fit the "
                   "time the shared machine allowed: each side had the other as load, so throughputs are lower than alone.\n")
    out.append("| | |\n|---|---|")
    out += [f"| {k} | {v} |" for k, v in info.items()]
    out.append("")

    bounds, shard, grain = doc.get("bounds", {}), doc.get("shard", {}), doc.get("grain", {})
    out.append("## Efficiency (non-padding tokens / all tokens of the rows)\n")
    out.append("| packer | what it sees at once | rows | efficiency | split | dropped (tokens) |\n|---|---|---:|---:|---:|---:|")
    for window in ctx.windows:
        good = [r for r in shard.get("windows", {}).get(str(window), []) if r.get("ok")]
        if good:
            s = good[0]["packing"]["statistics"]
            per_window = bounds.get("windowed", {}).get(str(window), {}).get("rows_per_window")
            seen = f"{window} samples" + (f" (≈ {per_window:.0f} rows)" if per_window else "")
            out.append(f"| mbdata `shard --pack-window {window}` | {seen} | {s['rows']:,} | **{pct(good[0]['packing']['efficiency'])}** | "
                       f"{s['split_samples']:,} | {s['dropped_samples']:,} ({s['dropped_tokens']:,}) |")
    for tag, label in (("drop", "`--overlong drop`"), ("shuffled", f"shuffled (`--seed {ctx.seed}`)")):
        r = shard.get("variants", {}).get(tag)
        if r and r.get("ok"):
            s = r["packing"]["statistics"]
            out.append(f"| mbdata `shard --pack-window {ctx.windows[-1]}`, {label} | {ctx.windows[-1]} samples | {s['rows']:,} | "
                       f"{pct(r['packing']['efficiency'])} | {s['split_samples']:,} | {s['dropped_samples']:,} ({s['dropped_tokens']:,}) |")
    for g in grain.get("results", []):
        out.append(f"| Grain {grain['grain_version']} `FirstFitPackIterDataset(num_packing_bins={g['num_packing_bins']})` | "
                   f"{g['num_packing_bins']} rows | {g['rows']:,} | **{pct(g['efficiency'])}** | (input pre-split) | – |")
    for key, label in (("first_fit", "first-fit, unwindowed (bound for any window)"),
                       ("first_fit_decreasing", "first-fit-decreasing (greedy bound, sorted epoch)")):
        b = bounds.get(key)
        if b:
            out.append(f"| {label} | the whole epoch | {b['rows']:,} | {pct(b['efficiency'])} | {b['split_samples']:,} | – |")
    if grain and not grain.get("installed", True):
        out.append(f"\nGrain was not measured: {grain['reason']}; the bounds stand in for it.")
    checks = []
    for window in ctx.windows:
        good = [r for r in shard.get("windows", {}).get(str(window), []) if r.get("ok")]
        ref = bounds.get("windowed", {}).get(str(window))
        if good and ref:
            rows = good[0]["packing"]["statistics"]["rows"]
            same = "the same" if rows == ref["rows"] else f"NOT the same ({ref['rows']:,})"
            checks.append(f"W={window}: {rows:,} rows, {same}")
    if checks:
        out.append("\nCross-check: packers.py's re-implementation of mbdata's windowed first-fit on the same lengths gives "
                   + "; ".join(checks) + ".")
    out.append("")

    out.append("## Throughput\n")
    out.append("| run | rows/s | M tokens/s | seconds | CPU s | M tokens per CPU s | peak RSS MiB | notes |\n"
               "|---|---:|---:|---:|---:|---:|---:|---|")
    for window in ctx.windows:
        good = [r for r in shard.get("windows", {}).get(str(window), []) if r.get("ok")]
        if good:
            wall = median([r["wall_s"] for r in good])
            s = good[0]["packing"]["statistics"]
            busy = ", ".join(f"{r['others_cores_busy']:.1f}" for r in good) + " cores" + ("" if len(good) > 1 else "; one round")
            cpu = median([r["user_s"] + r["sys_s"] for r in good if "user_s" in r and "sys_s" in r])
            tool = "mbdata shard" if ctx.use_cli else "mbdata-packing-bench shard (the library calls of mbdata shard)"
            out.append(f"| `{tool} --pack tokens={ctx.row_length} --pack-window {window}` | {s['rows'] / wall:,.0f} | "
                       f"{rate(s['tokens'], wall)} | {wall:.2f} | {fmt(cpu, '.1f')} | {rate(s['tokens'], cpu)} | "
                       f"{fmt(median([r.get('rss_mib') for r in good if r.get('rss_mib')]), '.0f')} | "
                       f"whole process: SQLite reads, packing, collation, LZ4, fsync; others busy {busy} |")
    loader = doc.get("loader", {})
    for key, label, note in (("shards", f"loader from the W={loader.get('window')} shards", "decode + trainer counting segment ids"),
                             ("live", f"loader live, W={loader.get('window')}", "SQLite reads + packing + collation; open packs the epoch's lengths")):
        rounds = loader.get(key) or []
        if rounds:
            wall = median([r["seconds"] for r in rounds])
            opened = median([r["open_seconds"] for r in rounds])
            cpu = process_cpu_per_round(loader[key + "_run"], len(rounds))
            out.append(f"| {label} | {rounds[0]['rows'] / wall:,.0f} | {rate(rounds[0]['tokens'], wall)} | {wall:.2f} | "
                       f"{approx(cpu)} | {rate(rounds[0]['tokens'], cpu)} | "
                       f"{fmt(loader[key + '_run'].get('rss_mib'), '.0f')} | {note}; open {opened:.2f} s of it; "
                       f"{rounds[0]['batches']:,} whole batches ({rounds[0]['rows']:,} rows) |")
    memory = doc.get("memory", {}).get("rounds") or []
    if memory:
        wall = median([r["seconds"] for r in memory])
        memory_cpu = process_cpu_per_round(doc["memory"]["run"], len(memory))
        out.append(f"| mbdata in memory, W={doc['memory']['window']} (`SequencePacker` + `PackedTensors`) | {memory[0]['rows'] / wall:,.0f} | "
                   f"{rate(memory[0]['tokens'], wall)} | {wall:.2f} | {approx(memory_cpu)} | {rate(memory[0]['tokens'], memory_cpu)} | "
                   f"{fmt(doc['memory']['run'].get('rss_mib'), '.0f')} | "
                   f"tokens held in memory, as Grain's; packing alone {median([r['pack_seconds'] for r in memory]):.3f} s |")
    for g in grain.get("results", []):
        wall = median(g["seconds"])
        rounds = "median of " + str(len(g["seconds"])) + " rounds" if len(g["seconds"]) > 1 else "one round"
        out.append(f"| Grain `FirstFitPackIterDataset(num_packing_bins={g['num_packing_bins']})` + `.batch({ctx.batch})` | "
                   f"{g['rows'] / wall:,.0f} | {rate(g['tokens'], wall)} | {wall:.2f} | {fmt(median(g.get('cpu_seconds', [])), '.1f')} | "
                   f"{rate(g['tokens'], median(g.get('cpu_seconds', [])))} | "
                   f"{fmt(grain.get('rss_mib'), '.0f')} | "
                   f"tokens held in memory (numpy), one Python process, no prefetch threads; {rounds} |")
    out.append("")

    mixture = doc.get("mixture")
    if mixture:
        out.append("## Mixture overhead (mixture of 3 datasets against one, target ≤ 5% slower)\n")
        if mixture["measured"]:
            out.append(render_mixture(mixture))
        else:
            out.append(f"Not measured: {mixture['reason']}.")
        out.append("")
    out.append("## Method\n")
    out.append("- Data: `Benchmarks/packing/generate.py` (numpy PCG64, fixed seed); token ids Zipf over 32,000 ids "
               "(the shard benchmark's generator); ingested from JSONL with `mbdata ingest`.")
    out.append("- mbdata: every run reads ingest order (`--no-shuffle`), the order Grain and `packers.py` read, except the row "
               "marked shuffled. Samples longer than L are split into L-token pieces (`--overlong split`), except the row marked drop.")
    out.append("- Grain: the same pieces (samples cut at L as mbdata splits them; Grain refuses longer elements) as numpy int32 "
               "arrays in a list, `grain.MapDataset.source(...).to_iter_dataset()`, `FirstFitPackIterDataset(length_struct="
               f"{{'tokens': {ctx.row_length}}}, num_packing_bins=B, shuffle_bins=False)`, `.batch({ctx.batch})`; tokens counted from "
               "`tokens_segment_ids != 0`. Grain keeps B rows open and emits all of them when a piece fits none; B is set to "
               "the rows an mbdata window of W samples makes on average, so both hold about as many rows at once.")
    out.append("- Bounds: `packers.py` (independent Python): first-fit over the whole epoch in order, and first-fit-decreasing "
               "(the epoch's pieces sorted longest first) — what a packer that sees the whole epoch reaches; no windowed packer "
               "can be expected to beat them.")
    out.append("- Shard time is the whole `mbdata shard` process (`/usr/bin/time`), fsyncs included; tokens/s = non-padding tokens / wall.")
    out.append("- CPU s: user + system seconds of the shard process (GNU time) or of one Grain pass (`time.process_time`), medians; "
               "on shared cores it is steadier than wall time. The loader and in-memory rows run their rounds in one process: "
               "≈ marks that process's CPU over its rounds, start-up included (for the in-memory row, reading the 0.53 GB of "
               "tokens). The loaders serve whole batches only: the epoch's last rows short of a batch are left out.")
    out.append("")
    return "\n".join(out)


def main() -> int:
    ctx = Context()
    unknown = [s for s in ctx.steps if s not in ALL_STEPS]
    if unknown:
        raise SystemExit(f"unknown STEPS {unknown}; choose from {ALL_STEPS}")
    if os.environ.get("RENDER_ONLY") == "1":  # the report again from the JSON of the last run (same settings)
        doc = json.loads(ctx.results.with_suffix(".json").read_text())
        ctx.results.write_text(render(ctx, doc["machine"], doc))
        log(f"wrote {rel(ctx.results)} from {rel(ctx.results.with_suffix('.json'))}")
        return 0
    ctx.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    doc: dict = {"settings": ctx.settings()}
    if "data" in ctx.steps:
        doc["data"] = step_data(ctx)
    elif (ctx.data / "manifest.json").exists():
        doc["data"] = {"manifest": json.loads((ctx.data / "manifest.json").read_text())}
    lengths = np.load(ctx.data / "lengths.npy")

    def python_side() -> tuple[dict, dict | None]:
        bounds = step_bounds(ctx, lengths) if {"bounds", "grain"} & set(ctx.steps) else {}
        return bounds, step_grain(ctx, grain_bins(ctx, bounds)) if "grain" in ctx.steps else None

    # The bounds and Grain need only the data files; BESIDE=1 runs them while the mbdata steps run.
    beside = ThreadPoolExecutor(1).submit(python_side) if ctx.beside else None
    bounds, grain = python_side() if beside is None else ({}, None)
    if "shard" in ctx.steps:
        doc["shard"] = step_shard(ctx)
    if "loader" in ctx.steps:
        doc["loader"] = step_loader(ctx)
    if "memory" in ctx.steps:
        doc["memory"] = step_memory(ctx)
    if "mixture" in ctx.steps:
        doc["mixture"] = step_mixture(ctx)
    if beside is not None:
        bounds, grain = beside.result()
    if "bounds" in ctx.steps:
        doc["bounds"] = bounds
    if grain is not None:
        doc["grain"] = grain
    info = ib.machine_info(ctx.work, ctx.shard_tool)
    if not ctx.use_cli:
        info["note"] = f"{rel(ctx.mbdata)} was not built: ingest and shard ran through the driver's modes (the same library calls)"
    info["total run time"] = f"{time.perf_counter() - started:.0f} s"
    doc["machine"] = info
    md = render(ctx, info, doc)
    ctx.results.parent.mkdir(parents=True, exist_ok=True)
    ctx.results.write_text(md)
    ctx.results.with_suffix(".json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(md)
    log(f"wrote {rel(ctx.results)} and {rel(ctx.results.with_suffix('.json'))}")
    failed = [r for w in doc.get("shard", {}).get("windows", {}).values() for r in w if not r.get("ok")]
    return 1 if failed or doc.get("grain", {}).get("exit", 0) != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
