#!/usr/bin/env python3
"""Write a tiny sample of every source format mbdata ingests.

Deterministic: a seeded numpy RNG, fixed zip timestamps, no clock or locale in the
output, so running it again gives the same bytes. Writes next to this script; the
*.schema.json files are byte copies of schemas/examples/. See README.md for what
each file holds and the `mbdata ingest` command for it.

    python samples/formats/make_formats.py

Needs numpy.
"""

import base64
import csv
import hashlib
import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent
EXAMPLES = OUT.parent.parent / "schemas" / "examples"
SEED = 20240601


def write_bytes(name, data):
    path = OUT / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def copy_schema(example, name):
    write_bytes(name, (EXAMPLES / example).read_bytes())


def jsonl(rows):
    """One JSON object a line, fields in schema order, UTF-8 (not \\u-escaped), LF endings."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def csv_bytes(header, rows):
    """RFC 4180: comma-separated, CRLF record ends, fields quoted only when needed."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def npy_bytes(array):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def npz_bytes(arrays, compress):
    """What np.savez / np.savez_compressed write: one `<name>.npy` member per array,
    ZIP_STORED or ZIP_DEFLATED, zip64 extra fields forced. Done by hand only to pin
    each member's timestamp to 1980-01-01 00:00:00, which np.savez leaves to the
    zipfile module (with Python 3.11 and numpy 2.4 the bytes are identical)."""
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, mode="w", compression=method, allowZip64=True) as z:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            with z.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
    return buf.getvalue()


def f32_text(x):
    """Shortest decimal that reads back as exactly this float32, whether it is parsed
    straight to float32 or to float64 first and then rounded to float32."""
    x = np.float32(x)
    s = str(x)  # numpy: shortest round-tripping repr of the float32
    assert np.float32(s) == x and np.float32(float(s)) == x and np.float32(json.loads(s)) == x, s
    return s


def png_bytes(pixels):
    """A PNG file for an (h, w, 3) uint8 RGB array: 8-bit truecolor, no interlace,
    filter 0 on every row, one IDAT chunk."""
    h, w, _ = pixels.shape

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def b64(data):
    return base64.b64encode(data).decode("ascii")


def main():
    rng = np.random.default_rng(SEED)

    # --- tabular: id int64 (key), features float32 [4], label int64 -------------
    copy_schema("tabular.schema.json", "tabular.schema.json")
    n = 10
    ids = np.arange(100, 100 + n, dtype="<i8")  # keys that are not row numbers
    features = rng.standard_normal((n, 4)).astype("<f4")
    features[0] = np.array([0.0, -1.5, 1.0 / 3.0, 1e-3], dtype="<f4")  # a few easy-to-spot values
    labels = rng.integers(0, 3, size=n).astype("<i8")
    # Written by hand: json.dumps would print each float32 as its float64 expansion.
    write_bytes(
        "tabular.jsonl",
        "".join(
            f'{{"id": {int(i)}, "features": [{", ".join(f32_text(v) for v in f)}], "label": {int(l)}}}\n'
            for i, f, l in zip(ids, features, labels)
        ).encode("utf-8"),
    )
    write_bytes(
        "tabular.csv",
        csv_bytes(
            ["id", "features", "label"],
            [[str(int(i)), " ".join(f32_text(v) for v in f), str(int(l))] for i, f, l in zip(ids, features, labels)],
        ),
    )
    write_bytes("ids.npy", npy_bytes(ids))
    write_bytes("features.npy", npy_bytes(features))
    write_bytes("labels.npy", npy_bytes(labels))
    arrays = {"id": ids, "features": features, "label": labels}
    write_bytes("tabular.npz", npz_bytes(arrays, compress=False))
    write_bytes("tabular_compressed.npz", npz_bytes(arrays, compress=True))

    # --- captions: id string (key), image bytes, caption string ------------------
    copy_schema("captions.schema.json", "captions.schema.json")
    captions = [
        "A small grey cat asleep on a sofa.",
        "Ein Hund läuft über die grüne Wiese.",
        "ソファの上で猫が寝ている。",
        'She said "cheese", then smiled.\nSecond line: café 🙂',
        "Ελληνικά και русский, side by side.",
    ]
    lengths = [16, 17, 18, 5, 24]  # base64 padding "==", "=", none, "=", none
    caption_rows = [
        {"id": f"c{k}", "image": rng.integers(0, 256, size=m, dtype=np.uint8).tobytes(), "caption": c}
        for k, (m, c) in enumerate(zip(lengths, captions))
    ]
    write_bytes("captions.jsonl", jsonl({**r, "image": b64(r["image"])} for r in caption_rows))
    # Columns deliberately in another order than the schema's.
    write_bytes(
        "captions.csv",
        csv_bytes(["caption", "id", "image"], [[r["caption"], r["id"], b64(r["image"])] for r in caption_rows]),
    )

    # --- image folder: root/<class>/<file>, 4x4 RGB PNGs ---------------------------
    copy_schema("imagefolder.schema.json", "imagefolder.schema.json")
    tints = {"cat": (200, 120, 40), "dog": (40, 90, 200)}
    for cls, tint in tints.items():
        for k in range(3):
            noise = rng.integers(-40, 41, size=(4, 4, 3))
            pixels = np.clip(np.array(tint) + noise, 0, 255).astype(np.uint8)
            write_bytes(f"imagefolder/{cls}/{k}.png", png_bytes(pixels))

    # --- token binaries: 1000 token ids < 50000 -----------------------------------
    copy_schema("tokens.schema.json", "tokens.schema.json")
    tokens = rng.integers(0, 50000, size=1000)
    write_bytes("tokens.bin", tokens.astype("<u2").tobytes())
    write_bytes("tokens32.bin", tokens.astype("<u4").tobytes())

    # --- cifar-like NPZ: image uint8 (16,3,32,32), label int64 (16,) -------------
    copy_schema("cifar.schema.json", "cifar.schema.json")
    cifar = {
        "image": rng.integers(0, 256, size=(16, 3, 32, 32), dtype=np.uint8),
        "label": rng.integers(0, 10, size=16).astype("<i8"),
    }
    write_bytes("cifar_tiny.npz", npz_bytes(cifar, compress=False))

    for path in sorted(p for p in OUT.rglob("*") if p.is_file() and p.suffix not in (".py", ".md")):
        data = path.read_bytes()
        print(f"{hashlib.sha256(data).hexdigest()}  {path.relative_to(OUT)}  ({len(data)} bytes)")


if __name__ == "__main__":
    main()
