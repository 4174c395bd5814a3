"""`mbdata shard --mix`: a mixture's batches read by stock safetensors (issue 14 §1, §3),
`_source` naming each row's dataset, each dataset's exact draws per epoch, the mixture
recorded in the manifest and shown by `inspect`."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from conftest import DIGITS_JSONL, DIGITS_SCHEMA
from mbshards import iter_batches, read_manifest, sqlite_rows


def test_mixture_shards_name_each_rows_dataset(mbdata, tmp_path):
    lines = DIGITS_JSONL.read_text(encoding="utf-8").splitlines(keepends=True)
    parts = {"low": lines[:300], "high": lines[300:500]}
    databases = {}
    for name, part in parts.items():
        source = tmp_path / f"{name}.jsonl"
        source.write_text("".join(part), encoding="utf-8")
        databases[name] = mbdata.ingest(tmp_path / f"{name}.mbdb", DIGITS_SCHEMA, source)

    out = tmp_path / "shards"
    mbdata(
        "shard", "--mix", f"{databases['low']}=0.7", f"{databases['high']}=0.3", "--epoch-size", "200",
        "--out", out, "--batch-size", "20", "--epochs", "2", "--seed", "5",
    )
    manifest = read_manifest(out)
    mixture = manifest["mixture"]
    assert [s["name"] for s in mixture["sources"]] == ["low", "high"]
    assert [s["weight"] for s in mixture["sources"]] == ["0.7", "0.3"]
    assert [s["draws"] for s in mixture["sources"]] == [140, 60] and mixture["epoch_size"] == 200

    rows = {name: sqlite_rows(path, "id, label") for name, path in databases.items()}
    names = [s["name"] for s in mixture["sources"]]
    per_epoch: dict[int, Counter] = {}
    for batch in iter_batches(out):
        t = batch.tensors
        assert t["_source"].dtype == np.int32 and t["_source"].shape == (20,)
        assert json.loads(batch.metadata["sources"]) == names
        for source, sample_id, label in zip(t["_source"], t["_id"], t["label"]):
            name = names[int(source)]
            assert rows[name][int(sample_id)][1] == label, "the row is the named dataset's sample"
            per_epoch.setdefault(batch.entry.epoch, Counter())[name] += 1
    assert per_epoch == {0: Counter(low=140, high=60), 1: Counter(low=140, high=60)}

    shown = mbdata("inspect", out)
    assert "mixture  2 sources, 200 draws per epoch" in shown.stdout
    assert "weight 0.7, 140 draws per epoch of 300 samples" in shown.stdout
    mbdata("verify", out)
