"""Fixtures of the interop tests: the mbdata binary, and datasets and shard directories
made with it in pytest's temporary directories.

    python3 -m venv .venv && .venv/bin/pip install -r Tests/interop/requirements.txt
    swift build
    .venv/bin/python -m pytest Tests/interop -q

MBDATA_BINARY overrides the binary (default: .build/debug/mbdata under the repository root).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from mbshards import sqlite_rows

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGITS_JSONL = REPO_ROOT / "samples" / "digits" / "digits.jsonl"
DIGITS_SCHEMA = REPO_ROOT / "samples" / "digits" / "digits.schema.json"


def _binary() -> Path:
    configured = os.environ.get("MBDATA_BINARY")
    path = Path(configured) if configured else REPO_ROOT / ".build" / "debug" / "mbdata"
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


class MBData:
    """Runs the mbdata CLI; a non-zero exit fails the test with the command's stderr."""

    def __init__(self, binary: Path):
        self.binary = binary

    def __call__(self, *args, expect: int = 0) -> subprocess.CompletedProcess:
        command = [str(self.binary), *map(str, args)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != expect:
            pytest.fail(
                f"{' '.join(command)} exited {result.returncode} (expected {expect})\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def ingest(self, dataset: Path, schema: Path, *sources) -> Path:
        self("ingest", dataset, "--schema", schema, *sources)
        return dataset

    def shard(self, dataset: Path, out: Path, *options) -> Path:
        self("shard", dataset, "--out", out, *options)
        return out


@pytest.fixture(scope="session")
def mbdata() -> MBData:
    binary = _binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(f"no mbdata binary at {binary}: run `swift build` or set MBDATA_BINARY")
    return MBData(binary)


# --- the digits dataset (1,797 samples: id int64, image uint8 [8,8], label int64) ------


@pytest.fixture(scope="session")
def digits_db(mbdata, tmp_path_factory) -> Path:
    return mbdata.ingest(tmp_path_factory.mktemp("digits") / "digits.mbdb", DIGITS_SCHEMA, DIGITS_JSONL)


@pytest.fixture(scope="session")
def digits_rows(digits_db) -> dict[int, tuple]:
    rows = sqlite_rows(digits_db, "id, image, label")
    assert len(rows) == 1797
    return rows


def shard_maker(mbdata, dataset, tmp_path_factory, name):
    """shard(*options) → a shard directory of `dataset`, made once per options."""
    made: dict[tuple, Path] = {}

    def make(*options) -> Path:
        key = tuple(map(str, options))
        if key not in made:
            made[key] = mbdata.shard(dataset, tmp_path_factory.mktemp(f"{name}-shards") / "shards", *key)
        return made[key]

    return make


@pytest.fixture(scope="session")
def digits_shards(mbdata, digits_db, tmp_path_factory):
    return shard_maker(mbdata, digits_db, tmp_path_factory, "digits")


# --- a generated token + caption dataset (variable-length fields) ---------------------

TOKENS_SCHEMA = {
    "name": "t",
    "fields": [
        {"name": "tokens", "dtype": "int32", "shape": [None]},
        {"name": "caption", "dtype": "string"},
    ],
}

_CAPTIONS = [
    "",
    "a cat on a mat",
    "héllo wörld",
    "日本語のキャプション",
    "emoji 🎉🚀 and a combining é",
    'tab\tand "quotes" and \\ backslash',
    "two\nlines",
    "x" * 300,
]


def generate_token_rows(count: int = 700, seed: int = 20261129) -> list[dict]:
    """Token lists of 0…599 ids over the whole int32 range (incompressible, so two epochs
    exceed 1 MB and span several shards at --shard-mb 1), with some lengths ≤ 16 and
    some empty, and UTF-8 captions (some empty)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        if i % 10 == 0:
            length = int(rng.integers(0, 17))  # short: exercises zero padding for --pad-to 16
        else:
            length = int(rng.integers(0, 600))
        tokens = rng.integers(-(2**31), 2**31, size=length, dtype=np.int64).tolist()
        caption = _CAPTIONS[i % len(_CAPTIONS)]
        if i % 3:
            caption = f"{caption} #{i}"
        rows.append({"tokens": tokens, "caption": caption})
    return rows


@pytest.fixture(scope="session")
def token_rows() -> list[dict]:
    return generate_token_rows()


@pytest.fixture(scope="session")
def tokens_db(mbdata, token_rows, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("tokens")
    schema = directory / "t.schema.json"
    schema.write_text(json.dumps(TOKENS_SCHEMA))
    source = directory / "t.jsonl"
    with source.open("w", encoding="utf-8") as f:
        for row in token_rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return mbdata.ingest(directory / "t.mbdb", schema, source)


@pytest.fixture(scope="session")
def tokens_sqlite(tokens_db) -> dict[int, tuple]:
    return sqlite_rows(tokens_db, "tokens, caption")


@pytest.fixture(scope="session")
def tokens_shards(mbdata, tokens_db, tmp_path_factory):
    return shard_maker(mbdata, tokens_db, tmp_path_factory, "tokens")
