"""A minimal, independent reader of mbdata shard directories, written from
schemas/shard-format.md (not from the Swift code), for the interop tests.

Only the Python standard library, numpy, lz4 and safetensors are used; xxh64 is
implemented here in pure Python so that no xxhash package is needed.
"""

from __future__ import annotations

import json
import sqlite3
import struct
from dataclasses import dataclass
from pathlib import Path

import lz4.frame
import numpy as np
import safetensors.numpy

MAGIC = b"MBSHARD1"
TRAILER = struct.Struct("<QQ8s")  # footer length, xxh64 of the footer, magic
ENTRY = struct.Struct("<QQQIIIIQ")  # offset, length, uncompressed, epoch, batch, rank, samples, xxh64
COUNT = struct.Struct("<Q")
assert TRAILER.size == 24 and ENTRY.size == 48

MANIFEST_FORMAT = "mbdata-shards-1"
BATCH_FORMAT = "mbdata-batch-1"


class ShardFormatError(ValueError):
    pass


# --- xxh64 (seed 0 by default), pure Python -------------------------------------------

_P1 = 11400714785074694791
_P2 = 14029467366897019727
_P3 = 1609587929392839161
_P4 = 9650029242287828579
_P5 = 2870177450012600261
_M = (1 << 64) - 1


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M


def _round(acc: int, lane: int) -> int:
    acc = (acc + lane * _P2) & _M
    return (_rotl(acc, 31) * _P1) & _M


def _merge(acc: int, v: int) -> int:
    acc ^= _round(0, v)
    return (acc * _P1 + _P4) & _M


def xxh64(data: bytes, seed: int = 0) -> int:
    data = memoryview(data).cast("B")
    n = len(data)
    i = 0
    if n >= 32:
        v1 = (seed + _P1 + _P2) & _M
        v2 = (seed + _P2) & _M
        v3 = seed & _M
        v4 = (seed - _P1) & _M
        stripes = n // 32
        for a, b, c, d in struct.iter_unpack("<4Q", data[: stripes * 32]):
            v1 = _round(v1, a)
            v2 = _round(v2, b)
            v3 = _round(v3, c)
            v4 = _round(v4, d)
        i = stripes * 32
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M
        for v in (v1, v2, v3, v4):
            h = _merge(h, v)
    else:
        h = (seed + _P5) & _M
    h = (h + n) & _M
    while i + 8 <= n:
        (k,) = struct.unpack_from("<Q", data, i)
        h ^= _round(0, k)
        h = (_rotl(h, 27) * _P1 + _P4) & _M
        i += 8
    if i + 4 <= n:
        (k,) = struct.unpack_from("<I", data, i)
        h ^= (k * _P1) & _M
        h = (_rotl(h, 23) * _P2 + _P3) & _M
        i += 4
    while i < n:
        h ^= (data[i] * _P5) & _M
        h = (_rotl(h, 11) * _P1) & _M
        i += 1
    h ^= h >> 33
    h = (h * _P2) & _M
    h ^= h >> 29
    h = (h * _P3) & _M
    h ^= h >> 32
    return h


def xxh64_hex(data: bytes) -> str:
    """The manifest's spelling of a digest: "xxh64:" + 16 lowercase hex digits."""
    return f"xxh64:{xxh64(data):016x}"


# --- shard files ----------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    offset: int
    length: int
    uncompressed: int
    epoch: int
    batch: int
    rank: int
    samples: int
    checksum: int


@dataclass
class Shard:
    path: Path
    data: bytes
    entries: list[Entry]
    footer: bytes
    footer_checksum: int

    def frame(self, entry: Entry) -> bytes:
        return self.data[entry.offset : entry.offset + entry.length]


def read_shard(path: Path) -> Shard:
    """Parses a shard file and checks its structure: trailer magic, footer length, entry
    count, and frames that tile the bytes before the footer exactly (no checksums)."""
    data = Path(path).read_bytes()
    if len(data) < TRAILER.size + COUNT.size:
        raise ShardFormatError(f"{path}: {len(data)} bytes, too short for a footer and trailer")
    footer_length, footer_checksum, magic = TRAILER.unpack_from(data, len(data) - TRAILER.size)
    if magic != MAGIC:
        raise ShardFormatError(f"{path}: trailer magic {magic!r}, expected {MAGIC!r}")
    footer_end = len(data) - TRAILER.size
    if footer_length < COUNT.size or footer_length > footer_end:
        raise ShardFormatError(f"{path}: footer length {footer_length} does not fit the file")
    footer_start = footer_end - footer_length
    footer = data[footer_start:footer_end]
    (count,) = COUNT.unpack_from(footer, 0)
    if footer_length != COUNT.size + count * ENTRY.size:
        raise ShardFormatError(f"{path}: footer of {footer_length} bytes cannot hold {count} entries")
    entries = []
    expected = 0
    for index in range(count):
        entry = Entry(*ENTRY.unpack_from(footer, COUNT.size + index * ENTRY.size))
        if entry.offset != expected or entry.length == 0 or entry.offset + entry.length > footer_start:
            raise ShardFormatError(f"{path}: entry {index} at {entry.offset}+{entry.length}, expected offset {expected}")
        expected = entry.offset + entry.length
        entries.append(entry)
    if expected != footer_start:
        raise ShardFormatError(f"{path}: frames end at {expected}, the footer starts at {footer_start}")
    return Shard(Path(path), data, entries, footer, footer_checksum)


def read_manifest(directory: Path) -> dict:
    manifest = json.loads((Path(directory) / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ShardFormatError(f"{directory}: manifest format {manifest.get('format')!r}")
    return manifest


def read_shards(directory: Path) -> tuple[dict, list[Shard]]:
    """The manifest and every shard it lists, in manifest order."""
    manifest = read_manifest(directory)
    return manifest, [read_shard(Path(directory) / s["file"]) for s in manifest["shards"]]


# --- batches --------------------------------------------------------------------------


def safetensors_header(buffer: bytes) -> dict:
    (length,) = struct.unpack_from("<Q", buffer, 0)
    return json.loads(buffer[8 : 8 + length])


def decode_frame(frame: bytes) -> tuple[bytes, dict[str, np.ndarray], dict[str, str]]:
    """One frame → (safetensors buffer, tensors, __metadata__)."""
    buffer = lz4.frame.decompress(frame)
    tensors = safetensors.numpy.load(buffer)
    metadata = safetensors_header(buffer).get("__metadata__", {})
    return buffer, tensors, metadata


@dataclass
class Batch:
    shard: Shard
    entry: Entry
    buffer: bytes
    tensors: dict[str, np.ndarray]
    metadata: dict[str, str]


def iter_batches(directory: Path):
    """Every batch of a shard directory, in file order (epoch, batch, rank)."""
    _, shards = read_shards(directory)
    for shard in shards:
        for entry in shard.entries:
            buffer, tensors, metadata = decode_frame(shard.frame(entry))
            yield Batch(shard, entry, buffer, tensors, metadata)


def split_offsets(values: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    """Rows of a `name` + `name.offsets` pair."""
    return [values[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


# --- the ground truth: the dataset's SQLite file ----------------------------------------


def sqlite_rows(dataset: Path, columns: str) -> dict[int, tuple]:
    """`select _id, <columns> from samples`, keyed by _id."""
    connection = sqlite3.connect(f"file:{dataset}?mode=ro", uri=True)
    try:
        return {row[0]: row[1:] for row in connection.execute(f"select _id, {columns} from samples order by _id")}
    finally:
        connection.close()
