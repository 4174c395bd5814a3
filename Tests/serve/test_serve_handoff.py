"""A DataLoader worker's items cross to the training process as the address of a
shared-memory segment (`handoff`): the tensors there view the worker's pages, and a
segment is decoded into again only once neither process refers to it."""

from __future__ import annotations

import copy
import gc
import io
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.multiprocessing  # noqa: E402,F401  (registers torch's reductions with ForkingPickler)
from multiprocessing.reduction import ForkingPickler  # noqa: E402

from mbdata_client import handoff, wire  # noqa: E402

pytestmark = pytest.mark.skipif(not handoff.supported(), reason="needs memfd and /proc (Linux)")


def decoded(pool: handoff.SegmentPool, index: int) -> dict[str, np.ndarray]:
    """A batch decoded into the pool, as a worker's client decodes it."""
    ids = np.arange(index * 4 + 1, index * 4 + 5, dtype=np.int64)
    message = wire.read_message(io.BytesIO(wire.encode_batch({"x": (ids * 10).astype(np.float32).reshape(4, 1), "_id": ids})).read)
    return wire.decode_tensors(message, pool)[0]


def segment(arrays: dict[str, np.ndarray]) -> int:
    """The address of the segment a decoded batch lies in."""
    return arrays["_id"].base.ctypes.data


def crossed(item: dict) -> dict:
    """The item as the training process gets it from a worker's queue."""
    return pickle.loads(ForkingPickler.dumps(item))


def test_an_item_crosses_as_its_segments_address_and_views_the_same_pages():
    pool = handoff.SegmentPool()
    arrays = decoded(pool, 0)
    item = pool.item(arrays, {"_mbdata": {"batch": 0}})
    assert isinstance(item, handoff.HandoffItem)
    assert len(ForkingPickler.dumps(item)) < 1024, "the tensors' bytes were pickled"
    received = crossed(item)
    assert received["_id"].tolist() == [1, 2, 3, 4] and received["x"].dtype == torch.float32
    assert received["_mbdata"] == {"batch": 0}
    assert not received["x"].is_shared(), "torch moved the tensor into a shared-memory segment of its own"
    arrays["x"][0, 0] = -1.0  # the worker's pages, seen through the training process's mapping
    assert received["x"][0, 0].item() == -1.0


def test_a_segment_is_reused_only_once_the_training_process_freed_its_tensors():
    pool = handoff.SegmentPool()
    arrays = decoded(pool, 0)
    first = segment(arrays)
    received = crossed(pool.item(arrays, {}))
    del arrays
    second = decoded(pool, 1)
    assert segment(second) != first, "a segment the training process still views was decoded into"
    assert received["_id"].tolist() == [1, 2, 3, 4]
    del second
    image = received["x"]
    del received
    gc.collect()
    assert segment(decoded(pool, 2)) != first, "a tensor of the item still views the segment"
    del image
    gc.collect()
    assert segment(decoded(pool, 3)) == first, "the freed segment is decoded into again"


def test_a_copied_item_hands_off_the_same_way():
    pool = handoff.SegmentPool()
    item = pool.item(decoded(pool, 0), {})
    clone = copy.copy(item)  # DataLoader's default_convert copies mappings
    assert isinstance(clone, handoff.HandoffItem)
    assert crossed(clone)["_id"].tolist() == [1, 2, 3, 4]


def test_arrays_outside_the_pool_cross_as_plain_tensors():
    pool = handoff.SegmentPool()
    item = pool.item({"x": np.arange(4)}, {"meta": 1})
    assert type(item) is dict and item["x"].tolist() == [0, 1, 2, 3] and item["meta"] == 1


def test_the_training_process_keeps_few_segments_mapped(monkeypatch):
    monkeypatch.setattr(handoff, "_MAPPED_BYTES_KEPT", 1)
    handoff._mappings.clear()
    pools = [handoff.SegmentPool() for _ in range(3)]  # three segments
    received = [crossed(pool.item(decoded(pool, i), {})) for i, pool in enumerate(pools)]
    assert [item["_id"].tolist()[0] for item in received] == [1, 5, 9]
    assert len(handoff._mappings) == 1, "segments beyond the byte budget stay mapped"
