"""PyTorch adapters of the mbdata client (needs `torch`; the rest of the package does not).

    from torch.utils.data import DataLoader
    from mbdata_client.torch import MBDataIterableDataset

    data = MBDataIterableDataset("http://127.0.0.1:7070", "digits", batch_size=64, split="train")
    loader = DataLoader(data, batch_size=None)       # each item is one server batch
    for epoch in range(10):
        data.set_epoch(epoch)                        # reaches persistent workers too
        for item in loader:
            x, y = item["image"], item["label"]          # torch tensors
            ...

Sharding. `rank`/`world` come from RANK / WORLD_SIZE (torchrun) unless given, and pick
this rank's partition of every global batch, as `Client.batches` does. The dataset reads
the rank's partition stream — the same plan, shard set and cursor whatever
`num_workers`: without workers in the training process (on the client's reader thread),
with workers in worker 0, the others ending at once (the daemon sends a rank's batches on
one stream; a second reader would only add a hand-off). Each item holds
`batch_size / W` samples. Use `DataLoader(batch_size=None)`: the server already batched.

Tensors. Each item's tensors are `torch.from_numpy` views of the decoded batch: no copy.
In a worker (Linux) the batch is decoded into a shared-memory segment of the worker's
and the item crosses to the training process as that segment's address (`handoff`), where
the tensors view the same pages: no copy either, where DataLoader would otherwise copy
every tensor into a new shared-memory segment. `pin_memory=True` returns page-locked
copies (CUDA only), for `tensor.to("cuda", non_blocking=True)`; DataLoader's own
`pin_memory=True` does the same on its pinning thread, after the hand-off (prefer it
with workers).

Acks. `ack="on_next"` (default) acks an item when the iterator that produced it is asked
for the next one, and the last one when the stream ends. Without workers that is after the
training step consumed it; with workers the DataLoader prefetches (`prefetch_factor` items
per worker), so an ack can precede the step by that many items. `ack="manual"` acks
nothing: call `dataset.ack(item)` after the optimizer step (from the main process), which
is exact with any number of workers. `ack="none"` never acks (evaluation). Acks are
queued and sent in the background (`Batch.ack`); the epoch's iteration ends only once
they are on the daemon.

Several daemons. `url` may list several daemons that share one state (a list, or
comma-separated; None reads $MBDATA_URLS): each worker's Client fails over as `Client` does.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from typing import Any, Iterator, Optional, Union

try:
    import torch
    from torch.utils.data import IterableDataset, get_worker_info
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("mbdata_client.torch needs PyTorch (pip install torch)") from error

from . import handoff
from .client import Batch, Client, rank_and_world

__all__ = ["MBDataIterableDataset", "to_torch", "META_KEY"]

#: The key of each item's provenance: {"cursor", "epoch", "batch", "rank", "samples", "lease"},
#: and a mixture's `"sources"` (the names its `_source` tensor indexes).
META_KEY = "_mbdata"
_ACK_MODES = ("on_next", "manual", "none")


def to_torch(batch: Batch, meta: bool = True, pin_memory: bool = False) -> dict[str, Any]:
    """A batch as a dict of torch tensors (sharing memory with the numpy arrays, or
    page-locked copies with `pin_memory`), plus its provenance under `META_KEY` when
    `meta`."""
    item: dict[str, Any] = {name: torch.from_numpy(array) for name, array in batch.items()}
    if pin_memory:
        item = {name: tensor.pin_memory() for name, tensor in item.items()}
    if meta:
        item[META_KEY] = provenance(batch)
    return item


def provenance(batch: Batch) -> dict[str, Any]:
    """A batch's provenance, as items carry it under `META_KEY`."""
    return {
        "cursor": batch.cursor,
        "epoch": batch.epoch,
        "batch": batch.index,
        "rank": batch.rank,
        "samples": batch.samples,
        "lease": batch.lease,
        **({} if batch.sources is None else {"sources": batch.sources}),
    }


def _nothing() -> Iterator[Batch]:
    """An empty stream (closable, as a generator is)."""
    yield from ()


