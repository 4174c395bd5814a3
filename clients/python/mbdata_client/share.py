"""Leasing (POST /v1/datasets/{name}/lease in a loop): one leased batch per request, for
work sharing (`mode=share`) and inference (`mode=infer`) alike."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Iterator

from . import wire
from .batch import Batch
from .errors import MBDataError, ProtocolError
from .prefetch import ahead
from .protocol import StreamEnd, dataset_path, stream_cursor, stream_failure
from .transport import Transport

if TYPE_CHECKING:
    from .client import Client

__all__ = ["leased_batches", "leases"]


def leases(client: "Client", transport: Transport, dataset: str, query: dict, cap: float) -> Iterator[tuple[wire.Message, str]]:
    """(batch message, cursor id) of each batch leased with `query`, one at a time, until
    the daemon says every batch is done. A `204` (every remaining batch leased to someone
    else) is asked again after Retry-After, capped at `cap` seconds; after an end message
    `draining` the next daemon is asked (`Transport.tries`). A lease request that fails on
    one daemon goes to the next as any request does: leases are asked for again there,
    and a lease the failed daemon granted expires unacked."""
    path = dataset_path(dataset, "lease")
    tries = transport.tries(f"POST {path}")
    while True:
        endpoint, status, headers, body = transport.exchange("POST", path, query, ok=(200, 204))
        if status == 204:
            client.flush()  # this consumer's own queued acks may be what the others wait on
            try:
                wait = float(headers.get("retry-after", cap))
            except ValueError:
                wait = cap
            time.sleep(max(0.0, min(wait, cap)))
            continue
        cursor = stream_cursor(f"POST {path}", headers)
        client._opened(headers, cursor)
        messages = wire.parse_messages(body)
        if len(messages) != 1:
            raise ProtocolError(f"POST {path}: {len(messages)} messages in a lease answer, expected 1")
        message = messages[0]
        if message.kind == wire.KIND_BATCH:
            if message.lease == 0:
                raise ProtocolError(f"POST {path}: leased batch {message.batch} has lease 0")
            tries = transport.tries(f"POST {path}")
            client._check()
            yield message, cursor
        elif message.kind == wire.KIND_END:
            if StreamEnd.of(message).complete:
                client.flush()
                return
            # draining: the daemon is going away; ask the next one (or its successor)
            if not tries.failed(endpoint, MBDataError(None, "draining", "the lease answer ended with reason 'draining'")):
                raise tries.error()
        else:
            raise stream_failure(message)


def leased_batches(
    client: "Client", transport: Transport, dataset: str, query: dict, cap: float,
    make_batch: Callable[[wire.Message, str], Batch] | None = None, lease_ahead: int = 0,
) -> Iterator[Batch]:
    """The batches `leases` yields, each made by `make_batch(message, cursor)` — by
    default a share-mode `Batch`; with `lease_ahead` above 0, leased by a thread of their
    own that many ahead of the consumer (`prefetch.ahead`)."""
    for message, cursor in ahead(leases(client, transport, dataset, query, cap), lease_ahead):
        yield make_batch(message, cursor) if make_batch is not None else Batch(client, message, cursor, "share")
