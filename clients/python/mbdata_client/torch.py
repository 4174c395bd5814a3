"""PyTorch adapters of the mbdata client (needs `torch`; the rest of the package does not).

    from torch.utils.data import DataLoader
    from mbdata_client.torch import MBDataIterableDataset

    data = MBDataIterableDataset("http://127.0.0.1:7070", "digits", batch_size=64, split="train")
    loader = DataLoader(data, batch_size=None, num_workers=2)   # each item is one server batch
    for epoch in range(10):
        data.set_epoch(epoch)
        for item in loader:
            x, y = item["image"], item["label"]          # torch tensors
            ...

Sharding. `rank`/`world` come from RANK / WORLD_SIZE (torchrun) unless given. With a
DataLoader of `n` workers, worker `w` of rank `r` reads the partition stream of effective
rank `r·n + w` in a world of `W·n`, so the ranks' and workers' streams are disjoint and
together cover the epoch. The global batch size must therefore be divisible by `W·n`, and
each item holds `batch_size / (W·n)` samples. Use `DataLoader(batch_size=None)`: the
server already batched.

Acks. `ack="on_next"` (default) acks an item when the iterator that produced it is asked
for the next one, and the last one when the stream ends. Without workers that is after the
training step consumed it; with workers the DataLoader prefetches (`prefetch_factor` items
per worker), so an ack can precede the step by that many items. `ack="manual"` acks
nothing: call `dataset.ack(item)` after the optimizer step (from the main process), which
is exact with any number of workers. `ack="none"` never acks (evaluation).

Several daemons. `url` may list several daemons that share one state (a list, or
comma-separated; None reads $MBDATA_URLS): each worker's Client fails over as `Client` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Iterator, Optional, Union

try:
    import torch
    from torch.utils.data import IterableDataset, get_worker_info
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("mbdata_client.torch needs PyTorch (pip install torch)") from error

from .client import Batch, Client, rank_and_world

__all__ = ["MBDataIterableDataset", "to_torch", "META_KEY"]

#: The key of each item's provenance: {"cursor", "epoch", "batch", "rank", "samples"}.
META_KEY = "_mbdata"
_ACK_MODES = ("on_next", "manual", "none")


def to_torch(batch: Batch, meta: bool = True) -> dict[str, Any]:
    """A batch as a dict of torch tensors (sharing memory with the numpy arrays), plus
    its provenance under `META_KEY` when `meta`."""
    item: dict[str, Any] = {name: torch.from_numpy(array) for name, array in batch.items()}
    if meta:
        item[META_KEY] = {
            "cursor": batch.cursor,
            "epoch": batch.epoch,
            "batch": batch.index,
            "rank": batch.rank,
            "samples": batch.samples,
        }
    return item


class MBDataIterableDataset(IterableDataset):
    """The batches of one epoch of an `mbdata serve` partition stream, as dicts of torch
    tensors; see the module documentation for sharding across ranks and DataLoader
    workers and for when acks are sent."""

    def __init__(
        self,
        url: Union[str, Sequence[str], None],
        dataset: str,
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
        client_options: Optional[dict] = None,
        pack: Optional[dict] = None,
    ):
        super().__init__()
        if ack not in _ACK_MODES:
            raise ValueError(f"ack must be one of {_ACK_MODES}, got {ack!r}")
        self.url = url
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.epoch = int(epoch)
        self.seed = int(seed)
        self.split = split
        self.tail = tail
        self.shuffle = shuffle
        self.group = group
        self.token = token
        self.rank, self.world = rank_and_world(rank, world)
        self.ack_mode = ack
        self.pack = None if pack is None else dict(pack)
        self.client_options = dict(client_options or {})
        self._client: Optional[Client] = None  # the main process's, for ack(item)

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration streams (like DistributedSampler.set_epoch)."""
        self.epoch = int(epoch)

    def worker_rank_and_world(self) -> tuple[int, int]:
        """(effective rank, effective world) of the calling DataLoader worker."""
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        world = self.world * workers
        if self.batch_size % world:
            raise ValueError(
                f"batch_size {self.batch_size} is not divisible by world {self.world} × "
                f"{workers} DataLoader workers = {world}"
            )
        return self.rank * workers + worker, world

    def _new_client(self) -> Client:
        return Client(self.url, self.token, **self.client_options)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, world = self.worker_rank_and_world()
        client = self._new_client()
        stream = client.batches(
            self.dataset, self.batch_size, epoch=self.epoch, seed=self.seed, rank=rank, world=world,
            group=self.group, split=self.split, tail=self.tail, shuffle=self.shuffle, pack=self.pack,
        )
        previous: Optional[Batch] = None
        try:
            for batch in stream:
                if previous is not None and self.ack_mode == "on_next":
                    previous.ack(wait=False)
                previous = batch
                yield to_torch(batch)
            if previous is not None and self.ack_mode == "on_next":
                previous.ack(wait=False)
        finally:
            stream.close()
            client.close()

    def ack(self, item: dict[str, Any]) -> dict:
        """Acks the server batch an item came from (for `ack="manual"`); returns the
        cursor's new state."""
        meta = item[META_KEY]
        if self._client is None:
            self._client = self._new_client()
        return self._client.ack(meta["cursor"], int(meta["epoch"]), [int(meta["batch"])])
