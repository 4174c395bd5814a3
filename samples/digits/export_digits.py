#!/usr/bin/env python3
"""Export scikit-learn's digits dataset as an mbdata sample dataset.

Writes, next to this script:
  digits.schema.json  key `id` int64, `image` uint8 [8, 8], `label` int64
  digits.jsonl        one sample a line: {"id":…,"image":[[…]…],"label":…}
  ids.npy             int64 (1797,)        0..1796 in scikit-learn's order
  images.npy          uint8 (1797, 8, 8)   pixel values 0..16
  labels.npy          int64 (1797,)        digit 0..9

The output is byte-reproducible: same input, same bytes.

    python samples/digits/export_digits.py

Needs numpy and scikit-learn (the data ships inside scikit-learn; no download).
Data: UCI "Optical Recognition of Handwritten Digits" test set, CC BY 4.0 —
see LICENSE.md.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

OUT = Path(__file__).resolve().parent

SCHEMA = {
    "name": "digits",
    "key": "id",
    "description": (
        "UCI Optical Recognition of Handwritten Digits, test set (Alpaydin & Kaynak, 1998), "
        "as bundled by scikit-learn: 8x8 images of pixel counts 0..16 and the digit they show. "
        "CC BY 4.0; see LICENSE.md."
    ),
    "fields": [
        {"name": "id", "dtype": "int64", "description": "Position in scikit-learn's load_digits() order, 0..1796."},
        {"name": "image", "dtype": "uint8", "shape": [8, 8], "description": "Row-major 8x8 image, values 0..16."},
        {"name": "label", "dtype": "int64", "description": "The digit, 0..9."},
    ],
}


def schema_text(schema):
    """The schema as JSON, one field per line."""
    top = {k: v for k, v in schema.items() if k != "fields"}
    lines = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in top.items()]
    fields = [f"    {json.dumps(f, ensure_ascii=False)}" for f in schema["fields"]]
    return "{\n" + "\n".join(lines) + '\n  "fields": [\n' + ",\n".join(fields) + "\n  ]\n}\n"


def main():
    digits = load_digits()
    raw = np.asarray(digits.images)
    if raw.shape != (1797, 8, 8) or raw.min() < 0 or raw.max() > 16 or not np.array_equal(raw, np.round(raw)):
        raise SystemExit(f"unexpected digits data: shape {raw.shape}, range {raw.min()}..{raw.max()}")
    images = raw.astype(np.uint8)
    labels = np.asarray(digits.target).astype(np.int64)
    ids = np.arange(len(images), dtype=np.int64)
    if labels.shape != (1797,) or labels.min() < 0 or labels.max() > 9:
        raise SystemExit("unexpected digits labels")

    # Explicit little-endian dtypes, so the .npy headers say '<i8' / '|u1' on any machine.
    np.save(OUT / "ids.npy", ids.astype("<i8"), allow_pickle=False)
    np.save(OUT / "images.npy", images.astype("|u1"), allow_pickle=False)
    np.save(OUT / "labels.npy", labels.astype("<i8"), allow_pickle=False)

    with open(OUT / "digits.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for i, image, label in zip(ids.tolist(), images.tolist(), labels.tolist()):
            f.write(json.dumps({"id": i, "image": image, "label": label}, separators=(",", ":")) + "\n")

    (OUT / "digits.schema.json").write_text(schema_text(SCHEMA), encoding="utf-8", newline="\n")

    for name in ("digits.schema.json", "digits.jsonl", "ids.npy", "images.npy", "labels.npy"):
        data = (OUT / name).read_bytes()
        print(f"{hashlib.sha256(data).hexdigest()}  {name}  ({len(data)} bytes)")


if __name__ == "__main__":
    main()
