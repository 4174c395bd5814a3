"""The PyTorch IterableDataset over a live daemon (skipped without torch): DataLoader
workers read disjoint partition streams that together cover the epoch."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader  # noqa: E402

from mbdata_client import Client, acked_batches  # noqa: E402
from mbdata_client.torch import META_KEY, MBDataIterableDataset  # noqa: E402
from servetest import BATCH, SEED, TRAIN_BATCHES, TRAIN_DROPPED  # noqa: E402


def dataset(server, group, **options):
    return MBDataIterableDataset(server.url, "digits", BATCH, epoch=0, seed=SEED, split="train", group=group,
                                 **options)


def test_two_workers_cover_the_epoch_without_duplicates(server, digits, reference, group, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    data = dataset(server, group)
    items = list(DataLoader(data, batch_size=None, num_workers=2))
    assert len(items) == 2 * TRAIN_BATCHES
    ids = []
    for item in items:
        assert isinstance(item["image"], torch.Tensor) and item["image"].dtype == torch.uint8
        assert item["image"].shape == (BATCH // 2, 8, 8) and item["label"].dtype == torch.int64
        ids.extend(item["_id"].tolist())
    assert len(ids) == len(set(ids)) == TRAIN_BATCHES * BATCH, "workers overlap"
    assert len(set(digits.train) - set(ids)) == TRAIN_DROPPED
    # worker w reads rank w of world 2: the w-th half of each global batch
    reference_ids = reference(SEED, 0)
    for item in items:
        meta = item[META_KEY]
        half = reference_ids[meta["batch"]][meta["rank"] * 32:(meta["rank"] + 1) * 32]
        assert item["_id"].tolist() == half.tolist()
    # ack="on_next" acked every item, the last ones when the streams ended
    cursors = {item[META_KEY]["cursor"] for item in items}
    assert len(cursors) == 2
    client = Client(server.url)
    for cursor in cursors:
        assert acked_batches(client.cursor(cursor), 0) == set(range(TRAIN_BATCHES))


def test_ranks_and_workers_combine(server, reference, group, monkeypatch):
    """Rank 1 of 2 with two workers reads effective ranks 2 and 3 of world 4."""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    data = dataset(server, group, ack="manual")
    items = list(DataLoader(data, batch_size=None, num_workers=2))
    assert len(items) == 2 * TRAIN_BATCHES
    reference_ids = reference(SEED, 0)
    quarter = BATCH // 4
    for item in items:
        meta = item[META_KEY]
        assert meta["rank"] in (2, 3)
        k = meta["batch"]
        assert item["_id"].tolist() == reference_ids[k][meta["rank"] * quarter:(meta["rank"] + 1) * quarter].tolist()
    # manual acks from the main process
    client = Client(server.url)
    cursors = {item[META_KEY]["cursor"] for item in items}
    for cursor in cursors:
        assert acked_batches(client.cursor(cursor), 0) == set()
    for item in items:
        data.ack(item)
    for cursor in cursors:
        assert acked_batches(client.cursor(cursor), 0) == set(range(TRAIN_BATCHES))


def test_a_batch_size_the_workers_do_not_divide_is_refused(server, group, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    data = MBDataIterableDataset(server.url, "digits", 63, split="train", group=group)
    with pytest.raises(ValueError, match="divisible"):
        list(DataLoader(data, batch_size=None, num_workers=2))


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
