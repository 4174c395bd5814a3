"""`mbdata shard --pack`: packed batches read by stock safetensors, every token of an epoch
exactly once (issue 14 §2), the packing recorded in the manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mbshards import iter_batches, read_manifest

ROW = 256


def test_packed_shards_hold_every_token_once(mbdata, tokens_db, tokens_sqlite, tokens_shards):
    directory = tokens_shards("--pack", f"tokens={ROW}", "--pack-window", "64", "--batch-size", "8", "--pad", "--seed", "3")
    manifest = read_manifest(directory)
    packing = manifest["packing"]
    assert (packing["field"], packing["row_length"], packing["window"], packing["overlong"]) == ("tokens", ROW, 64, "split")
    assert 0.5 < packing["efficiency"] <= 1

    pieces: dict[int, list[tuple[int, np.ndarray]]] = {}
    real_tokens = 0
    for batch in iter_batches(directory):
        t = batch.tensors
        assert t["tokens"].dtype == np.int32 and t["tokens"].shape == (8, ROW)
        assert t["segment_ids"].shape == t["positions"].shape == (8, ROW)
        assert t["_id"].shape[0] == 8
        for r in range(8):
            segments = t["segment_ids"][r]
            real_tokens += int((segments > 0).sum())
            for j, sample_id in enumerate(t["_id"][r]):
                if sample_id < 0:
                    assert (segments > j).sum() == 0, "no segment after the -1 padding"
                    continue
                columns = np.nonzero(segments == j + 1)[0]
                assert np.array_equal(t["positions"][r][columns], np.arange(len(columns)))
                pieces.setdefault(int(sample_id), []).append((len(pieces.get(int(sample_id), [])), t["tokens"][r][columns]))
    assert real_tokens == packing["statistics"]["tokens"]

    for sample_id, (tokens_blob, _) in tokens_sqlite.items():
        expected = np.frombuffer(tokens_blob or b"", dtype="<i4")
        # A split sample's full-row pieces open rows in order; its shorter last piece may
        # land in an earlier row with room, so it goes last.
        ordered = sorted(pieces.get(sample_id, []), key=lambda p: (len(p[1]) < ROW, p[0]))
        got = np.concatenate([piece for _, piece in ordered] or [np.zeros(0, np.int32)])
        assert np.array_equal(got, expected), f"sample {sample_id}"

    shown = mbdata("inspect", directory)
    assert "efficiency" in shown.stdout and "packing tokens into rows of 256" in shown.stdout


def test_packed_mixture_shards_name_each_segments_dataset(mbdata, tokens_db, tokens_sqlite, tmp_path):
    """`shard --mix … --pack …` (format revision 1.3): stock safetensors reads `_source` per
    segment beside `_id`; each segment's tokens are its sample's; the manifest holds both."""
    import shutil

    sources = {}
    for name in ("left", "right"):
        sources[name] = tmp_path / f"{name}.mbdb"
        for suffix in ("", "-wal"):  # a WAL not yet checkpointed travels with its database
            if Path(f"{tokens_db}{suffix}").exists():
                shutil.copy(f"{tokens_db}{suffix}", f"{sources[name]}{suffix}")
    out = tmp_path / "shards"
    mbdata("shard", "--mix", f"{sources['left']}=0.7", f"{sources['right']}=0.3", "--epoch-size", "500", "--out", out,
           "--batch-size", "8", "--pad", "--seed", "3", "--pack", f"tokens={ROW}", "--pack-window", "64")
    manifest = read_manifest(out)
    assert [s["name"] for s in manifest["mixture"]["sources"]] == ["left", "right"]
    assert manifest["packing"]["row_length"] == ROW
    real_tokens, per_source = 0, [0, 0]
    for batch in iter_batches(out):
        t = batch.tensors
        assert t["_source"].dtype == np.int32 and t["_source"].shape == t["_id"].shape
        assert np.array_equal(t["_source"] < 0, t["_id"] < 0)
        for r in range(t["tokens"].shape[0]):
            for j, (source, sample_id) in enumerate(zip(t["_source"][r], t["_id"][r])):
                if sample_id < 0:
                    continue
                columns = np.nonzero(t["segment_ids"][r] == j + 1)[0]
                expected = np.frombuffer(tokens_sqlite[int(sample_id)][0] or b"", dtype="<i4")
                first = int(np.nonzero(expected == t["tokens"][r][columns[0]])[0][0])
                assert np.array_equal(t["tokens"][r][columns], expected[first:first + len(columns)])
                real_tokens += len(columns)
                per_source[int(source)] += len(columns)
    assert real_tokens == manifest["packing"]["statistics"]["tokens"] and all(per_source)
    shown = mbdata("inspect", out)
    assert "_source 1  right" in shown.stdout and "packing tokens into rows of" in shown.stdout
