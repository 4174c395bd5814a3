"""The benchmark's two output shapes and the do-nothing model's precomputed outputs.

  scores     pred int64 + prob float32[10] per sample (48 bytes a row)
  embedding  emb float32[512] per sample (2,048 bytes a row)

Every contender, in Swift or Python, writes the same values for the same batch: output
number b mod VARIANTS of a few batches computed once (element i of a field is i mod 10 for
integers, (i mod 1000) / 1000 for floats), as a view, without a copy.
"""

from __future__ import annotations

import numpy as np

VARIANTS = 8  # distinct output batches; batch b gets number b mod VARIANTS (as the Swift model)

SCHEMAS: dict[str, dict] = {
    "scores": {
        "name": "scores",
        "fields": [
            {"name": "pred", "dtype": "int64"},
            {"name": "prob", "dtype": "float32", "shape": [10]},
        ],
    },
    "embedding": {
        "name": "embedding",
        "fields": [{"name": "emb", "dtype": "float32", "shape": [512]}],
    },
}


def fields(schema: dict) -> list[tuple[str, np.dtype, tuple[int, ...]]]:
    return [(f["name"], np.dtype(f["dtype"]), tuple(f.get("shape") or ())) for f in schema["fields"]]


def row_bytes(schema: dict) -> int:
    """Bytes of one row's outputs (the `_id` not counted)."""
    return sum(dtype.itemsize * int(np.prod(shape, dtype=np.int64)) for _, dtype, shape in fields(schema))


def sql_type(dtype: np.dtype, shape: tuple[int, ...]) -> str:
    """The column type mbdata gives the field (arrays are little-endian BLOBs)."""
    if shape:
        return "BLOB"
    return "REAL" if dtype.kind == "f" else "INTEGER"


class Precomputed:
    """The do-nothing model: `outputs(b, rows)` is batch b's outputs, views into arrays of
    VARIANTS × batch_size rows computed once."""

    def __init__(self, schema: dict, batch_size: int) -> None:
        self.batch_size = batch_size
        rows = VARIANTS * batch_size
        self.arrays: dict[str, np.ndarray] = {}
        for name, dtype, shape in fields(schema):
            count = rows * int(np.prod(shape, dtype=np.int64))
            index = np.arange(count, dtype=np.int64)
            values = (index % 1000) / 1000 if dtype.kind == "f" else index % (2 if dtype.kind == "b" else 10)
            self.arrays[name] = values.astype(dtype).reshape((rows,) + shape)

    def outputs(self, batch: int, rows: int) -> dict[str, np.ndarray]:
        start = (batch % VARIANTS) * self.batch_size
        return {name: a[start : start + rows] for name, a in self.arrays.items()}
