"""Packed batches over the live daemon (issue 14 §2–3): `pack={"tokens": L}` streams rows
of exactly L tokens with `segment_ids` and `positions`, every token of the epoch once;
cursors and resume cover the packing; a spool of packed shards serves only the plan packed
the same way; /metrics reports packing efficiency and split samples."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from mbdata_client import Client
from mbdata_client.errors import MBDataError
from servetest import Server, binary

SAMPLES = 300
ROW = 64
WINDOW = 16
ROWS = 4  # global batch size in rows
SEED = 7
PACK = {"tokens": ROW, "window": WINDOW}


def tokens(index: int) -> list[int]:
    """Sample `index`'s tokens (its `_id` is index + 1): 0 through 149, each naming its
    sample and place as index × 1000 + place."""
    return [index * 1000 + place for place in range(index * 7919 % 150)]


@pytest.fixture(scope="module")
def tokens_db(mbdata_binary, tmp_path_factory):
    directory = tmp_path_factory.mktemp("tokens")
    schema = directory / "tokens.schema.json"
    schema.write_text(json.dumps({"name": "tokens", "key": "name", "fields": [
        {"name": "name", "dtype": "string"}, {"name": "label", "dtype": "int64"},
        {"name": "tokens", "dtype": "int32", "shape": [None]}]}))
    source = directory / "tokens.jsonl"
    source.write_text("".join(json.dumps({"name": f"s{i}", "label": i, "tokens": tokens(i)}) + "\n" for i in range(SAMPLES)))
    dataset = directory / "tokens.mbdb"
    run([str(mbdata_binary), "ingest", str(dataset), "--schema", str(schema), str(source)])
    return dataset


def run(command):
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture
def packed_server(tokens_db, tmp_path):
    daemons = []

    def make(*options):
        daemon = Server(tmp_path / f"serve-{len(daemons)}", tokens_db, *options).start()
        daemons.append(daemon)
        return daemon

    yield make
    for daemon in daemons:
        if daemon.running:
            daemon.stop_ok()


def segments(batch):
    """(sample index, first place, length) of every segment of a packed batch, checking
    each row: tokens, segment ids, positions and `_id` agree with the samples."""
    found = []
    rows, length = batch["tokens"].shape
    assert length == ROW and batch["segment_ids"].shape == (rows, ROW) and batch["positions"].shape == (rows, ROW)
    for row in range(rows):
        ids, places, values = batch["segment_ids"][row], batch["positions"][row], batch["tokens"][row]
        count = int(ids.max())
        assert np.all(ids[np.count_nonzero(ids):] == 0), "padding only after the segments"
        for segment in range(1, count + 1):
            columns = np.nonzero(ids == segment)[0]
            index, first = divmod(int(values[columns[0]]), 1000)
            assert batch.ids[row, segment - 1] == index + 1, "_id names each segment's sample"
            assert list(values[columns]) == tokens(index)[first:first + len(columns)]
            assert list(places[columns]) == list(range(len(columns)))
            found.append((index, first, len(columns)))
        assert np.all(batch.ids[row, count:] == -1)
    return found


def assert_every_token_once(found, epoch_batches_rows_cover_all=True):
    covered = {}
    for index, first, length in found:
        for place in range(first, first + length):
            key = (index, place)
            assert key not in covered, f"token {key} repeated"
            covered[key] = True
    expected = {(i, p) for i in range(SAMPLES) for p in range(len(tokens(i)))}
    missing = expected - covered.keys()
    return missing


def test_packed_stream_holds_every_token_of_the_epoch_once(packed_server, group):
    daemon = packed_server()
    client = Client(daemon.url)
    batches = list(client.batches("digits", ROWS, seed=SEED, group=group, tail="pad", pack=PACK))
    headers = client.stream_headers
    assert int(headers["mbdata-batches-per-epoch"]) == len(batches) > 0
    assert headers["mbdata-packing"] == f"tokens:{ROW}"
    found = [segment for batch in batches for segment in segments(batch)]
    assert not assert_every_token_once(found), "tail=pad and split: nothing lost"
    state = client.cursor()
    assert state["packing"] == {"field": "tokens", "row_length": ROW, "window": WINDOW, "overlong": "split"}
    unpacked = client.plan_cursor("digits", ROWS, seed=SEED, group=group, tail="pad")
    assert unpacked["cursor"] != state["cursor"] and "packing" not in unpacked
    assert unpacked["plan_fingerprint"] != state["plan_fingerprint"]

    metrics = client.metrics_text()
    efficiency = [line for line in metrics.splitlines() if line.startswith("mbdata_packing_efficiency{")]
    assert efficiency and 0.5 < float(efficiency[0].rsplit(" ", 1)[1]) <= 1.0, efficiency
    split = [line for line in metrics.splitlines() if line.startswith("mbdata_packing_split_samples{")]
    assert split and float(split[0].rsplit(" ", 1)[1]) > 0, "samples over 64 tokens are split"


def test_ranks_of_a_packed_plan_concatenate_to_the_world_one_stream(packed_server, group):
    daemon = packed_server()
    whole = list(Client(daemon.url).batches("digits", ROWS, seed=SEED, group=group + "-1", pack=PACK))
    ranks = [list(Client(daemon.url).batches("digits", ROWS, seed=SEED, rank=r, world=2, group=group + "-2", pack=PACK))
             for r in range(2)]
    assert [len(r) for r in ranks] == [len(whole)] * 2
    for index, batch in enumerate(whole):
        joined = np.concatenate([ranks[0][index]["tokens"], ranks[1][index]["tokens"]])
        assert np.array_equal(joined, batch["tokens"])


def test_a_packed_stream_resumes_mid_epoch_exactly(packed_server, group):
    daemon = packed_server()
    reference = [b["tokens"].copy() for b in Client(daemon.url).batches("digits", ROWS, seed=SEED, epoch=1, group=group + "-ref", pack=PACK)]
    client = Client(daemon.url)
    seen = {}
    for batch in client.batches("digits", ROWS, seed=SEED, epoch=1, group=group, pack=PACK):
        if batch.index % 3 == 1:
            continue  # not acked: comes again
        batch.ack()
        seen[batch.index] = batch["tokens"].copy()
        if len(seen) == len(reference) // 2:
            break
    saved = client.cursor()
    daemon.restart()
    resumed = Client(daemon.url)
    rest = list(resumed.batches("digits", ROWS, seed=SEED, epoch=1, group=group, pack=PACK, resume=saved))
    assert not {b.index for b in rest} & seen.keys(), "nothing acked comes again"
    for batch in rest:
        seen[batch.index] = batch["tokens"]
    assert sorted(seen) == list(range(len(reference)))
    assert all(np.array_equal(seen[i], reference[i]) for i in range(len(reference)))
    with pytest.raises(ValueError, match="pack"):
        resumed.batches("digits", ROWS, seed=SEED, epoch=1, group=group, resume=saved)


def test_share_consumers_of_a_packed_plan_take_each_batch_once(packed_server, group):
    daemon = packed_server()
    expected = len(list(Client(daemon.url).batches("digits", ROWS, seed=SEED, group=group + "-ref", pack=PACK)))
    indices = []
    for batch in Client(daemon.url).share("digits", ROWS, seed=SEED, group=group, pack=PACK):
        indices.append(batch.index)
        batch.ack()
    assert sorted(indices) == list(range(expected))


def test_a_packed_spool_serves_only_the_plan_packed_the_same_way(packed_server, tokens_db, tmp_path, group):
    spool = tmp_path / "spool"
    run([str(binary()), "shard", str(tokens_db), "--out", str(spool / "packed"), "--batch-size", str(ROWS), "--seed", str(SEED),
         "--pack", f"tokens={ROW}", "--pack-window", str(WINDOW), "--epochs", "2"])
    daemon = packed_server("--spool", str(spool))
    client = Client(daemon.url)
    spooled = list(client.batches("digits", ROWS, seed=SEED, group=group, pack=PACK))
    assert client.stream_headers["mbdata-source"] == "spool"
    live = list(client.batches("digits", ROWS, seed=SEED, group=group, pack={"tokens": ROW, "window": 2 * WINDOW}))
    assert client.stream_headers["mbdata-source"] == "live", "another window packs other rows"
    assert len(live) != len(spooled) or any(not np.array_equal(a["tokens"], b["tokens"]) for a, b in zip(live, spooled))
    unpacked = list(client.batches("digits", ROWS, seed=SEED, group=group))
    assert client.stream_headers["mbdata-source"] == "live" and "segment_ids" not in unpacked[0]
    again = list(Client(daemon.url).batches("digits", ROWS, seed=SEED, group=group + "-live", pack=PACK, epoch=2))
    assert again and "segment_ids" in again[0], "an epoch the spool lacks is packed live"


def test_packing_is_refused_clearly_where_it_cannot_apply(packed_server, group):
    daemon = packed_server()
    client = Client(daemon.url)
    with pytest.raises(MBDataError, match="label"):
        list(client.batches("digits", ROWS, group=group, pack={"label": 8}))
    with pytest.raises(MBDataError, match="infer"):
        client.request("POST", "/v1/datasets/digits/lease", {"mode": "infer", "output": "o", "batch_size": 4, "pack": "tokens:64"})
    with pytest.raises(MBDataError, match="pack_window"):
        client.request("GET", "/v1/datasets/digits/cursor", {"batch_size": 4, "pack_window": 8})
    with pytest.raises(ValueError):
        client.batches("digits", ROWS, pack={"tokens": 64, "other": 8})
