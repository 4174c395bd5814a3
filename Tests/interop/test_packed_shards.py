"""`mbdata shard --pack`: packed batches read by stock safetensors, every token of an epoch
exactly once (issue 14 §2), the packing recorded in the manifest."""

from __future__ import annotations

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
