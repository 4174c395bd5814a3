"""Writes the seed corpora of the fuzz targets (Tests/Fuzz/corpus/<target>/seed-*).

Seeds are small valid inputs, plus a few near misses, made with the same third-party
writers the interop tests trust (numpy, lz4.frame, safetensors, xxhash), so that the
fuzzer starts from the structures the parsers expect. Run with the test virtualenv:
`.venv/bin/python Tests/Fuzz/make_seeds.py` (after `make venv`). Crashers found by
`make fuzz` are committed beside the seeds under their libFuzzer names.
"""
import io
import json
import pathlib
import struct

import lz4.frame
import numpy as np
import xxhash
from safetensors.numpy import save as save_safetensors

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"


def write(target: str, name: str, data: bytes) -> None:
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"seed-{name}").write_bytes(data)


def batch(rows: int, with_metadata: bool = True) -> bytes:
    tensors = {
        "_id": np.arange(rows, dtype=np.int64),
        "image": np.arange(rows * 6, dtype=np.uint8).reshape(rows, 2, 3),
        "tokens": np.arange(rows * 3, dtype=np.int32),
        "tokens.offsets": np.arange(0, rows * 3 + 1, 3, dtype=np.int64),
        "_valid": np.ones(rows, dtype=np.uint8),
    }
    metadata = {"epoch": "0", "batch": "1", "rank": "0", "dataset_version": "1"} if with_metadata else None
    return save_safetensors(tensors, metadata=metadata)


def safetensors_seeds() -> list[bytes]:
    seeds = [batch(1), batch(4), batch(2, with_metadata=False)]
    for name, data in enumerate(seeds):
        write("safetensors", f"batch-{name}", data)
    header = json.dumps({"x": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}}).encode()
    write("safetensors", "overrun", struct.pack("<Q", len(header)) + header + b"\0" * 8)
    return seeds


