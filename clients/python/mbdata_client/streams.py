"""Partition and replicate streams (GET /v1/datasets/{name}/batches): one long response
of messages, read ahead of the consumer, reconnected after a cut or `draining`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Iterator, Optional, Union

from . import localframes, wire
from .batch import Batch
from .errors import MBDataError, StreamCutError
from .prefetch import ahead
from .protocol import StreamEnd, dataset_path, stream_failure
from .transport import CONNECTION_ERRORS, Transport

if TYPE_CHECKING:
    from .client import Client

__all__ = ["REMOTE_PREFETCH", "batch_stream"]

#: Batches a stream reads ahead of its consumer by default (`Client(prefetch=None)`) when
#: its frames come through the socket.
REMOTE_PREFETCH = 2
#: Native threads that read a stream's local frames ahead of its consumer by default.
LOCAL_READERS = 2


def default_prefetch(headers: dict[str, str]) -> int:
    """How many batches a stream reads ahead by default, from its response headers: none
    when the daemon delivers its frames as places in its spool files (local delivery: a
    `pread` and a checksum, which a hand-off between two Python threads costs more than it
    hides; native threads read those frames ahead, `localframes.read_ahead`), else
    `REMOTE_PREFETCH` (the socket's reads and the daemon's live reads overlap the step)."""
    local = headers.get("mbdata-delivery") == "local" and headers.get("mbdata-source") == "spool"
    return 0 if local else REMOTE_PREFETCH

#: Retries of `409 cursor_busy` when a stream is first opened (its previous stream may not
#: have closed on the daemon yet); a reconnect retries it as often as anything else.
BUSY_RETRIES = 3


def batch_stream(
    client: "Client", transport: Transport, dataset: str, query: dict, mode: str, resume: Optional[dict]
) -> Iterator[Batch]:
    """The batches of the stream `query` names, until its end message says complete. A
    stream that is cut, ends `draining`, or cannot be opened (connection failure, `503`) is
    opened again on the next daemon (`Transport.tries`: at once, then after the backoff
    once every daemon failed in a round), and the daemon resumes it from the cursor; the
    acks queued meanwhile are sent first, so that nothing acked comes again. `409
    cursor_busy` is retried on the same daemon. With `resume`, that state is PUT first."""
    path = dataset_path(dataset, "batches")
    if resume is not None:
        client.put_cursor(resume)
    tries = transport.tries(f"GET {path}")
    reconnecting = False
    while True:
        endpoint = transport.current
        cause: Optional[Union[str, BaseException]] = None
        move = True
        local = client.local_files and localframes.wanted(endpoint.url)
        try:
            connection, response, headers, cursor = transport.open_stream(
                endpoint, "GET", path, dict(query, delivery="local") if local else query
            )
        except CONNECTION_ERRORS as error:
            cause = error
        except MBDataError as error:
            busy_retries = transport.retries if reconnecting else min(BUSY_RETRIES, transport.retries)
            busy = error.code == "cursor_busy" and tries.rounds < busy_retries
            if not (error.status == 503 or busy):
                raise
            cause, move = error, not busy
        if cause is None:
            client._opened(headers, cursor)
            if resume is not None and cursor != resume.get("cursor"):
                response.close()
                connection.close()
                raise MBDataError(
                    None, "cursor_mismatch", f"resumed cursor {resume.get('cursor')!r}, but the stream uses {cursor!r}"
                )
            # By default frames the daemon delivers locally are read ahead on native reader
            # threads (where the client's native module is built); an explicit prefetch
            # reads them on a stream thread (above 0) or on the consumer's thread (0).
            delivered_locally = headers.get("mbdata-delivery") == "local"
            files = localframes.LocalFiles(LOCAL_READERS if delivered_locally and client.prefetch is None else 0) if local else None
            fallback = False
            # A local stream's messages are a few hundred bytes each, many to a chunk.
            read1 = response.read1 if delivered_locally else None
            messages = wire.MessageReader(response.readinto, client._buffers, files, read1)
            decoded = (
                Batch(client, message, cursor, mode) if message.kind == wire.KIND_BATCH else message
                for message in (localframes.read_ahead(messages) if files is not None and files.reads_ahead else messages)
            )
            try:
                depth = client.prefetch if client.prefetch is not None else default_prefetch(headers)
                for message in ahead(decoded, depth):
                    if isinstance(message, Batch):
                        if tries.failures:  # a batch came: the next cut starts its tries afresh
                            tries = transport.tries(f"GET {path}")
                        else:
                            tries.restart()
                        client._check()
                        yield message
                    elif message.kind == wire.KIND_END:
                        end = StreamEnd.of(message)
                        if end.complete:
                            client.flush()
                            return
                        cause = f"stream ended with reason {end.reason!r}"
                        break
                    else:
                        raise stream_failure(message)
                else:
                    cause = "stream ended without an end message"
            except localframes.LocalFilesUnavailable as error:
                # This process cannot read the daemon's shard files: the same stream again,
                # its bytes through the socket, once the acks queued so far are on the
                # daemon (so that no batch acked comes again).
                client.local_files = False
                client.stream_fallbacks.append(error.message)
                fallback = True
            except StreamCutError as error:
                cause = str(error)
            except (*CONNECTION_ERRORS, ValueError) as error:
                cause = f"connection lost: {error!r}"
            finally:
                response.close()
                connection.close()
                if files is not None:
                    files.close()
            if fallback:
                client.flush()
                continue
        if not tries.failed(endpoint, cause, move=move):
            if isinstance(cause, MBDataError) and cause.status != 503:
                raise cause
            error = tries.error()
            if isinstance(cause, str):  # the last try was cut, not refused
                raise StreamCutError(error.message)
            raise error
        # A cut stream or a failed daemon, not a busy cursor: a claim it held may take a while to lapse.
        reconnecting = reconnecting or move
        client.reconnects += 1
        # Acks queued before the cut reach the cursor before the stream reopens from it.
        client.flush()
