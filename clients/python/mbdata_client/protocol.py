"""The daemon's HTTP vocabulary in one place (schemas/serve-protocol.md): its routes, the
JSON documents the client writes (ack bodies) and reads (cursor states, end and error
payloads, the error envelope), and the headers of a batch stream. The binary messages
themselves are `wire`'s."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union
from urllib.parse import quote

from . import wire
from .errors import MBDataError, ProtocolError, StreamFailedError

__all__ = [
    "STREAM_CONTENT_TYPE",
    "StreamEnd",
    "acked_batches",
    "batch_acks",
    "check_resume",
    "cursor_of",
    "cursor_path",
    "dataset_path",
    "error_from_response",
    "lease_acks",
    "stream_cursor",
    "stream_failure",
]

#: The content type of a batch stream or lease answer (§4).
STREAM_CONTENT_TYPE = "application/vnd.mbdata.stream"

# --- routes -----------------------------------------------------------------------------


def dataset_path(name: Optional[str], resource: str = "") -> str:
    """/v1/datasets/{name}[/resource] (batches, lease, cursor); for None, a mixture's
    /v1/mixture/{resource} (its sources are in the query's `mix`)."""
    path = "/v1/mixture" if name is None else f"/v1/datasets/{quote(name, safe='')}"
    return f"{path}/{resource}" if resource else path


def cursor_path(cursor_id: str, resource: str = "") -> str:
    """/v1/cursors/{id}[/resource] (acks)."""
    path = f"/v1/cursors/{quote(cursor_id, safe='')}"
    return f"{path}/{resource}" if resource else path


# --- ack bodies (§2) --------------------------------------------------------------------


def batch_acks(epoch: int, batches: Iterable[int]) -> dict:
    """The ack body of a partition or replicate cursor: `{"epoch": e, "batches": [b, …]}`."""
    return {"epoch": int(epoch), "batches": [int(batch) for batch in batches]}


def lease_acks(leases: Iterable[int]) -> dict:
    """The ack body of a share cursor: `{"leases": [l, …]}`."""
    return {"leases": [int(lease) for lease in leases]}


# --- cursor states (§2) -----------------------------------------------------------------


def cursor_of(state_or_id: Union[dict, str]) -> str:
    """The cursor id of a cursor state, or the id itself."""
    if isinstance(state_or_id, str):
        return state_or_id
    if isinstance(state_or_id, Mapping) and isinstance(state_or_id.get("cursor"), str):
        return state_or_id["cursor"]
    raise ValueError("expected a cursor id or a cursor state with a 'cursor' key")


def acked_batches(state: dict, epoch: int) -> set[int]:
    """The batch indices a cursor state (as `Client.cursor()` returns it) records as acked
    in `epoch`."""
    for record in state.get("epochs", []):
        if record.get("epoch") == epoch:
            return set(range(int(record.get("low_watermark", 0)))) | {int(b) for b in record.get("acked_above", [])}
    return set()


def check_resume(state: dict, *, dataset: str, group: str, mode: str, rank: int, replica: int, query: dict) -> None:
    """Refuses to resume from a state saved for another stream than the one `query` (a
    `plan.plan_query`) names."""
    cursor_of(state)
    mismatches = []

    def compare(name, saved, asked):
        if saved != asked:
            mismatches.append(f"{name}: saved {saved!r}, asked {asked!r}")

    for name, asked in (("dataset", dataset), ("group", group), ("mode", mode), ("rank", rank)):
        if name in state:
            compare(name, state[name], asked)
    if mode == "replicate" and "replica" in state:
        compare("replica", state["replica"], replica)
    plan = state.get("plan") or {}
    for name in ("seed", "batch_size", "world"):
        if name in plan:
            compare(name, int(plan[name]), int(query[name]))
    if "tail" in plan:
        compare("tail", plan["tail"], query["tail"])
    if "shuffle" in plan:
        compare("shuffle", bool(plan["shuffle"]), query["shuffle"] == "true")
    if plan:
        compare("split", plan.get("split"), query.get("split"))
    packing = state.get("packing")
    saved_pack = None if packing is None else f"{packing.get('field')}:{packing.get('row_length')}"
    compare("pack", saved_pack, query.get("pack"))
    if packing is not None and "pack" in query:
        compare("pack_window", packing.get("window"), query.get("pack_window", packing.get("window")))
        compare("pack_overlong", packing.get("overlong"), query.get("pack_overlong", "split"))
    if mismatches:
        raise ValueError("resume state belongs to another stream: " + "; ".join(mismatches))


# --- errors (§4, §5) --------------------------------------------------------------------


def _error_fields(document: Any, default_code: str) -> Optional[tuple[str, str, Optional[str]]]:
    """(code, message, field) of an error envelope `{"error": {"code", "message",
    "field"?}}`; None when `document` is not one."""
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict):
        return None
    field = error.get("field")
    return str(error.get("code", default_code)), str(error.get("message", "")), field if isinstance(field, str) else None


def error_from_response(status: int, body: bytes, context: str) -> MBDataError:
    """The `MBDataError` of an error answer: its envelope's code, message and field, else
    `http_{status}` and the start of the body."""
    code, message, field = f"http_{status}", "", None
    try:
        fields = _error_fields(json.loads(body.decode("utf-8")), code)
        if fields is not None:
            code, message, field = fields
        else:
            message = body.decode("utf-8", "replace")[:500]
    except (UnicodeDecodeError, ValueError):
        message = body.decode("utf-8", "replace")[:500]
    return MBDataError(status, code, f"{message} ({context})" if message else context, field)


def stream_failure(message: wire.Message) -> StreamFailedError:
    """The error an error message (kind 3) of a started stream reports."""
    code, text, field = _error_fields(message.json(), "stream_error") or ("stream_error", "", None)
    return StreamFailedError(200, code, text, field)


# --- batch streams (§4) -----------------------------------------------------------------


@dataclass(frozen=True)
class StreamEnd:
    """The payload of an end message: `{"reason": "complete" | "draining", "sent": n}`."""

    reason: Optional[str]

    @classmethod
    def of(cls, message: wire.Message) -> "StreamEnd":
        return cls(message.json().get("reason"))

    @property
    def complete(self) -> bool:
        """Whether the stream (or share-mode epoch) has sent everything."""
        return self.reason == "complete"


def stream_cursor(context: str, headers: Mapping[str, str]) -> str:
    """The cursor id of a batch stream or lease answer, after checking its content type;
    `headers` has lower-case names."""
    content_type = headers.get("content-type", "").split(";")[0].strip()
    if content_type != STREAM_CONTENT_TYPE:
        raise ProtocolError(f"{context}: content type {content_type!r}, expected {STREAM_CONTENT_TYPE}")
    cursor = headers.get("mbdata-cursor")
    if not cursor:
        raise ProtocolError(f"{context}: no MBData-Cursor header")
    return cursor
