"""One batch of a stream, as the consumer sees it: tensors by name, provenance, `ack()` —
or, for an inference batch, `submit(outputs)`."""

from __future__ import annotations

import json
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

import numpy as np

from . import wire
from .errors import MBDataError, ProtocolError

if TYPE_CHECKING:
    from .client import Client
    from .infer import Submitter

__all__ = ["Batch"]


class SubmittedLease(NamedTuple):
    """What a submission needs of its batch: where it goes and under which lease."""

    cursor: str
    lease: int
    index: int
    samples: int

    @staticmethod
    def of(batch: "Batch") -> "SubmittedLease":
        return SubmittedLease(batch.cursor, batch.lease, batch.index, batch.samples)


class Batch(Mapping):
    """One batch of a stream: a read-only mapping of tensor name → numpy array (the
    schema's fields, `_id`, `_valid` under tail=pad, `name.offsets` for variable fields),
    plus where it came from. `ack()` acknowledges it to the daemon; an inference batch
    (`Client.infer`, mode "infer") is acknowledged by `submit(outputs)` instead."""

    def __init__(
        self, client: "Client", message: wire.Message, cursor: str, mode: str, submitter: Optional["Submitter"] = None
    ):
        self._client = client
        self._submitter = submitter
        self.tensors, self._metadata = wire.decode_tensors(message, client._buffers)
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
        #: The daemon's answer to `submit()` once it succeeded.
        self.submitted: Optional[dict] = None

    def __getitem__(self, name: str) -> np.ndarray:
        return self.tensors[name]

    def __iter__(self):
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    @property
    def metadata(self) -> dict:
        """The safetensors `__metadata__` (format, epoch, batch, rank)."""
        return self._metadata

    @property
    def sources(self) -> Optional[list[str]]:
        """A mixture batch's source names, indexed by its `_source` tensor (int32 `[B]`,
        −1 on padding rows); None for a batch of one dataset."""
        names = self.metadata.get("sources")
        return None if names is None else json.loads(names)

    @property
    def ids(self) -> np.ndarray:
        """The rows' sample ids (`_id`); −1 on padding rows. A packed batch's `_id` is
        `[rows, segments]`: the sample of each segment, −1 after a row's last segment."""
        return self.tensors["_id"]

    @property
    def valid(self) -> np.ndarray:
        """True on real rows, False on padding rows."""
        if "_valid" in self.tensors:
            return self.tensors["_valid"].astype(bool)
        return self.ids >= 0

    def ack(self, wait: Optional[bool] = None) -> Optional[dict]:
        """Acknowledges the batch (POST /v1/cursors/{id}/acks): the trainer is done with it.

        By default (`wait=None`, with the Client's `ack_window` above 0) the ack is queued
        and this returns None at once: a background thread sends the queued acks together,
        one request per cursor and epoch, while the next batches arrive. At most
        `ack_window` acks wait unsent — `ack()` blocks while that many do — and every
        queued ack is on the daemon before the stream's loop ends, before `cursor()` or
        `plan_cursor()` reads a state, before a reconnect reopens the stream, and when
        `flush()` or `close()` returns; an error one of them met (e.g. `lease_expired`)
        is raised by the next of these calls, the next `ack()` or the loop's next batch.
        A process that dies loses at most the acks still queued: those batches come
        again, none is skipped. `wait=True` sends this ack now, after the queued ones, and
        returns the cursor's new state; `wait=False` always queues.

        Acking twice is harmless; in share mode an expired lease raises `MBDataError`
        with code `lease_expired` (status 409). An inference batch cannot be acked (code
        `wrong_mode`): `submit` its outputs."""
        if self.mode == "infer":
            raise MBDataError(None, "wrong_mode", f"batch {self.index} is an inference batch: submit(outputs) acknowledges it")
        if wait is None:
            wait = self._client.ack_window <= 0
        if not wait:
            self._client._acks.add(self.cursor, self.epoch, self.lease if self.mode == "share" else None, self.index)
            self.acked = True
            return None
        self._client.flush()
        if self.mode == "share":
            state = self._client.ack_leases(self.cursor, [self.lease])
        else:
            state = self._client.ack(self.cursor, self.epoch, [self.index])
        self.acked = True
        return state

    def submit(self, outputs: dict[str, Any], wait: Optional[bool] = None) -> Optional[dict]:
        """Sends the outputs of an inference batch (POST /v1/cursors/{id}/outputs); the
        daemon commits them and the batch's completion in one transaction before it
        answers `{"cursor", "batch", "rows", "finished", "batches"}`.

        By default (`wait=None`, with the Client's `submit_window` 0) this waits for that
        answer and returns it. With `wait=False`, or `wait=None` and a `submit_window`
        above 0, the outputs are encoded now (the arrays may be reused as soon as this
        returns), the submission is queued and this returns None: a background thread sends
        the queued submissions in order while the next batch is leased and computed, and
        sets each batch's `submitted` when its answer comes. At most `submit_window` (at
        least 1) are queued or in flight — `submit` blocks while that many are. Every queued
        submission is answered before the loop ends and when `flush()` or `close()`
        returns; an error one met is raised, once, by the next `submit`, the loop's next
        batch, `flush()` or `close()` — a queued submission's refusal therefore reaches the
        caller one or more batches later. A process that dies loses only submissions not yet
        committed: their leases expire and the batches are leased again.

        `outputs` maps each field of the output's schema to an array of one row per row of
        the batch, padding rows included (`len(batch.ids)` rows; they are not written):
        numpy arrays, or torch tensors, which are detached, moved to the CPU and made
        contiguous (torch is not imported otherwise). Dtypes must be the schema's exactly.
        `_id` is added from the batch unless given.

        Connection failures and `503` are retried under the same lease; a retry answered
        `409 already_done` means the first attempt committed, and returns
        `{"cursor", "batch", "rows", "already_done": True}`. Errors raise `MBDataError`:
        `lease_expired` (409; the lease ran out or the daemon restarted — nothing was
        written, and the batch goes to another consumer), `already_done` (409; its outputs
        were committed by someone else), `invalid_outputs` (400, `field` names the tensor:
        missing, unknown, wrong dtype or shape, `_id`s not the batch's). A batch of any
        other mode raises `MBDataError` code `wrong_mode` without a request."""
        if self.mode != "infer" or self._submitter is None:
            raise MBDataError(
                None, "wrong_mode", f"batch {self.index} is a {self.mode} batch: only Client.infer() batches take outputs"
            )
        if wait is None:
            wait = self._client.submit_window <= 0
        if wait:
            self._client._submissions.check()
            self.submitted = self._submitter.submit(self, outputs)
            self.acked = True
            return self.submitted
        body, content_type = self._submitter.body(self, outputs)
        # The queue holds neither the batch nor its tensors: their buffer goes back to the
        # pool as soon as the trainer lets go of them.
        submitter, lease, batch = self._submitter, SubmittedLease.of(self), weakref.ref(self)

        def answered(answer: dict) -> None:
            if (still := batch()) is not None:
                still.submitted = answer

        self._client._submissions.add(lambda: submitter.send(lease, body, content_type), answered)
        self.acked = True
        return None

    def __repr__(self) -> str:
        lease = f", lease={self.lease}" if self.lease else ""
        return (
            f"Batch(epoch={self.epoch}, index={self.index}, rank={self.rank}, samples={self.samples}{lease}, "
            f"tensors={sorted(self.tensors)})"
        )
