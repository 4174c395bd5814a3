"""One batch of a stream, as the consumer sees it: tensors by name, provenance, `ack()`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Optional

import numpy as np

from . import wire
from .errors import ProtocolError

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Batch"]


class Batch(Mapping):
    """One batch of a stream: a read-only mapping of tensor name → numpy array (the
    schema's fields, `_id`, `_valid` under tail=pad, `name.offsets` for variable fields),
    plus where it came from. `ack()` acknowledges it to the daemon."""

    def __init__(self, client: "Client", message: wire.Message, cursor: str, mode: str):
        self._client = client
        self.tensors, self._header = wire.decode_tensors(message)
        if "_id" not in self.tensors:
            raise ProtocolError(f"batch {message.batch} has no _id tensor")
        self.epoch = message.epoch
        self.index = message.batch
        self.rank = message.rank
        self.samples = message.samples
        self.lease = message.lease
        self.cursor = cursor
        self.mode = mode
        self.compressed_bytes = message.length
        self.uncompressed_bytes = message.uncompressed
        self.acked = False

    def __getitem__(self, name: str) -> np.ndarray:
        return self.tensors[name]

    def __iter__(self):
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    @property
    def metadata(self) -> dict:
        """The safetensors `__metadata__` (format, epoch, batch, rank), parsed on first use."""
        if isinstance(self._header, bytes):
            self._header = wire.safetensors_metadata(self._header)
        return self._header

    @property
    def ids(self) -> np.ndarray:
        """The rows' sample ids (`_id`); −1 on padding rows."""
        return self.tensors["_id"]

    @property
    def valid(self) -> np.ndarray:
        """True on real rows, False on padding rows."""
        if "_valid" in self.tensors:
            return self.tensors["_valid"].astype(bool)
        return self.ids >= 0

    def ack(self, wait: bool = True) -> Optional[dict]:
        """Acknowledges the batch (POST /v1/cursors/{id}/acks).

        With `wait` (the default) the ack is sent now and the cursor's new state returned.
        `wait=False` queues it and returns at once: a background thread sends queued acks
        together, one request per cursor and epoch, and `Client.flush()` — which
        `cursor()` and the end of a stream call — waits until they are on the daemon. An
        ack still queued when the process dies is lost, so that batch is delivered again:
        at most the acks of the last moments, never a batch skipped. Acking twice is
        harmless; in share mode an expired lease raises `MBDataError` with code
        `lease_expired` (status 409) — from `ack()`, or from the next `flush()`."""
        if not wait:
            self._client._acks.add(self.cursor, self.epoch, self.lease if self.mode == "share" else None, self.index)
            self.acked = True
            return None
        if self.mode == "share":
            state = self._client.ack_leases(self.cursor, [self.lease])
        else:
            state = self._client.ack(self.cursor, self.epoch, [self.index])
        self.acked = True
        return state

    def __repr__(self) -> str:
        lease = f", lease={self.lease}" if self.lease else ""
        return (
            f"Batch(epoch={self.epoch}, index={self.index}, rank={self.rank}, samples={self.samples}{lease}, "
            f"tensors={sorted(self.tensors)})"
        )
