"""`mbdata outputs export` read back by numpy, json and csv: rows put into an output table
with Python's sqlite3, encoded as the spec says (scalars INTEGER/REAL, arrays as BLOBs of
little-endian row-major elements), come back exactly — NaN, infinities, -0.0, subnormals and
the extremes of every dtype included — and the .npy files are byte for byte what np.save
writes of the same arrays."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGITS_JSONL = REPO_ROOT / "samples" / "digits" / "digits.jsonl"
DIGITS_SCHEMA = REPO_ROOT / "samples" / "digits" / "digits.schema.json"

# (name, dtype, shape): one field of every dtype an output may hold, scalars and arrays.
FIELDS = [
    ("pred", "int64", []),
    ("prob", "float32", [10]),
    ("score", "float32", []),
    ("wide", "float64", [2]),
    ("energy", "float64", []),
    ("half", "float16", [3]),
    ("brain", "bfloat16", [2]),
    ("flag", "bool", []),
    ("mask", "bool", [2, 2]),
    ("small", "int8", []),
    ("pixels", "uint8", [3]),
    ("short", "int16", []),
    ("pair", "int32", [2]),
]
NUMPY = {
    "int64": np.int64,
    "float32": np.float32,
    "float64": np.float64,
    "float16": np.float16,
    "bfloat16": np.float32,  # exported as float32
    "bool": np.bool_,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "int32": np.int32,
}
SAMPLES = 1797
ROWS = 600


def bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """The bfloat16 bit patterns of float32 values that are exactly bfloat16 (low half zero)."""
    bits = values.astype(np.float32).view(np.uint32)
    assert not (bits & 0xFFFF).any()
    return (bits >> 16).astype(np.uint16)


def make_columns(rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """ROWS distinct sample ids, and each field's expected exported values for them."""
    ids = rng.choice(np.arange(1, SAMPLES + 1), size=ROWS, replace=False).astype(np.int64)
    f32 = np.finfo(np.float32)
    f64 = np.finfo(np.float64)
    f16 = np.finfo(np.float16)
    columns = {
        "pred": rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, size=ROWS, dtype=np.int64, endpoint=True),
        "prob": rng.standard_normal((ROWS, 10)).astype(np.float32) * np.float32(1e3),
        "score": rng.standard_normal(ROWS).astype(np.float32),
        "wide": rng.standard_normal((ROWS, 2)) * 1e-3,
        "energy": rng.standard_normal(ROWS) * 1e17,
        "half": rng.standard_normal((ROWS, 3)).astype(np.float16),
        # Random float32 bits with the low half cleared: every value is a bfloat16.
        "brain": (rng.integers(0, 1 << 16, size=(ROWS, 2), dtype=np.uint32) << 16).view(np.float32),
        "flag": rng.integers(0, 2, size=ROWS).astype(np.bool_),
        "mask": rng.integers(0, 2, size=(ROWS, 2, 2)).astype(np.bool_),
        "small": rng.integers(-128, 128, size=ROWS, dtype=np.int8),
        "pixels": rng.integers(0, 256, size=(ROWS, 3), dtype=np.uint8),
        "short": rng.integers(-(2**15), 2**15, size=ROWS, dtype=np.int16),
        "pair": rng.integers(-(2**31), 2**31, size=(ROWS, 2), dtype=np.int64).astype(np.int32),
    }
    # The edges, in the first rows. SQLite stores no NaN in a REAL column (it becomes NULL)
    # and a REAL -0.0 reads back as 0.0, so scalar floats get infinities but no NaN or -0.0.
    columns["pred"][:2] = [np.iinfo(np.int64).min, np.iinfo(np.int64).max]
    columns["prob"][0] = [np.nan, np.inf, -np.inf, -0.0, 0.0, f32.max, -f32.max, f32.tiny, f32.smallest_subnormal, -f32.smallest_subnormal]
    columns["prob"][1] = [0.1, 1 / 3, 1e-7, 16777217, 3.4e38, 1e-45, -1.17549435e-38, 2.5, 100, 1e10]
    columns["score"][:4] = [np.inf, -np.inf, f32.max, f32.smallest_subnormal]
    columns["wide"][0] = [np.nan, -0.0]
    columns["wide"][1] = [f64.max, f64.smallest_subnormal]
    columns["wide"][2] = [0.1, -np.inf]
    columns["energy"][:4] = [np.inf, -f64.max, 5e-324, 0.1]
    columns["half"][0] = [np.nan, np.inf, -0.0]
    columns["half"][1] = [f16.max, f16.smallest_subnormal, -f16.max]
    columns["brain"][0] = [np.float32(-0.0), np.float32("inf")]
    columns["brain"][1] = [np.float32(np.nan), np.float32(3.3895313892515355e38)]
    columns["small"][:2] = [-128, 127]
    columns["short"][:2] = [-(2**15), 2**15 - 1]
    columns["pair"][0] = [np.iinfo(np.int32).min, np.iinfo(np.int32).max]
    return ids, columns


def stored(name: str, dtype: str, shape: list, value):
    """A field value as the spec stores it: scalars INTEGER or REAL, arrays little-endian BLOBs."""
    if shape:
        if dtype == "bfloat16":
            return bfloat16_bits(np.asarray(value)).astype("<u2").tobytes()
        return np.ascontiguousarray(value, dtype=np.dtype(NUMPY[dtype]).newbyteorder("<")).tobytes()
    if dtype.startswith("float"):
        return float(value)
    return int(value)