def lz4_seeds(batches: list[bytes]) -> list[bytes]:
    frames = []
    for index, data in enumerate(batches):
        frame = lz4.frame.compress(data, content_checksum=True, store_size=True)
        frames.append(frame)
        write("lz4-frame", f"batch-{index}", frame)
    write("lz4-frame", "no-size", lz4.frame.compress(batches[0], store_size=False))
    write("lz4-frame", "truncated", frames[0][: len(frames[0]) // 2])
    write("lz4-frame", "empty-content", lz4.frame.compress(b"", store_size=True))
    return frames


def footer(frames: list[bytes]) -> tuple[bytes, int]:
    entries, offset = b"", 0
    for index, frame in enumerate(frames):
        uncompressed = lz4.frame.get_frame_info(frame)["content_size"]
        entries += struct.pack("<QQQIIIIQ", offset, len(frame), uncompressed, 0, index, 0, 4, xxhash.xxh64_intdigest(frame))
        offset += len(frame)
    return struct.pack("<Q", len(frames)) + entries, offset


def shard_footer_seeds(frames: list[bytes]) -> None:
    for count in (1, 2, 3):
        body, end = footer(frames[:count])
        write("shard-footer", f"entries-{count}", struct.pack(">Q", end) + body)
    body, end = footer(frames[:2])
    write("shard-footer", "short-frames", struct.pack(">Q", end - 1) + body)


def npy_seeds() -> None:
    arrays = {
        "uint8-2d": np.zeros((3, 4), dtype=np.uint8),
        "float32-3d": np.ones((2, 2, 2), dtype="<f4"),
        "bigendian": np.arange(3, dtype=">i8"),
        "bytes": np.array([b"ab", b"c"], dtype="|S2"),
        "unicode": np.array(["x", "yz"], dtype="<U2"),
        "fortran": np.asfortranarray(np.zeros((2, 3), dtype=np.int16)),
        "bool": np.array([True, False]),
    }
    for name, array in arrays.items():
        out = io.BytesIO()
        np.save(out, array)
        write("npy-header", name, out.getvalue())
    out = io.BytesIO()
    np.lib.format.write_array(out, np.zeros(2, dtype=np.int32), version=(2, 0))
    write("npy-header", "version2", out.getvalue())


def json_record_seeds() -> None:
    good = {"id": 1, "label": 3, "score": 0.5, "half": [1.5, -2], "image": [[1, 2, 3], [4, 5, 6]],
            "tokens": [1, 2, 3], "flag": True, "text": "héllo\n", "blob": "AAEC"}
    write("json-record", "full", json.dumps(good).encode())
    write("json-record", "empty-tokens", json.dumps({**good, "tokens": [], "text": "\\u00e9"}).encode())
    write("json-record", "escapes", b'{"id": 2, "label": 0, "score": -1e-3, "half": [0, 0], "image": [[0,0,0],[0,0,0]], '
          b'"tokens": [2147483647], "flag": false, "text": "\\ud83d\\ude00\\t", "blob": ""}')
    write("json-record", "overflow", json.dumps({**good, "score": "1e400"}).encode().replace(b'"1e400"', b"1e400"))
    write("json-record", "wrong-shape", json.dumps({**good, "image": [[1, 2], [3, 4]]}).encode())


def wire_message(kind: int, payload: bytes, epoch=0, batch=0, samples=0, uncompressed=0, lease=0) -> bytes:
    header = b"MBW1" + bytes([kind, 0, 0, 0]) + struct.pack("<IIII", epoch, batch, 0, samples)
    header += struct.pack("<QQQQ", uncompressed, len(payload), xxhash.xxh64_intdigest(payload), lease)
    return header + payload


def wire_seeds(batches: list[bytes], frames: list[bytes]) -> None:
    end = wire_message(2, json.dumps({"reason": "complete"}).encode())
    stream = b"".join(wire_message(1, f, batch=i, samples=4, uncompressed=len(b), lease=7 + i)
                      for i, (b, f) in enumerate(zip(batches, frames)))
    write("wire-decoder", "stream-whole", bytes([255]) + stream + end)
    write("wire-decoder", "stream-chunks-7", bytes([7]) + stream + end)
    error = wire_message(3, json.dumps({"error": {"code": "draining", "message": "the daemon is stopping"}}).encode())
    write("wire-decoder", "error", bytes([13]) + error)
    write("wire-decoder", "draining", bytes([56]) + wire_message(2, b'{"reason": "draining"}'))


def outputs_seeds() -> None:
    """`serve-outputs`: first byte bit 0 set for an LZ4 frame, then an outputs submission for
    the target's fixed output (pred int64, prob float32[3]) and batch (_id 5, 6, 7, padding)."""
    ids = np.array([5, 6, 7, -1], dtype=np.int64)
    good = {"pred": np.array([1, 2, 3, 0], dtype=np.int64), "prob": np.full((4, 3), 0.25, dtype=np.float32)}
    variants = {
        "good": good,
        "good-with-id": {**good, "_id": ids},
        "wrong-dtype": {**good, "prob": good["prob"].astype(np.float64)},
        "wrong-shape": {**good, "prob": np.zeros((4, 2), dtype=np.float32)},
        "short-rows": {"pred": good["pred"][:3], "prob": good["prob"][:3]},
        "extra-tensor": {**good, "logits": np.zeros((4, 3), dtype=np.float32)},
        "missing-field": {"pred": good["pred"]},
        "wrong-id": {**good, "_id": np.array([5, 6, 8, -1], dtype=np.int64)},
        "unused-dtype": {**good, "pred": good["pred"].astype(np.uint16)},
    }
    for name, tensors in variants.items():
        write("serve-outputs", name, b"\0" + save_safetensors(tensors, metadata={"batch": "0"}))
    framed = lz4.frame.compress(save_safetensors({**good, "_id": ids}), content_checksum=True, store_size=True)
    write("serve-outputs", "lz4-good", b"\1" + framed)
    write("serve-outputs", "lz4-no-size", b"\1" + lz4.frame.compress(save_safetensors(good), store_size=False))
    write("serve-outputs", "lz4-truncated", b"\1" + framed[: len(framed) // 2])


def main() -> None:
    batches = safetensors_seeds()
    frames = lz4_seeds(batches)
    shard_footer_seeds(frames)
    npy_seeds()
    json_record_seeds()
    wire_seeds(batches, frames)
    outputs_seeds()


if __name__ == "__main__":
    main()
