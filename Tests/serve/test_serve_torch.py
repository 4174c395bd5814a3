"""The PyTorch IterableDataset over a live daemon (skipped without torch): it reads the
rank's partition stream — in the training process without workers, in worker 0 with them
(the same plan, shard set and cursor) — every batch once and acked once; a worker's items
reach the training process as shared-memory segments it maps, not as copies."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader  # noqa: E402

from mbdata_client import Client, acked_batches, handoff  # noqa: E402
from mbdata_client.torch import META_KEY, MBDataIterableDataset  # noqa: E402
from servetest import BATCH, SEED, TRAIN_BATCHES, TRAIN_DROPPED  # noqa: E402


def dataset(server, group, **options):
    return MBDataIterableDataset(server.url, "digits", BATCH, epoch=0, seed=SEED, split="train", group=group,
                                 **options)


def by_batch(items):
    return {item[META_KEY]["batch"]: item["_id"].tolist() for item in items}


@pytest.mark.parametrize("workers", [2, 4])
def test_workers_deliver_the_ranks_batches_each_once(server, digits, reference, group, monkeypatch, workers):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    items = list(DataLoader(dataset(server, group), batch_size=None, num_workers=workers))
    assert sorted(item[META_KEY]["batch"] for item in items) == list(range(TRAIN_BATCHES)), "each batch once"
    for item in items:
        assert isinstance(item["image"], torch.Tensor) and item["image"].dtype == torch.uint8
        assert item["image"].shape == (BATCH, 8, 8) and item["label"].dtype == torch.int64
        if handoff.supported():
            assert not item["image"].is_shared(), "the item was copied into a segment of torch's, not handed off"
    reference_ids = reference(SEED, 0)
    assert by_batch(items) == {k: reference_ids[k].tolist() for k in range(TRAIN_BATCHES)}
    ids = [i for item in items for i in item["_id"].tolist()]
    assert len(set(digits.train) - set(ids)) == TRAIN_DROPPED
    # ack="on_next" acked every item, the last ones when the workers' loops ended
    (cursor,) = {item[META_KEY]["cursor"] for item in items}
    assert acked_batches(Client(server.url).cursor(cursor), 0) == set(range(TRAIN_BATCHES))


def test_zero_and_four_workers_get_the_same_batches(server, group, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    alone = list(DataLoader(dataset(server, group + "-0"), batch_size=None, num_workers=0))
    shared = list(DataLoader(dataset(server, group + "-4"), batch_size=None, num_workers=4))
    assert by_batch(alone) == by_batch(shared)


def test_ranks_and_workers_combine(server, reference, group, monkeypatch):
    """Rank 1 of 2 with two workers: the second half of every global batch, acked by hand."""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    data = dataset(server, group, ack="manual")
    client = Client(server.url)
    items = []
    for item in DataLoader(data, batch_size=None, num_workers=2):
        if not items:
            assert acked_batches(client.cursor(item[META_KEY]["cursor"]), 0) == set(), "nothing acked by itself"
        items.append(item)
        data.ack(item)  # after the step, as a trainer would
    assert len(items) == TRAIN_BATCHES
    reference_ids = reference(SEED, 0)
    half = BATCH // 2
    for item in items:
        meta = item[META_KEY]
        assert meta["rank"] == 1 and meta["lease"] == 0
        assert item["_id"].tolist() == reference_ids[meta["batch"]][half:].tolist()
    (cursor,) = {item[META_KEY]["cursor"] for item in items}
    assert acked_batches(client.cursor(cursor), 0) == set(range(TRAIN_BATCHES))


def test_evaluation_with_workers_reads_the_stream_once(server, group, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    items = list(DataLoader(dataset(server, group, ack="none"), batch_size=None, num_workers=2))
    assert sorted(item[META_KEY]["batch"] for item in items) == list(range(TRAIN_BATCHES))
    (cursor,) = {item[META_KEY]["cursor"] for item in items}
    assert acked_batches(Client(server.url).cursor(cursor), 0) == set()


def test_items_convert_without_workers(server, group, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    data = MBDataIterableDataset(server.url, "digits", BATCH, split="val", tail="pad", shuffle=False, group=group,
                                 ack="none")
    items = list(data)
    assert len(items) == -(-348 // BATCH)
    last = items[-1]
    assert last["_valid"].dtype == torch.bool
    assert int(last["_valid"].sum()) == 348 - (len(items) - 1) * BATCH
    assert np.array_equal(last["_valid"].numpy(), last["_id"].numpy() >= 0)


def test_items_are_views_of_the_decoded_batch_without_workers(server, group, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    item = next(iter(dataset(server, group, ack="none")))
    image, ids = item["image"], item["_id"]
    start = min(image.data_ptr(), ids.data_ptr())
    end = max(image.data_ptr() + image.nbytes, ids.data_ptr() + ids.nbytes)
    assert end - start < image.nbytes + ids.nbytes + 4096, "the tensors are not views into one decoded buffer"


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_set_epoch_reaches_persistent_workers(server, group, monkeypatch, context):
    # Persistent workers keep the dataset they started with: the epoch must reach them, or
    # every epoch after the first reads the first's finished plan and comes back empty.
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    data = dataset(server, group)
    loader = DataLoader(data, batch_size=None, num_workers=2, persistent_workers=True, multiprocessing_context=context)
    for epoch in range(3):
        data.set_epoch(epoch)
        items = list(loader)
        assert {item[META_KEY]["epoch"] for item in items} == {epoch}
        assert sorted(item[META_KEY]["batch"] for item in items) == list(range(TRAIN_BATCHES))


def test_a_copy_of_the_dataset_keeps_an_epoch_of_its_own(server, group):
    import copy
    import pickle

    data = dataset(server, group)
    data.set_epoch(3)
    copied, unpickled = copy.deepcopy(data), pickle.loads(pickle.dumps(data))
    assert copied.epoch == unpickled.epoch == 3
    copied.set_epoch(5)
    assert data.epoch == 3 and unpickled.epoch == 3