class MBDataIterableDataset(IterableDataset):
    """The batches of one epoch of an `mbdata serve` partition stream, as dicts of torch
    tensors; see the module documentation for sharding across ranks and DataLoader
    workers and for when acks are sent. `dataset=None` with `mix={...}` (and
    `epoch_size`) reads a mixture, as `Client.batches` does."""

    def __init__(
        self,
        url: Union[str, Sequence[str], None],
        dataset: Optional[str],
        batch_size: int,
        epoch: int = 0,
        seed: int = 0,
        *,
        split: Optional[str] = None,
        tail: str = "drop",
        shuffle: bool = True,
        group: str = "default",
        token: Optional[str] = None,
        rank: Optional[int] = None,
        world: Optional[int] = None,
        ack: str = "on_next",
        pin_memory: bool = False,
        lease_seconds: int = 300,
        client_options: Optional[dict] = None,
        pack: Optional[dict] = None,
        mix: Optional[dict] = None,
        epoch_size: Optional[int] = None,
    ):
        super().__init__()
        if ack not in _ACK_MODES:
            raise ValueError(f"ack must be one of {_ACK_MODES}, got {ack!r}")
        self.url = url
        self.dataset = dataset
        self.batch_size = int(batch_size)
        # Shared with DataLoader workers (inherited when they fork, passed when they spawn), so
        # that set_epoch reaches persistent workers, which keep the copy of the dataset they
        # started with: with a plain attribute every epoch after the first read the first's
        # plan again, whose cursor was done, and came back empty.
        self._epoch = multiprocessing.Value("q", int(epoch), lock=False)
        self.seed = int(seed)
        self.split = split
        self.tail = tail
        self.shuffle = shuffle
        self.group = group
        self.token = token
        self.rank, self.world = rank_and_world(rank, world)
        self.ack_mode = ack
        self.pin_memory = bool(pin_memory)
        self.lease_seconds = int(lease_seconds)  # unused: kept for callers that pass it
        self.pack = None if pack is None else dict(pack)
        self.mix = None if mix is None else dict(mix)
        self.epoch_size = epoch_size
        self.client_options = dict(client_options or {})
        self._client: Optional[Client] = None  # the main process's, for ack(item)
        self._segments: Optional[tuple[int, handoff.SegmentPool]] = None  # a worker's (pid, pool)

    @property
    def epoch(self) -> int:
        """The epoch the next iteration streams."""
        return int(self._epoch.value)

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration streams (like DistributedSampler.set_epoch), in the
        training process and in DataLoader workers alike, persistent ones included."""
        self._epoch.value = int(epoch)

    def __getstate__(self) -> dict:
        # The shared epoch travels as itself only to a process being started (a spawned
        # worker); a copy made otherwise (pickle, deepcopy) gets an epoch of its own.
        state = dict(self.__dict__)
        if multiprocessing.context.get_spawning_popen() is None:
            state["_epoch"] = int(self._epoch.value)
        return state

    def __setstate__(self, state: dict) -> None:
        if isinstance(state["_epoch"], int):
            state["_epoch"] = multiprocessing.Value("q", state["_epoch"], lock=False)
        self.__dict__.update(state)

    def _new_client(self, **defaults: Any) -> Client:
        return Client(self.url, self.token, **{**defaults, **self.client_options})

    def _batches(self, client: Client) -> Iterator[Batch]:
        """The rank's partition stream, read by worker 0 alone when there are workers."""
        plan = dict(epoch=self.epoch, seed=self.seed, group=self.group, split=self.split, tail=self.tail,
                    shuffle=self.shuffle, rank=self.rank, world=self.world, pack=self.pack,
                    mix=self.mix, epoch_size=self.epoch_size)
        info = get_worker_info()
        if info is not None and info.id != 0:
            return _nothing()
        return client.batches(self.dataset, self.batch_size, **plan)

    def _segment_pool(self) -> Optional[handoff.SegmentPool]:
        """In a DataLoader worker, the process's shared-memory batch buffers (kept on the
        worker's copy of the dataset, so that persistent workers reuse them)."""
        if get_worker_info() is None or self.pin_memory or not handoff.supported():
            return None
        if self._segments is None or self._segments[0] != os.getpid():
            self._segments = (os.getpid(), handoff.SegmentPool())
        return self._segments[1]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # A worker is already ahead of the trainer (DataLoader's prefetch_factor): its client
        # reads on the worker's own thread, one thread hand-off fewer per batch.
        client = self._new_client(prefetch=0) if get_worker_info() is not None else self._new_client()
        segments = self._segment_pool()
        if segments is not None:
            client._buffers = segments
        stream = self._batches(client)
        try:
            for batch in stream:
                if segments is not None:
                    yield segments.item(batch.tensors, {META_KEY: provenance(batch)})
                else:
                    yield to_torch(batch, pin_memory=self.pin_memory)
                # asked for the next item: done with this one
                if self.ack_mode == "on_next":
                    batch.ack()
        finally:
            stream.close()
            client.close()

    def ack(self, item: dict[str, Any]) -> dict:
        """Acks the server batch an item came from (for `ack="manual"`); returns the
        cursor's new state."""
        meta = item[META_KEY]
        if self._client is None:
            self._client = self._new_client()
        if meta.get("lease"):
            return self._client.ack_leases(meta["cursor"], [int(meta["lease"])])
        return self._client.ack(meta["cursor"], int(meta["epoch"]), [int(meta["batch"])])
