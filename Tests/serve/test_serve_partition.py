"""Partition and replicate streams against the live daemon: disjoint rank streams that
together cover the split less the dropped tail, batch contents equal to the SQLite rows,
padding, ingest order, and the stream headers."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from mbdata_client import Client
from servetest import BATCH, SEED, TRAIN_BATCHES, TRAIN_DROPPED, VAL, assert_error, hold_stream, request


def stream_ranks(url, world, group, **plan):
    """Every rank's batches, each rank read by its own client in its own thread, all at
    once. → ({rank: [Batch]}, {rank: stream headers})."""
    results, headers, errors = {}, {}, []

    def consume(rank):
        try:
            client = Client(url)
            results[rank] = list(client.batches("digits", BATCH, epoch=0, seed=SEED, rank=rank, world=world,
                                                group=group, split="train", **plan))
            headers[rank] = client.stream_headers
        except BaseException as error:  # reported in the test's thread
            errors.append((rank, error))

    threads = [threading.Thread(target=consume, args=(rank,)) for rank in range(world)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sorted(results) == list(range(world))
    return results, headers


@pytest.mark.parametrize("world", [1, 2, 4])
def test_rank_streams_are_disjoint_and_cover_the_split(server, digits, reference, group, world):
    results, headers = stream_ranks(server.url, world, group)
    local = BATCH // world
    everything = []
    for rank, batches in results.items():
        assert [b.index for b in batches] == list(range(TRAIN_BATCHES)), f"rank {rank}: batch order"
        assert all(b.rank == rank and b.epoch == 0 for b in batches)
        assert all(b.samples == local and b.ids.shape == (local,) for b in batches)
        assert all("_valid" not in b for b in batches), "_valid only under tail=pad"
        assert int(headers[rank]["mbdata-batches-per-epoch"]) == TRAIN_BATCHES
        assert int(headers[rank]["mbdata-remaining"]) == TRAIN_BATCHES
        assert headers[rank]["mbdata-source"] in ("spool", "live")
        assert int(headers[rank]["mbdata-dataset-version"]) == 1
        for batch in batches:
            assert batch.metadata.get("format") == "mbdata-batch-1"
            assert (batch.metadata.get("epoch"), batch.metadata.get("batch"), batch.metadata.get("rank")) == (
                "0", str(batch.index), str(rank))
            everything.extend(batch.ids.tolist())
    # one cursor per rank, one plan for all
    assert len({h["mbdata-cursor"] for h in headers.values()}) == world
    assert len({h["mbdata-plan"] for h in headers.values()}) == 1
    assert len(everything) == len(set(everything)) == TRAIN_BATCHES * BATCH, "streams overlap"
    assert set(everything) <= set(digits.train)
    assert len(set(digits.train) - set(everything)) == TRAIN_DROPPED
    # rank r of global batch k is the r-th slice of the world-1 batch k
    for k, ids in enumerate(reference(SEED, 0)):
        joined = np.concatenate([results[rank][k].ids for rank in range(world)])
        assert joined.tolist() == ids.tolist(), f"global batch {k}"


def test_batches_hold_the_sqlite_rows(server, digits, reference, group):
    client = Client(server.url)
    seen = 0
    for batch in client.batches("digits", BATCH, epoch=0, seed=SEED, rank=1, world=2, group=group, split="train"):
        image, label, key = batch["image"], batch["label"], batch["id"]
        assert image.dtype == np.uint8 and image.shape == (BATCH // 2, 8, 8)
        assert label.dtype == np.int64 and key.dtype == np.int64
        for row, sample in enumerate(batch.ids.tolist()):
            split, key_value, blob, label_value = digits.rows[sample]
            assert split == "train"
            assert image[row].tobytes() == blob, f"image of _id {sample}"
            assert int(label[row]) == label_value and int(key[row]) == key_value, f"_id {sample}"
            seen += 1
    assert seen == TRAIN_BATCHES * BATCH // 2


def test_epochs_and_seeds_have_their_own_order(reference, digits):
    orders = {
        (seed, epoch): np.concatenate(reference(seed, epoch)).tolist() for seed, epoch in [(7, 0), (7, 1), (8, 0)]
    }
    assert len({tuple(o) for o in orders.values()}) == 3, "an epoch or seed repeated another's order"
    for order in orders.values():
        assert len(set(order)) == len(order) == TRAIN_BATCHES * BATCH and set(order) <= set(digits.train)


def test_pad_keeps_every_sample_and_flags_padding_without_shuffle(server, digits, group):
    client = Client(server.url)
    batches = list(client.batches("digits", BATCH, epoch=0, seed=SEED, rank=0, world=1, group=group, split="val",
                                  tail="pad", shuffle=False))
    count = -(-VAL // BATCH)
    assert [b.index for b in batches] == list(range(count))
    for batch in batches:
        valid = batch["_valid"]
        assert valid.shape == (BATCH,) and valid.dtype == np.bool_
        assert (valid == (batch.ids >= 0)).all()
        assert batch.samples == int(valid.sum())
        assert (batch["image"][~valid] == 0).all() and (batch["label"][~valid] == 0).all()
    assert [b.samples for b in batches] == [BATCH] * (count - 1) + [VAL - (count - 1) * BATCH]
    ids = [i for b in batches for i in b.ids.tolist() if i >= 0]
    assert ids == digits.val, "shuffle=false keeps ingest order"


def test_start_skips_the_batches_below_it(server, reference, group):
    client = Client(server.url)
    batches = list(client.batches("digits", BATCH, epoch=0, seed=SEED, rank=0, world=1, group=group, split="train",
                                  start=TRAIN_BATCHES - 3))
    assert [b.index for b in batches] == list(range(TRAIN_BATCHES - 3, TRAIN_BATCHES))
    assert int(client.stream_headers["mbdata-remaining"]) == 3
    ids = reference(SEED, 0)
    assert [b.ids.tolist() for b in batches] == [ids[k].tolist() for k in range(TRAIN_BATCHES - 3, TRAIN_BATCHES)]


def test_pad_across_ranks_gives_padding_only_slices(server, digits, group):
    """348 val samples, G = 64, W = 4: the last global batch has 28 real rows, so rank 0
    gets 16, rank 1 gets 12 and ranks 2 and 3 get padding only."""
    count = -(-VAL // BATCH)
    ids, last = [], {}
    for rank in range(4):
        client = Client(server.url)
        batches = list(client.batches("digits", BATCH, epoch=0, seed=SEED, rank=rank, world=4, group=group,
                                      split="val", tail="pad"))
        assert [b.index for b in batches] == list(range(count))
        last[rank] = batches[-1]
        ids.extend(i for b in batches for i in b.ids.tolist() if i >= 0)
    assert sorted(ids) == digits.val and len(ids) == VAL
    assert [last[r].samples for r in range(4)] == [16, 12, 0, 0]
    assert (last[3].ids == -1).all() and not last[3]["_valid"].any()


def test_replicas_stream_at_the_same_time(big_server, group):
    """One stream per replica may be open at once; a second one on a replica is busy."""
    # The big dataset: a held digits stream fits the kernel's socket buffers, so the daemon
    # could finish it (and free replica 0's cursor) while replica 1 is being read.
    daemon = big_server()
    replicate = "&mode=replicate&replicas=2&replica=0"
    with hold_stream(daemon.port, group, extra=replicate):
        client = Client(daemon.url)
        batches = list(client.batches("digits", 1, epoch=0, seed=0, rank=0, world=1, group=group,
                                      mode="replicate", replica=1, replicas=2))
        assert len(batches) == 64
        response = request(daemon.port, "GET", f"/v1/datasets/digits/batches?batch_size=1&group={group}{replicate}")
        assert_error(response, 409, "cursor_busy")


def test_replicas_receive_the_same_batches(server, reference, group):
    rank, world = 1, 2
    streams = []
    for replica in range(2):
        client = Client(server.url)
        batches = list(client.batches("digits", BATCH, epoch=0, seed=SEED, rank=rank, world=world, group=group,
                                      split="train", mode="replicate", replica=replica, replicas=2))
        streams.append(([b.index for b in batches], [b.ids.tolist() for b in batches], client.cursor_id))
    (indices0, ids0, cursor0), (indices1, ids1, cursor1) = streams
    assert indices0 == indices1 == list(range(TRAIN_BATCHES))
    assert ids0 == ids1
    assert cursor0 != cursor1, "each replica has its own cursor"
    half = BATCH // world
    assert ids0 == [ids[rank * half:(rank + 1) * half].tolist() for ids in reference(SEED, 0)]


def test_dataset_listing_and_health(server, digits):
    client = Client(server.url)
    assert client.health() == {"status": "ok"}
    (entry,) = [d for d in client.datasets() if d["name"] == "digits"]
    assert entry["samples"] == 1797
    assert entry["splits"] == {"train": len(digits.train), "val": len(digits.val)}
    assert isinstance(entry["version"], int) and entry["version"] >= 1
    info = client.dataset("digits")
    assert info["name"] == "digits" and info["samples"] == 1797
    fields = {f["name"]: f for f in info["schema"]["fields"]}
    assert fields["image"]["dtype"] == "uint8" and fields["image"]["shape"] == [8, 8]
    assert fields["label"]["dtype"] == "int64"
    status, headers, _ = request(server.port, "GET", "/v1/datasets")
    assert status == 200 and headers["content-type"].startswith("application/json")
