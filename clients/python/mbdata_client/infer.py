"""Inference (schemas/serve-protocol.md, § inference): batches leased in `mode=infer`, and
the submission of each batch's outputs (POST /v1/cursors/{id}/outputs), which commits
them and the batch's completion in one transaction on the daemon.

Retries follow the protocol: a connection failure or a `503` sends the same submission
again under the same lease; if the first one had committed, the retry is answered
`409 already_done`, which counts as success for a retry only. `409 lease_expired` raises:
the batch has gone (or will go) to another consumer.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Iterator, Optional, Union

import numpy as np

from . import wire
from .batch import Batch, SubmittedLease
from .errors import MBDataError, ProtocolError
from .outputs import (
    LZ4_MIN_BYTES,
    SAFETENSORS_LZ4_TYPE,
    SAFETENSORS_TYPE,
    encode_safetensors,
    frame_if_smaller,
    lz4_frame,
    output_arrays,
)
from .plan import TAILS
from .protocol import cursor_path
from .share import leased_batches
from .transport import Transport

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Submitter", "infer_query", "inference_batches"]

#: The lease header of a submission.
LEASE_HEADER = "MBData-Lease"


def infer_query(
    output: str, batch_size: int, split: Optional[str] = None, seed: int = 0, shuffle: bool = False,
    tail: str = "pad", lease_seconds: Optional[int] = None,
) -> dict:
    """The query of an infer lease (or, without `lease_seconds`, of its job's cursor). The
    plan parameters infer mode fixes (world, rank, epoch, group, replica, start) are left
    out: the daemon refuses other values."""
    if tail not in TAILS:
        raise ValueError(f"tail must be one of {TAILS}, got {tail!r}")
    if not output:
        raise ValueError("output must name an output of the dataset")
    query = {
        "mode": "infer",
        "output": output,
        "batch_size": int(batch_size),
        "seed": int(seed),
        "shuffle": "true" if shuffle else "false",
        "tail": tail,
    }
    if lease_seconds is not None:
        query["lease_seconds"] = int(lease_seconds)
    if split is not None:
        query["split"] = split
    return query


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Submitter:
    """Sends the outputs of inference batches to one daemon. `compress`: True frames
    every body in LZ4, False none, None (auto) those of at least `LZ4_MIN_BYTES` when the
    daemon is not on this machine and the frame is at least a tenth smaller."""

    def __init__(self, transport: Transport, compress: Optional[bool] = None):
        self._transport = transport
        self.compress = compress

    def body(self, batch: Batch, outputs: Mapping[str, Any]) -> tuple[bytes, str]:
        """(body, content type) of a submission: `outputs` plus the batch's `_id` (unless
        given) as safetensors, LZ4-framed per `compress`."""
        arrays = output_arrays(outputs)
        if "_id" not in arrays:
            arrays["_id"] = (np.ascontiguousarray(batch.ids, dtype=np.int64), "I64")
        buffer = encode_safetensors(arrays)
        if self.compress is True:
            return lz4_frame(buffer), SAFETENSORS_LZ4_TYPE
        if self.compress is None and len(buffer) >= LZ4_MIN_BYTES and not _is_loopback(self._transport.host):
            frame = frame_if_smaller(buffer)
            if frame is not None:
                return frame, SAFETENSORS_LZ4_TYPE
        return buffer, SAFETENSORS_TYPE

    def submit(self, batch: Batch, outputs: Mapping[str, Any]) -> dict:
        """POST /v1/cursors/{id}/outputs under the batch's lease → the daemon's answer
        `{"cursor", "batch", "rows", "finished", "batches"}`; after a retry that found the
        first attempt committed, `{"cursor", "batch", "rows", "already_done": True}`."""
        return self.send(batch, *self.body(batch, outputs))

    def send(self, batch: Union[Batch, SubmittedLease], body: bytes, content_type: str) -> dict:
        """`submit` of a body `body()` made, for `batch` or a queued batch's lease."""
        resent = False

        def note_resend() -> None:
            nonlocal resent
            resent = True

        path = cursor_path(batch.cursor, "outputs")
        headers = {"Content-Type": content_type, LEASE_HEADER: str(batch.lease)}
        try:
            _, _, data = self._transport.request("POST", path, body=body, headers=headers, on_resend=note_resend)
        except MBDataError as error:
            if resent and error.status == 409 and error.code == "already_done":
                return {"cursor": batch.cursor, "batch": batch.index, "rows": batch.samples, "already_done": True}
            raise
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise ProtocolError(f"POST {path}: response is not JSON ({error})") from None


def inference_batches(
    client: "Client", transport: Transport, dataset: str, query: dict, cap: float, submitter: Submitter,
    lease_ahead: int = 0,
) -> Iterator[Batch]:
    """The batches of an infer lease loop, each able to `submit` through `submitter`,
    leased `lease_ahead` ahead of the consumer."""

    def make_batch(message: wire.Message, cursor: str) -> Batch:
        return Batch(client, message, cursor, "infer", submitter=submitter)

    return leased_batches(client, transport, dataset, query, cap, make_batch, lease_ahead)
