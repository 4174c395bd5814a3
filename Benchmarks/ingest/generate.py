#!/usr/bin/env python3
"""Generate deterministic CIFAR-shaped benchmark inputs for `mbdata ingest`.

Writes into the work folder (default Benchmarks/work/):

  images.npy         uint8 (N, 3, 32, 32)
  labels.npy         int64 (N,)
  cifar.jsonl        one object per line: {"image":[[[...32]...32]...3],"label":L}
  cifar.schema.json  the mbdata schema for the two fields
  manifest.json      what was written (n, seed, sizes), used to skip regeneration

The data are random (numpy PCG64, fixed seed) and generated in fixed-size
chunks, so the first K rows are identical whatever N is. The JSONL rows hold
exactly the same values as the NPY files (they are rendered from images.npy).

JSONL rendering is vectorised (see JsonlRenderer): table lookups into
zero-padded 4-byte words, then one bytes.translate per chunk deletes the
padding. About 20-25k rows/s on one core; the 1M-row file is ~11 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
CHUNK_ROWS = 10_000  # rows per RNG draw; part of the data definition, do not change
JSONL_CHUNK_ROWS = 2_000  # rows per JSONL render step (~25 MB words + ~22 MB text)
C, H, W = 3, 32, 32
PIXELS = C * H * W
NUM_CLASSES = 10

SCHEMA = {
    "name": "cifar",
    "fields": [
        {"name": "image", "dtype": "uint8", "shape": [C, H, W]},
        {"name": "label", "dtype": "int64"},
    ],
}

LINE_PREFIX = b'{"image":[[['
LABEL_PREFIX = b',"label":'


def log(msg: str) -> None:
    print(f"[generate] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- NPY

def npy_ok(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> bool:
    """True if `path` is a complete NPY file of the given shape/dtype."""
    if not path.exists():
        return False
    try:
        arr = np.load(path, mmap_mode="r")
    except Exception:
        return False
    if arr.shape != shape or arr.dtype != dtype or not arr.flags.c_contiguous:
        return False
    return path.stat().st_size == arr.offset + arr.nbytes


def write_npys(work: Path, n: int, seed: int) -> None:
    img_tmp = work / "images.npy.tmp"
    lab_tmp = work / "labels.npy.tmp"
    images = np.lib.format.open_memmap(img_tmp, mode="w+", dtype=np.uint8, shape=(n, C, H, W))
    labels = np.lib.format.open_memmap(lab_tmp, mode="w+", dtype=np.int64, shape=(n,))
    rng = np.random.Generator(np.random.PCG64(seed))
    flat = images.reshape(n, PIXELS)
    for start in range(0, n, CHUNK_ROWS):
        # Always draw a full chunk so rows do not depend on N.
        img = rng.integers(0, 256, size=(CHUNK_ROWS, PIXELS), dtype=np.uint8)
        lab = rng.integers(0, NUM_CLASSES, size=CHUNK_ROWS, dtype=np.int64)
        stop = min(n, start + CHUNK_ROWS)
        flat[start:stop] = img[: stop - start]
        labels[start:stop] = lab[: stop - start]
    images.flush()
    labels.flush()
    del flat, images, labels
    os.replace(img_tmp, work / "images.npy")
    os.replace(lab_tmp, work / "labels.npy")


# ---------------------------------------------------------------- JSONL

def _word(s: bytes) -> int:
    """Pack up to 4 bytes, zero padded, into one native uint32."""
    assert len(s) <= 4
    return int(np.frombuffer(s.ljust(4, b"\0"), dtype=np.uint32)[0])


def _pixel_table(suffix: bytes) -> np.ndarray:
    """(256,) uint32: the decimal digits of v followed by `suffix`, zero padded."""
    return np.array([_word(str(v).encode() + suffix) for v in range(256)], dtype=np.uint32)


class JsonlRenderer:
    """Renders rows as JSONL with numpy only (no per-value Python work).

    A line is laid out as uint32 words (4 bytes each, zero padded):

      3 words        '{"image":[[['
      96 x 33 words  per image row (3 channels x 32 rows): 31 x 'd,' then 'd]'
                     (d = 1-3 digits), then the row separator: ',[' inside a
                     channel, '],[[' between channels, nothing after the last
      T words        ']],"label":L}\n'
    Zero bytes are padding (real output never contains NUL) and are deleted
    with one bytes.translate per chunk.
    """

    def __init__(self) -> None:
        self.comma = _pixel_table(b",")
        self.close = _pixel_table(b"]")
        rowsep = np.full(C * H, _word(b",["), dtype=np.uint32)
        for c in range(C - 1):
            rowsep[c * H + H - 1] = _word(b"],[[")
        rowsep[-1] = 0
        self.rowsep = rowsep
        self.prefix = np.frombuffer(LINE_PREFIX, dtype=np.uint32)
        assert len(LINE_PREFIX) % 4 == 0

    def render(self, img: np.ndarray, lab: np.ndarray) -> bytes:
        """img: (k, PIXELS) uint8; lab: (k,) int64 -> k JSONL lines as bytes."""
        k = img.shape[0]
        trailers = [b"]]" + LABEL_PREFIX + str(v).encode() + b"}\n" for v in lab.tolist()]
        tw = (max(map(len, trailers)) + 3) // 4
        trailer_words = np.frombuffer(b"".join(t.ljust(4 * tw, b"\0") for t in trailers), dtype=np.uint32)
        np_ = len(self.prefix)
        nb = C * H * (W + 1)
        words = np.empty((k, np_ + nb + tw), dtype=np.uint32)
        words[:, :np_] = self.prefix
        body = words[:, np_ : np_ + nb].reshape(k, C * H, W + 1)
        rows = img.reshape(k, C * H, W)
        body[:, :, : W - 1] = self.comma[rows[:, :, : W - 1]]
        body[:, :, W - 1] = self.close[rows[:, :, W - 1]]
        body[:, :, W] = self.rowsep
        words[:, np_ + nb :] = trailer_words.reshape(k, tw)
        return words.tobytes().translate(None, b"\0")


def write_jsonl(work: Path, n: int) -> int:
    images = np.load(work / "images.npy", mmap_mode="r").reshape(n, PIXELS)
    labels = np.load(work / "labels.npy", mmap_mode="r")
    renderer = JsonlRenderer()
    tmp = work / "cifar.jsonl.tmp"
    t0 = time.perf_counter()
    last_report = t0
    with open(tmp, "wb", buffering=0) as f:
        for start in range(0, n, JSONL_CHUNK_ROWS):
            stop = min(n, start + JSONL_CHUNK_ROWS)
            f.write(renderer.render(np.asarray(images[start:stop]), np.asarray(labels[start:stop])))
            now = time.perf_counter()
            if now - last_report > 30:
                rate = stop / (now - t0)
                log(f"jsonl {stop:,}/{n:,} rows, {rate:,.0f} rows/s, eta {(n - stop) / rate:,.0f} s")
                last_report = now
    os.replace(tmp, work / "cifar.jsonl")
    return (work / "cifar.jsonl").stat().st_size


def check_jsonl_sample(work: Path, n: int) -> None:
    """Parse the first few lines and the last line with json; compare with the NPY data."""
    images = np.load(work / "images.npy", mmap_mode="r")
    labels = np.load(work / "labels.npy", mmap_mode="r")
    path = work / "cifar.jsonl"
    checks: list[tuple[int, bytes]] = []
    with open(path, "rb") as f:
        for i in range(min(3, n)):
            checks.append((i, f.readline()))
        size = path.stat().st_size
        f.seek(max(0, size - 64 * 1024))
        tail = f.read().splitlines()
        checks.append((n - 1, tail[-1]))
    for i, line in checks:
        obj = json.loads(line)
        assert set(obj) == {"image", "label"}, obj.keys()
        assert np.array_equal(np.asarray(obj["image"], dtype=np.int64), images[i]), f"row {i} image"
        assert obj["label"] == int(labels[i]), f"row {i} label"


# ---------------------------------------------------------------- main

def main() -> int:
    repo_root = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="number of samples (default 1,000,000)")
    ap.add_argument("--work", type=Path, default=repo_root / "Benchmarks" / "work", help="output folder")
    ap.add_argument("--seed", type=int, default=20240601, help="RNG seed")
    ap.add_argument("--no-jsonl", action="store_true", help="skip the JSONL file")
    ap.add_argument("--force", action="store_true", help="regenerate even if files look complete")
    args = ap.parse_args()
    if args.n <= 0:
        ap.error("--n must be positive")

    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    n, seed = args.n, args.seed
    manifest_path = work / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    except json.JSONDecodeError:
        manifest = {}
    same_data = (
        manifest.get("format_version") == FORMAT_VERSION
        and manifest.get("n") == n
        and manifest.get("seed") == seed
        and not args.force
    )

    schema_path = work / "cifar.schema.json"
    schema_path.write_text(json.dumps(SCHEMA) + "\n")

    npy_good = (
        same_data
        and npy_ok(work / "images.npy", (n, C, H, W), np.dtype(np.uint8))
        and npy_ok(work / "labels.npy", (n,), np.dtype(np.int64))
    )
    timings: dict[str, float] = {}
    if npy_good:
        log(f"images.npy / labels.npy up to date (n={n:,}, seed={seed}); skipping")
        timings = dict(manifest.get("timings_s", {}))
    else:
        manifest = {}
        for name in ("cifar.jsonl", "manifest.json"):
            (work / name).unlink(missing_ok=True)
        log(f"writing images.npy / labels.npy (n={n:,}, seed={seed})")
        t0 = time.perf_counter()
        write_npys(work, n, seed)
        timings["npy"] = round(time.perf_counter() - t0, 2)
        log(f"npy done in {timings['npy']:.1f} s")
        manifest = {"format_version": FORMAT_VERSION, "n": n, "seed": seed, "timings_s": timings}
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")

    jsonl = work / "cifar.jsonl"
    if not args.no_jsonl:
        want_size = manifest.get("jsonl_bytes")
        if npy_good and want_size and jsonl.exists() and jsonl.stat().st_size == want_size:
            log(f"cifar.jsonl up to date ({want_size / 1e9:.2f} GB); skipping")
        else:
            log(f"writing cifar.jsonl (n={n:,})")
            t0 = time.perf_counter()
            size = write_jsonl(work, n)
            timings["jsonl"] = round(time.perf_counter() - t0, 2)
            rate = n / timings["jsonl"]
            log(f"jsonl done: {size / 1e9:.3f} GB in {timings['jsonl']:.1f} s "
                f"({rate:,.0f} rows/s, {size / 1e6 / timings['jsonl']:.0f} MB/s)")
            check_jsonl_sample(work, n)
            manifest.update({"jsonl_bytes": size, "timings_s": timings})
            manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")

    sizes = {p.name: p.stat().st_size for p in sorted(work.glob("*")) if p.suffix in (".npy", ".jsonl")}
    manifest["sizes"] = sizes
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    for name, size in sizes.items():
        log(f"  {name:<12} {size / 1e6:12,.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
