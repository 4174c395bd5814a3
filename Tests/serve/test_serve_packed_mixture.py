"""Packed mixtures over the live daemon (issue 14 §3): `mix={...}` with `pack={...}` streams
rows packed from the mixture epoch's draws, each segment with its `_source` and `_id`; every
token of the epoch's draws arrives once, per source as the unpacked mixture has them;
partition, replicate and share all serve it; a spool of `mbdata shard --mix --pack` serves
the live batches byte for byte; resume is exact mid-epoch."""

from __future__ import annotations

import subprocess
from collections import Counter

import numpy as np

from mbdata_client import Client
from servetest import binary
from test_serve_mixture import BATCH, MIX, NAMES, SEED, MixtureServer, mix_server, resumed_mid_epoch, share_in_two, sources  # noqa: F401 (fixtures)

ROW = 4
PACK = {"tokens": ROW, "window": 4}
PLAN = dict(mix=MIX, epoch_size=40, seed=SEED, tail="pad")


def segments(batch):
    """(source, id, token) of every token of a packed mixture batch, checking each segment:
    `_source` and `_id` per segment, `value` carried per segment, tokens and positions of
    the sample (sample i of a source holds tokens 0…i mod 3)."""
    assert batch.sources == NAMES
    rows, length = batch["tokens"].shape
    assert length == ROW and batch["_source"].shape == batch["_id"].shape == batch["value"].shape
    assert batch["_source"].dtype == np.int32
    found = []
    for row in range(rows):
        ids = batch["segment_ids"][row]
        count = int(ids.max())
        for segment in range(1, count + 1):
            columns = np.nonzero(ids == segment)[0]
            source, sample = int(batch["_source"][row, segment - 1]), int(batch["_id"][row, segment - 1])
            assert batch["value"][row, segment - 1] == 1000 * source + sample - 1
            assert list(batch["tokens"][row][columns]) == list(range((sample - 1) % 3 + 1))
            assert list(batch["positions"][row][columns]) == list(range(len(columns)))
            found += [(source, sample, int(token)) for token in batch["tokens"][row][columns]]
        assert np.all(batch["_source"][row, count:] == -1) and np.all(batch["_id"][row, count:] == -1)
    return found


def unpacked_tokens(client, group, epoch):
    """(source, id, token) of every draw of the unpacked mixture's epoch."""
    found = []
    for batch in client.batches(batch_size=BATCH, epoch=epoch, group=group, **PLAN):
        for source, sample in zip(batch["_source"], batch.ids):
            if source >= 0:
                found += [(int(source), int(sample), token) for token in range((int(sample) - 1) % 3 + 1)]
    return found


def test_every_token_of_the_epochs_draws_arrives_once(mix_server, group):
    client = Client(mix_server.url)
    for epoch in (0, 1):
        packed = [token for batch in client.batches(batch_size=BATCH, epoch=epoch, group=group, pack=PACK, **PLAN) for token in segments(batch)]
        assert client.stream_headers["mbdata-packing"] == f"tokens:{ROW}"
        expected = unpacked_tokens(Client(mix_server.url), group + "-unpacked", epoch)
        assert Counter(packed) == Counter(expected), f"epoch {epoch}: no token lost or repeated"
        assert Counter(s for s, _, _ in packed) == Counter(s for s, _, _ in expected), "per-source tokens as unpacked"
    state = client.cursor()
    assert state["packing"]["row_length"] == ROW and [s["name"] for s in state["mixture"]["sources"]] == NAMES
    efficiency = [line for line in client.metrics_text().splitlines()
                  if line.startswith("mbdata_packing_efficiency{") and 'dataset="mix:web,code,books"' in line]
    assert efficiency and 0 < float(efficiency[0].rsplit(" ", 1)[1]) <= 1.0, "/metrics reports the packed mixture's efficiency"


def test_ranks_replicas_and_share_consumers_see_the_one_stream(mix_server, group):
    whole = [batch["tokens"].copy() for batch in Client(mix_server.url).batches(batch_size=BATCH, group=group + "-w", pack=PACK, **PLAN)]
    ranks = [[b["tokens"].copy() for b in Client(mix_server.url).batches(
        batch_size=BATCH, rank=r, world=2, group=group + "-r", pack=PACK, **PLAN)] for r in range(2)]
    assert len(whole) == len(ranks[0]) == len(ranks[1])
    assert all(np.array_equal(w, np.concatenate([a, b])) for w, a, b in zip(whole, *ranks))
    replicas = [[b["tokens"].copy() for b in Client(mix_server.url).batches(
        batch_size=BATCH, group=group + "-rep", mode="replicate", replica=r, replicas=2, pack=PACK, **PLAN)] for r in range(2)]
    assert all(np.array_equal(a, b) for a, b in zip(*replicas)) and len(replicas[0]) == len(whole)

    taken = share_in_two(mix_server.url, lambda batch: batch["tokens"].copy(), batch_size=BATCH, group=group + "-s", pack=PACK, **PLAN)
    assert sorted(index for index, _ in taken) == list(range(len(whole)))
    assert all(np.array_equal(tokens, whole[index]) for index, tokens in taken)


def test_a_packed_mixture_resumes_mid_epoch_exactly(mix_server, group):
    plan = dict(batch_size=BATCH, epoch=1, pack=PACK, **PLAN)
    reference = [b["tokens"].copy() for b in Client(mix_server.url).batches(group=group + "-ref", **plan)]
    seen = resumed_mid_epoch(mix_server, group, lambda batch: batch["tokens"].copy(), 3, **plan)
    assert sorted(seen) == list(range(len(reference)))
    assert all(np.array_equal(seen[i], reference[i]) for i in range(len(reference)))


def test_a_packed_mixture_spool_serves_the_live_batches(sources, tmp_path, group):  # noqa: F811 (fixture)
    spool = tmp_path / "spool"
    command = [str(binary()), "shard", "--mix", *[f"{sources[name]}={weight}" for name, weight in MIX.items()],
               "--epoch-size", "40", "--out", str(spool / "packed"), "--batch-size", str(BATCH), "--seed", str(SEED), "--epochs", "2",
               "--pad", "--pack", f"tokens={ROW}", "--pack-window", "4"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "efficiency" in result.stderr and "mixture  3 sources" in result.stderr
    plan = dict(batch_size=BATCH, epoch=1, pack=PACK, **PLAN)
    daemon = MixtureServer(tmp_path / "serve", sources, options=("--spool", str(spool))).start()
    try:
        client = Client(daemon.url)
        spooled = [{name: b[name].copy() for name in ("tokens", "_source", "_id", "value")} for b in client.batches(group=group, **plan)]
        assert client.stream_headers["mbdata-source"] == "spool"
        unpacked = Client(daemon.url)
        assert list(unpacked.batches(batch_size=BATCH, epoch=1, group=group + "-u", **PLAN))
        assert unpacked.stream_headers["mbdata-source"] == "live", "the unpacked mixture is not served from the packed set"
    finally:
        daemon.stop_ok()
    reference = MixtureServer(tmp_path / "serve-live", sources).start()
    try:
        live = Client(reference.url)
        expected = [{name: b[name].copy() for name in ("tokens", "_source", "_id", "value")} for b in live.batches(group=group, **plan)]
        assert live.stream_headers["mbdata-source"] == "live"
    finally:
        reference.stop_ok()
    assert len(spooled) == len(expected) > 0
    assert all(all(np.array_equal(a[name], b[name]) for name in a) for a, b in zip(spooled, expected))