@pytest.fixture(scope="module")
def exported(mbdata, tmp_path_factory):
    """A digits dataset with output `wide` filled in random _id order, and its exports."""
    directory = tmp_path_factory.mktemp("outputs")
    db = mbdata.ingest(directory / "digits.mbdb", DIGITS_SCHEMA, DIGITS_JSONL)
    schema = directory / "wide.schema.json"
    schema.write_text(
        json.dumps({"name": "wide", "fields": [{"name": n, "dtype": d, **({"shape": s} if s else {})} for n, d, s in FIELDS]})
    )
    mbdata("outputs", "create", db, "--name", "wide", "--schema", schema)
    ids, columns = make_columns(np.random.default_rng(20261201))
    names = [name for name, _, _ in FIELDS]
    with sqlite3.connect(db) as connection:
        connection.executemany(
            f"INSERT INTO outputs_wide (_id, {', '.join(names)}) VALUES ({', '.join('?' * (len(names) + 1))})",
            [
                [int(ids[row])] + [stored(name, dtype, shape, columns[name][row]) for name, dtype, shape in FIELDS]
                for row in range(ROWS)
            ],
        )
    connection.close()
    order = np.argsort(ids)
    expected = {name: np.asarray(columns[name], dtype=NUMPY[dtype])[order] for name, dtype, _ in FIELDS}
    expected["_id"] = ids[order]
    paths = {"npy": directory / "npy", "jsonl": directory / "wide.jsonl", "csv": directory / "wide.csv"}
    for format, path in paths.items():
        result = mbdata("outputs", "export", db, "--name", "wide", "--format", format, "--out", path)
        assert f"{ROWS} rows" in result.stderr
    return db, expected, paths


def assert_exact(name: str, got: np.ndarray, want: np.ndarray):
    """Equal element for element: NaN where NaN is, and the same bits (so -0.0 ≠ 0.0) elsewhere."""
    assert got.dtype == want.dtype and got.shape == want.shape, f"{name}: {got.dtype}{got.shape} vs {want.dtype}{want.shape}"
    if want.dtype.kind == "f":
        nan = np.isnan(want)
        assert np.array_equal(np.isnan(got), nan), name
        bits = np.dtype(f"u{want.dtype.itemsize}")
        mismatch = (got.view(bits) != want.view(bits)) & ~nan
        assert not mismatch.any(), f"{name}: {got[mismatch][:5]} vs {want[mismatch][:5]}"
    else:
        assert np.array_equal(got, want), name


def test_npy_files_are_what_np_save_writes(exported):
    _, expected, paths = exported
    directory = paths["npy"]
    assert sorted(p.name for p in directory.iterdir()) == sorted(["_id.npy"] + [f"{name}.npy" for name, _, _ in FIELDS])
    for name, want in expected.items():
        data = (directory / f"{name}.npy").read_bytes()
        reference = io.BytesIO()
        np.save(reference, want)
        assert data == reference.getvalue(), f"{name}.npy differs from np.save's bytes"
        assert_exact(name, np.load(directory / f"{name}.npy"), want)


def test_jsonl_reads_back_exactly(exported):
    _, expected, paths = exported
    lines = paths["jsonl"].read_text().splitlines()
    assert len(lines) == ROWS
    records = [json.loads(line) for line in lines]
    assert list(records[0]) == ["_id"] + [name for name, _, _ in FIELDS]
    for name, want in expected.items():
        assert_exact(name, np.array([record[name] for record in records], dtype=want.dtype), want)
    assert all(isinstance(record["flag"], bool) for record in records)


def test_csv_reads_back_exactly(exported):
    _, expected, paths = exported
    with paths["csv"].open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["_id"] + [name for name, _, _ in FIELDS]
    assert len(rows) == ROWS + 1
    columns = list(zip(*rows[1:]))
    assert_exact("_id", np.array([int(cell) for cell in columns[0]], dtype=np.int64), expected["_id"])
    for index, (name, dtype, shape) in enumerate(FIELDS, start=1):
        want = expected[name]
        if shape:
            values = [json.loads(cell) for cell in columns[index]]
        elif dtype == "bool":
            assert set(columns[index]) <= {"true", "false"}
            values = [cell == "true" for cell in columns[index]]
        elif dtype.startswith("float"):
            values = [float(cell) for cell in columns[index]]
        else:
            values = [int(cell) for cell in columns[index]]
        assert_exact(name, np.array(values, dtype=want.dtype), want)


def test_sqlite_join_and_verify(exported, mbdata):
    db, expected, _ = exported
    with sqlite3.connect(db) as connection:
        joined = connection.execute("SELECT count(*) FROM samples s JOIN outputs_wide o USING (_id)").fetchone()[0]
    connection.close()
    assert joined == ROWS
    mbdata("verify", db)
    listing = mbdata("outputs", "list", "--json", db)
    (output,) = json.loads(listing.stdout)
    assert output["name"] == "wide" and output["rows"] == ROWS
    assert sum(c["written"] for c in output["coverage"]) == ROWS
