"""Third-party readers (lz4.frame, the lz4 CLI, safetensors.numpy, sqlite3) consume what
`mbdata shard` writes, read from the spec in schemas/shard-format.md."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import lz4.frame
import numpy as np
import pytest

from mbshards import BATCH_FORMAT, Batch, decode_frame, read_shards, split_offsets, sqlite_rows, xxh64, xxh64_hex

DIGITS = 1797
DIGITS_PLAN = ("--batch-size", 64, "--epochs", 2, "--seed", 7)
TOKENS_PLAN = ("--batch-size", 32, "--epochs", 2, "--seed", 11, "--shard-mb", 1)


def check_shard_directory(directory: Path) -> tuple[dict, list[Batch]]:
    """Everything a reader can check without the dataset: the manifest against the files,
    the footer and frame checksums, each frame's LZ4 header, the safetensors buffer and its
    metadata, the local batch size, and the frame order (epoch, batch, rank) across files."""
    manifest, shards = read_shards(directory)
    listed = [s["file"] for s in manifest["shards"]]
    assert sorted(p.name for p in directory.iterdir()) == sorted(["manifest.json", *listed])
    plan = manifest["plan"]
    parameters = plan["parameters"]
    local = parameters["batch_size"] // parameters["world"]
    totals = {"batches": 0, "samples": 0, "uncompressed_bytes": 0, "compressed_bytes": 0}
    order = []
    batches = []
    for info, shard in zip(manifest["shards"], shards):
        assert re.fullmatch(r"shard-\d{5}\.mbshard", info["file"])
        assert info["bytes"] == len(shard.data)
        assert info["xxh64"] == xxh64_hex(shard.data)
        assert info["batches"] == len(shard.entries)
        assert xxh64(shard.footer) == shard.footer_checksum, f"{shard.path}: footer checksum"
        for entry in shard.entries:
            frame = shard.frame(entry)
            assert xxh64(frame) == entry.checksum, f"{shard.path}: frame checksum of {entry}"
            header = lz4.frame.get_frame_info(frame)
            assert header["content_checksum"] and header["content_size"] == entry.uncompressed
            buffer, tensors, metadata = decode_frame(frame)
            assert len(buffer) == entry.uncompressed
            assert metadata == {
                "format": BATCH_FORMAT,
                "epoch": str(entry.epoch),
                "batch": str(entry.batch),
                "rank": str(entry.rank),
            }
            ids = tensors["_id"]
            assert ids.dtype == np.int64 and ids.shape == (local,)
            assert entry.samples == int((ids >= 0).sum())
            order.append((entry.epoch, entry.batch, entry.rank))
            totals["batches"] += 1
            totals["samples"] += entry.samples
            totals["uncompressed_bytes"] += entry.uncompressed
            totals["compressed_bytes"] += entry.length
            batches.append(Batch(shard, entry, buffer, tensors, metadata))
    first = plan["first_epoch"]
    assert order == [
        (epoch, batch, rank)
        for epoch in range(first, first + plan["epochs"])
        for batch in range(plan["batches_per_epoch"])
        for rank in range(parameters["world"])
    ]
    assert manifest["totals"] == totals
    return manifest, batches


# --- 1. fixed-shape fields: the digits dataset -----------------------------------------


def test_digits_batches_equal_the_sqlite_rows(digits_shards, digits_rows):
    manifest, batches = check_shard_directory(digits_shards(*DIGITS_PLAN))
    assert manifest["format"] == "mbdata-shards-1"
    assert manifest["dataset"]["samples"] == DIGITS and manifest["dataset"]["max_id"] == DIGITS
    assert manifest["dataset"]["fingerprint"].startswith("xxh64:")
    assert manifest["plan"]["parameters"] == {"seed": 7, "batch_size": 64, "world": 1, "tail": "drop", "shuffle": True}
    assert manifest["plan"]["batches_per_epoch"] == DIGITS // 64
    assert manifest["plan"]["dropped_per_epoch"] == DIGITS % 64
    assert (manifest["plan"]["first_epoch"], manifest["plan"]["epochs"]) == (0, 2)
    assert manifest["plan"]["pad_lengths"] == {}
    assert [f["name"] for f in manifest["schema"]["fields"]] == ["id", "image", "label"]
    assert manifest["compression"].startswith("lz4-frame")

    per_epoch: dict[int, list[int]] = defaultdict(list)
    for batch in batches:
        t = batch.tensors
        assert set(t) == {"id", "image", "label", "_id"}
        assert t["image"].dtype == np.uint8 and t["image"].shape == (64, 8, 8)
        for name in ("label", "id", "_id"):
            assert t[name].dtype == np.int64 and t[name].shape == (64,), name
        assert batch.entry.samples == 64
        for row, sample in enumerate(t["_id"].tolist()):
            id_, image, label = digits_rows[sample]
            assert t["id"][row] == id_
            assert t["image"][row].tobytes() == image
            assert t["label"][row] == label
        per_epoch[batch.entry.epoch] += t["_id"].tolist()

    assert sorted(per_epoch) == [0, 1]
    for epoch, ids in per_epoch.items():
        assert len(set(ids)) == len(ids), f"epoch {epoch} repeats a sample"
        assert len(ids) == DIGITS - DIGITS % 64
        assert set(ids) <= set(digits_rows)
    assert per_epoch[0] != per_epoch[1], "both epochs in the same order"


def test_no_shuffle_keeps_ingest_order(digits_shards):
    _, batches = check_shard_directory(digits_shards("--batch-size", 64, "--no-shuffle"))
    ids = np.concatenate([b.tensors["_id"] for b in batches]).tolist()
    assert ids == list(range(1, DIGITS - DIGITS % 64 + 1))


# --- 2. the lz4 CLI, and corruption --------------------------------------------------


@pytest.mark.skipif(shutil.which("lz4") is None, reason="the lz4 command-line tool is not installed")
def test_lz4_cli_decodes_a_frame(digits_shards, tmp_path):
    _, shards = read_shards(digits_shards(*DIGITS_PLAN))
    shard = shards[0]
    entry = shard.entries[len(shard.entries) // 2]
    frame = shard.frame(entry)
    path = tmp_path / "batch.safetensors.lz4"
    path.write_bytes(frame)
    decoded = subprocess.run(["lz4", "-d", "-c", str(path)], capture_output=True, check=True, timeout=30).stdout
    assert len(decoded) == entry.uncompressed
    assert decoded == lz4.frame.decompress(frame)


def test_a_corrupt_frame_is_detected(digits_shards):
    _, shards = read_shards(digits_shards(*DIGITS_PLAN))
    shard = shards[0]
    entry = shard.entries[0]
    frame = bytearray(shard.frame(entry))
    frame[len(frame) // 2] ^= 0x5A
    assert xxh64(bytes(frame)) != entry.checksum
    with pytest.raises(RuntimeError):  # LZ4 content checksum (or a malformed block)
        lz4.frame.decompress(bytes(frame))


# --- 3. variable-length fields --------------------------------------------------------


def test_sqlite_holds_the_generated_token_rows(tokens_sqlite, token_rows):
    """The ground truth of the next tests: the store holds the source rows, in order."""
    assert sorted(tokens_sqlite) == list(range(1, len(token_rows) + 1))
    for sample, (blob, caption) in tokens_sqlite.items():
        source = token_rows[sample - 1]
        assert np.frombuffer(blob, "<i4").tolist() == source["tokens"]
        assert caption == source["caption"]


def test_variable_length_fields_reconstruct_each_row(tokens_shards, tokens_sqlite):
    manifest, batches = check_shard_directory(tokens_shards(*TOKENS_PLAN))
    n = len(tokens_sqlite)
    assert manifest["plan"]["batches_per_epoch"] == n // 32
    per_epoch: dict[int, list[int]] = defaultdict(list)
    for batch in batches:
        t = batch.tensors
        assert set(t) == {"tokens", "tokens.offsets", "caption", "caption.offsets", "_id"}
        assert t["tokens"].dtype == np.int32 and t["tokens"].ndim == 1
        assert t["caption"].dtype == np.uint8 and t["caption"].ndim == 1
        for name, values in (("tokens", t["tokens"]), ("caption", t["caption"])):
            offsets = t[name + ".offsets"]
            assert offsets.dtype == np.int64 and offsets.shape == (33,), name
            assert offsets[0] == 0 and offsets[-1] == len(values), name
            assert (np.diff(offsets) >= 0).all(), name
        tokens = split_offsets(t["tokens"], t["tokens.offsets"])
        captions = split_offsets(t["caption"], t["caption.offsets"])
        for row, sample in enumerate(t["_id"].tolist()):
            blob, caption = tokens_sqlite[sample]
            assert tokens[row].astype("<i4").tobytes() == blob, f"tokens of sample {sample}"
            assert captions[row].tobytes().decode("utf-8") == caption, f"caption of sample {sample}"
        per_epoch[batch.entry.epoch] += t["_id"].tolist()
    for epoch, ids in per_epoch.items():
        assert len(set(ids)) == len(ids) == n - n % 32, f"epoch {epoch}"


def test_frames_continue_across_shard_files(tokens_shards):
    """At --shard-mb 1 two epochs of incompressible tokens span several files; the frame
    order (checked by check_shard_directory) runs on from one file to the next."""
    manifest, batches = check_shard_directory(tokens_shards(*TOKENS_PLAN))
    assert len(manifest["shards"]) >= 2
    assert [s["file"] for s in manifest["shards"]] == [f"shard-{i:05d}.mbshard" for i in range(len(manifest["shards"]))]
    assert all(s["batches"] > 0 for s in manifest["shards"])


def test_pad_to_gives_fixed_length_rows_and_lengths(tokens_shards, tokens_sqlite):
    directory = tokens_shards("--batch-size", 32, "--epochs", 1, "--seed", 11, "--pad-to", "tokens=16")
    manifest, batches = check_shard_directory(directory)
    assert manifest["plan"]["pad_lengths"] == {"tokens": 16}
    padded = truncated = 0
    for batch in batches:
        t = batch.tensors
        assert set(t) == {"tokens", "tokens.lengths", "caption", "caption.offsets", "_id"}
        assert t["tokens"].dtype == np.int32 and t["tokens"].shape == (32, 16)
        assert t["tokens.lengths"].dtype == np.int64 and t["tokens.lengths"].shape == (32,)
        captions = split_offsets(t["caption"], t["caption.offsets"])
        for row, sample in enumerate(t["_id"].tolist()):
            blob, caption = tokens_sqlite[sample]
            source = np.frombuffer(blob, "<i4")
            kept = min(len(source), 16)
            assert t["tokens.lengths"][row] == kept
            assert (t["tokens"][row, :kept] == source[:kept]).all()
            assert not t["tokens"][row, kept:].any(), "padding is not zero"
            padded += len(source) < 16
            truncated += len(source) > 16
            assert captions[row].tobytes().decode("utf-8") == caption
    assert padded and truncated, "the test data should both pad and truncate"


def test_string_and_bytes_with_nul_round_trip(mbdata, tmp_path):
    """U+0000 is valid in a JSON string and in UTF-8; the store keeps it, and a batch must
    hold the same bytes as the store."""
    schema = tmp_path / "nul.schema.json"
    schema.write_text(
        json.dumps({"name": "nul", "fields": [{"name": "caption", "dtype": "string"}, {"name": "payload", "dtype": "bytes"}]})
    )
    rows = [
        {"caption": "a\u0000b", "payload": base64.b64encode(b"\x00x\x00").decode()},
        {"caption": "\u0000", "payload": base64.b64encode(b"\x00").decode()},
        {"caption": "plain", "payload": ""},
    ]
    source = tmp_path / "nul.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dataset = mbdata.ingest(tmp_path / "nul.mbdb", schema, source)
    stored = sqlite_rows(dataset, "caption, payload")
    assert [stored[i + 1][0] for i in range(3)] == [r["caption"] for r in rows], "the store itself"
    _, batches = check_shard_directory(mbdata.shard(dataset, tmp_path / "shards", "--batch-size", 3, "--no-shuffle"))
    t = batches[0].tensors
    captions = [c.tobytes() for c in split_offsets(t["caption"], t["caption.offsets"])]
    payloads = [p.tobytes() for p in split_offsets(t["payload"], t["payload.offsets"])]
    ids = t["_id"].tolist()
    assert payloads == [stored[i][1] for i in ids]
    assert captions == [stored[i][0].encode("utf-8") for i in ids]


# --- 4. the pad tail policy -----------------------------------------------------------


def test_pad_tail_policy_flags_padding_rows(digits_shards, digits_rows):
    manifest, batches = check_shard_directory(digits_shards(*DIGITS_PLAN, "--pad"))
    plan = manifest["plan"]
    assert plan["parameters"]["tail"] == "pad"
    assert plan["batches_per_epoch"] == -(-DIGITS // 64) and plan["dropped_per_epoch"] == 0
    last = plan["batches_per_epoch"] - 1
    tail = DIGITS - last * 64
    per_epoch: dict[int, list[int]] = defaultdict(list)
    for batch in batches:
        t = batch.tensors
        assert set(t) == {"id", "image", "label", "_id", "_valid"}
        valid = t["_valid"]
        assert valid.dtype == np.bool_ and valid.shape == (64,)
        ids = t["_id"]
        assert (valid == (ids != -1)).all()
        assert (ids[valid] >= 1).all()
        if batch.entry.batch < last:
            assert valid.all()
        else:
            assert valid[:tail].all() and not valid[tail:].any(), "padding rows come last"
        assert not t["image"][~valid].any() and not t["label"][~valid].any() and not t["id"][~valid].any()
        for row in np.flatnonzero(valid):
            id_, image, label = digits_rows[int(ids[row])]
            assert (t["id"][row], t["image"][row].tobytes(), t["label"][row]) == (id_, image, label)
        per_epoch[batch.entry.epoch] += ids[valid].tolist()
    for epoch, ids in per_epoch.items():
        assert sorted(ids) == sorted(digits_rows), f"epoch {epoch}: every sample exactly once"


# --- 5. world 2 -----------------------------------------------------------------------


@pytest.mark.parametrize("tail", [(), ("--pad",)], ids=["drop", "pad"])
def test_world_2_ranks_concatenate_to_the_world_1_batches(digits_shards, tail):
    one_manifest, one = check_shard_directory(digits_shards(*DIGITS_PLAN, *tail))
    two_manifest, two = check_shard_directory(digits_shards(*DIGITS_PLAN, *tail, "--world", 2))
    assert two_manifest["plan"]["parameters"]["world"] == 2
    assert two_manifest["plan"]["batches_per_epoch"] == one_manifest["plan"]["batches_per_epoch"]
    global_batches = {(b.entry.epoch, b.entry.batch): b.tensors["_id"] for b in one}
    ranks = {(b.entry.epoch, b.entry.batch, b.entry.rank): b.tensors["_id"] for b in two}
    assert len(ranks) == 2 * len(global_batches)
    for (epoch, batch), ids in global_batches.items():
        halves = [ranks[(epoch, batch, rank)] for rank in (0, 1)]
        assert all(h.shape == (32,) for h in halves)
        assert np.concatenate(halves).tolist() == ids.tolist(), f"epoch {epoch} batch {batch}"


# --- the plan and the spec ------------------------------------------------------------


def test_an_epoch_does_not_depend_on_the_first_epoch(digits_shards):
    """Epoch 1 of a two-epoch set equals the only epoch of a set made with --first-epoch 1."""
    _, both = check_shard_directory(digits_shards(*DIGITS_PLAN))
    manifest, alone = check_shard_directory(
        digits_shards("--batch-size", 64, "--epochs", 1, "--first-epoch", 1, "--seed", 7)
    )
    assert (manifest["plan"]["first_epoch"], manifest["plan"]["epochs"]) == (1, 1)
    assert [b.tensors["_id"].tolist() for b in alone] == [b.tensors["_id"].tolist() for b in both if b.entry.epoch == 1]


def test_xxh64_reference_vectors():
    """The tests' pure-Python xxh64 (its agreement with mbdata's on every footer, frame and
    file above covers inputs of 32 bytes and more)."""
    assert xxh64(b"") == 0xEF46DB3751D8E999
    assert xxh64(b"a") == 0xD24EC4F1A98C6E5B
    assert xxh64(b"abc") == 0x44BC2CF5AD770999
    assert xxh64(b"Nobody inspects the spammish repetition") == 0xFBCEA83C8A378BF1


def test_the_worked_example_of_the_spec_reads_a_batch(digits_shards):
    spec = (Path(__file__).resolve().parents[2] / "schemas" / "shard-format.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", spec, re.S)
    example = next(block for block in blocks if "def read_batch" in block)
    namespace: dict = {}
    exec(compile(example, "shard-format.md", "exec"), namespace)
    directory = digits_shards(*DIGITS_PLAN)
    _, batches = check_shard_directory(directory)
    expected = next(b for b in batches if (b.entry.epoch, b.entry.batch) == (1, 3))
    tensors = namespace["read_batch"](directory, epoch=1, batch=3)
    assert set(tensors) == set(expected.tensors)
    for name, values in tensors.items():
        assert np.array_equal(values, expected.tensors[name]), name
    with pytest.raises(KeyError):
        namespace["read_batch"](directory, epoch=2, batch=0)
