"""A client of `mbdata serve` (schemas/serve-protocol.md) on the Python standard library's
http.client: one streaming connection per batch stream, one keep-alive connection for
everything else (acks, cursors, leases, dataset info)."""

from __future__ import annotations

import http.client
import json
import os
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any, Iterator, Optional, Union
from urllib.parse import quote, urlencode, urlsplit

import numpy as np

from . import allocator, wire
from .errors import MBDataError, ProtocolError, StreamCutError, StreamFailedError, UnavailableError

__all__ = ["Batch", "Client", "DEFAULT_URL", "STREAM_CONTENT_TYPE"]

DEFAULT_URL = "http://127.0.0.1:7070"
STREAM_CONTENT_TYPE = "application/vnd.mbdata.stream"
_TAILS = ("drop", "pad")
_MODES = ("partition", "replicate")
# Failures of a connection: refused, reset, closed early, timed out, a chunked body cut
# inside a chunk-size line (http.client raises ValueError there).
_CONNECTION_ERRORS = (OSError, http.client.HTTPException)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def rank_and_world(rank: Optional[int] = None, world: Optional[int] = None) -> tuple[int, int]:
    """`rank` and `world`, each taken from RANK / WORLD_SIZE (as torchrun sets them) when
    None, else 0 / 1."""
    rank = _env_int("RANK", 0) if rank is None else int(rank)
    world = _env_int("WORLD_SIZE", 1) if world is None else int(world)
    if world < 1:
        raise ValueError(f"world must be at least 1, got {world}")
    if not 0 <= rank < world:
        raise ValueError(f"rank must be in 0…{world - 1} for world {world}, got {rank}")
    return rank, world


def acked_batches(state: dict, epoch: int) -> set[int]:
    """The batch indices a cursor state (as `Client.cursor()` returns it) records as acked
    in `epoch`."""
    for record in state.get("epochs", []):
        if record.get("epoch") == epoch:
            return set(range(int(record.get("low_watermark", 0)))) | {int(b) for b in record.get("acked_above", [])}
    return set()


def _error_from_response(status: int, body: bytes, context: str) -> MBDataError:
    code, message = f"http_{status}", ""
    try:
        document = json.loads(body.decode("utf-8"))
        error = document.get("error") if isinstance(document, dict) else None
        if isinstance(error, dict):
            code = str(error.get("code", code))
            message = str(error.get("message", ""))
        else:
            message = body.decode("utf-8", "replace")[:500]
    except (UnicodeDecodeError, ValueError):
        message = body.decode("utf-8", "replace")[:500]
    return MBDataError(status, code, f"{message} ({context})" if message else context)


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


class Client:
    """A client of one `mbdata serve` daemon.

    `url` defaults to $MBDATA_URL, else http://127.0.0.1:7070; `token` to $MBDATA_TOKEN.
    Failed connections and `503 draining` answers are retried `retries` times with
    exponential backoff from `backoff` seconds up to `max_backoff`; a partition or
    replicate stream that ends with `draining` or is cut reconnects the same way, and the
    daemon resumes it from the cursor (batches sent but not acked come again). A stream
    opened on a cursor whose previous stream the daemon has not yet seen close (`409
    cursor_busy`, as when a process reopens its cursor right after leaving a stream) is
    retried up to three times (0.7 s with the default backoff) before the error is raised.

    `prefetch` batches (default 2) are read, checked and decoded ahead of the consumer on
    a background thread; 0 decodes them in the consumer's thread.

    One Client holds one keep-alive connection guarded by a lock, so acks from several
    threads are safe; `cursor()` refers to the latest stream this Client opened, so give
    each concurrent stream its own Client when you need that.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: float = 60.0,
        retries: int = 8,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        poll_interval: float = 0.1,
        prefetch: int = 2,
    ):
        url = url or os.environ.get("MBDATA_URL") or DEFAULT_URL
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r}")
        if not parts.hostname:
            raise ValueError(f"no host in {url!r}")
        self.url = url
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._prefix = parts.path.rstrip("/")
        self.token = token if token is not None else (os.environ.get("MBDATA_TOKEN") or None)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.poll_interval = poll_interval
        self.prefetch = prefetch
        self._lock = threading.Lock()
        self._connection: Optional[http.client.HTTPConnection] = None
        self._cursor_id: Optional[str] = None
        #: The response headers (lower-case names) of the latest batch stream or lease.
        self.stream_headers: dict[str, str] = {}
        #: How many times this Client's streams reconnected (after a cut, `draining`, a 503).
        self.reconnects = 0
        self._acks = _AckQueue(self)
        allocator.keep_batch_buffers()

    def flush(self) -> None:
        """Waits until every ack queued with `ack(wait=False)` is on the daemon; raises the
        first error one of them met."""
        self._acks.flush()

    # --- plumbing ------------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)

    def _headers(self, extra: Optional[dict] = None) -> dict:
        headers = {"User-Agent": "mbdata-client-python/0.1"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if extra:
            headers.update(extra)
        return headers

    def _target(self, path: str, query: Optional[dict] = None) -> str:
        target = self._prefix + path
        if query:
            target += "?" + urlencode(query)
        return target

    def _delay(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * (2**attempt))

    def close(self) -> None:
        self._acks.flush()
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        query: Optional[dict] = None,
        body: Any = None,
        *,
        retry: bool = True,
        ok: tuple[int, ...] = (200, 201, 204),
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on the keep-alive connection → (status, headers with lower-case
        names, body). A JSON-serialisable `body` is sent as JSON. Statuses outside `ok`
        raise `MBDataError`; with `retry`, connection failures and `503` are retried."""
        payload = None
        headers = self._headers()
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        target = self._target(path, query)
        attempt = 0
        while True:
            stale_retry = False
            try:
                with self._lock:
                    connection = self._connection
                    reused = connection is not None
                    if connection is None:
                        connection = self._connect()
                    try:
                        connection.request(method, target, body=payload, headers=headers)
                        response = connection.getresponse()
                        data = response.read()
                    except BaseException:
                        connection.close()
                        self._connection = None
                        raise
                    if response.will_close:
                        connection.close()
                        self._connection = None
                    else:
                        self._connection = connection
                status = response.status
                response_headers = {k.lower(): v for k, v in response.getheaders()}
            except _CONNECTION_ERRORS as error:
                # A keep-alive connection the daemon closed while idle fails at once: retry
                # on a fresh one without counting it.
                if reused and isinstance(
                    error, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
                ):
                    stale_retry = True
                if not stale_retry:
                    if not retry or attempt >= self.retries:
                        raise UnavailableError(
                            None, "unreachable", f"{method} {target} on {self._host}:{self._port}: {error}"
                        ) from error
                    time.sleep(self._delay(attempt))
                    attempt += 1
                continue
            if status == 503 and retry and attempt < self.retries:
                time.sleep(self._delay(attempt))
                attempt += 1
                continue
            if status not in ok:
                raise _error_from_response(status, data, f"{method} {target}")
            return status, response_headers, data

    def _json(self, method: str, path: str, query: Optional[dict] = None, body: Any = None, **options) -> Any:
        _, _, data = self.request(method, path, query, body, **options)
        try:
            return json.loads(data.decode("utf-8")) if data else None
        except (UnicodeDecodeError, ValueError) as error:
            raise ProtocolError(f"{method} {path}: response is not JSON ({error})") from None

    # --- datasets and operations ----------------------------------------------------------

    def health(self) -> dict:
        """GET /healthz (not retried): `{"status": "ok"}`; raises on `503 draining`."""
        return self._json("GET", "/healthz", retry=False)

    def metrics_text(self) -> str:
        """GET /metrics: the Prometheus text exposition."""
        _, _, data = self.request("GET", "/metrics")
        return data.decode("utf-8")

    def datasets(self) -> list[dict]:
        """GET /v1/datasets: `[{"name", "version", "samples", "splits"}, …]`."""
        return self._json("GET", "/v1/datasets")["datasets"]

    def dataset(self, name: str) -> dict:
        """GET /v1/datasets/{name}: the dataset's entry plus its `schema`."""
        return self._json("GET", f"/v1/datasets/{quote(name, safe='')}")

    # --- cursors --------------------------------------------------------------------------

    @property
    def cursor_id(self) -> Optional[str]:
        """The cursor of the latest stream or lease of this Client."""
        return self._cursor_id

    def cursor(self, cursor_id: Optional[str] = None) -> dict:
        """GET /v1/cursors/{id} of `cursor_id`, by default the latest stream's cursor: a
        JSON-serialisable state to save with a model and pass as `resume=` later."""
        cursor_id = cursor_id or self._cursor_id
        if not cursor_id:
            raise RuntimeError("no cursor yet: open a stream with batches() or share() first")
        self.flush()
        return self._json("GET", f"/v1/cursors/{quote(cursor_id, safe='')}")

    def plan_cursor(
        self,
        dataset: str,
        batch_size: int,
        epoch: int = 0,
        seed: int = 0,
        rank: Optional[int] = None,
        world: Optional[int] = None,
        group: str = "default",
        split: Optional[str] = None,
        tail: str = "drop",
        shuffle: bool = True,
        mode: str = "partition",
        replica: int = 0,
        replicas: int = 1,
    ) -> dict:
        """GET /v1/datasets/{name}/cursor: the state of the cursor these parameters name
        (created if new), before streaming — its id, plan fingerprint, batches per epoch
        and acks. `mode` is partition, replicate or share (share: rank/world default to
        0/1 rather than the environment). It becomes this Client's current cursor."""
        if mode == "share":
            rank, world = rank_and_world(0 if rank is None else rank, 1 if world is None else world)
        else:
            rank, world = rank_and_world(rank, world)
        if mode not in (*_MODES, "share"):
            raise ValueError(f"mode must be partition, replicate or share, got {mode!r}")
        query = self.plan_query(batch_size, epoch, seed, rank, world, group, split, tail, shuffle)
        _add_mode(query, mode, replica, replicas)
        state = self._json("GET", f"/v1/datasets/{quote(dataset, safe='')}/cursor", query)
        self._cursor_id = _cursor_of(state)
        return state

    def put_cursor(self, state: dict) -> dict:
        """PUT /v1/cursors/{id}: replaces the daemon's record of the cursor with `state`."""
        cursor_id = _cursor_of(state)
        return self._json("PUT", f"/v1/cursors/{quote(cursor_id, safe='')}", body=state)

    def reset_cursor(self, state_or_id: Union[dict, str, None] = None) -> None:
        """DELETE /v1/cursors/{id}: forgets every ack of the cursor (a state, an id, or by
        default the latest stream's cursor)."""
        cursor_id = _cursor_of(state_or_id) if state_or_id is not None else self._cursor_id
        if not cursor_id:
            raise RuntimeError("no cursor to reset")
        self.request("DELETE", f"/v1/cursors/{quote(cursor_id, safe='')}")

    def ack(self, cursor_id: str, epoch: int, batches: list[int]) -> dict:
        """Acks partition or replicate batches of one epoch; returns the new state."""
        body = {"epoch": int(epoch), "batches": [int(b) for b in batches]}
        return self._json("POST", f"/v1/cursors/{quote(cursor_id, safe='')}/acks", body=body)

    def ack_leases(self, cursor_id: str, leases: list[int]) -> dict:
        """Acks share-mode leases; returns the new state (409 `lease_expired` if any
        lease expired, and then none of them is acked)."""
        body = {"leases": [int(lease) for lease in leases]}
        return self._json("POST", f"/v1/cursors/{quote(cursor_id, safe='')}/acks", body=body)

    # --- batch streams --------------------------------------------------------------------

    @staticmethod
    def plan_query(
        batch_size: int,
        epoch: int = 0,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        group: str = "default",
        split: Optional[str] = None,
        tail: str = "drop",
        shuffle: bool = True,
    ) -> dict:
        """The query parameters of a plan (serve-protocol.md §1)."""
        if tail not in _TAILS:
            raise ValueError(f"tail must be one of {_TAILS}, got {tail!r}")
        query = {
            "batch_size": int(batch_size),
            "seed": int(seed),
            "epoch": int(epoch),
            "world": int(world),
            "rank": int(rank),
            "tail": tail,
            "shuffle": "true" if shuffle else "false",
            "group": group,
        }
        if split is not None:
            query["split"] = split
        return query

    def batches(
        self,
        dataset: str,
        batch_size: int,
        epoch: int = 0,
        seed: int = 0,
        rank: Optional[int] = None,
        world: Optional[int] = None,
        group: str = "default",
        split: Optional[str] = None,
        tail: str = "drop",
        shuffle: bool = True,
        mode: str = "partition",
        replica: int = 0,
        replicas: int = 1,
        resume: Optional[dict] = None,
        start: Optional[int] = None,
    ) -> Iterator[Batch]:
        """This rank's batches of one epoch, in batch order (GET /v1/datasets/{name}/batches).

        `rank`/`world` default to $RANK/$WORLD_SIZE, else 0/1. Batches the cursor has acked
        are skipped, so a restarted trainer gets exactly what it has not acked. With
        `resume=state` (from `cursor()`), the state is PUT first. `mode="replicate"` with
        `replica`/`replicas` gives each member of a group the same batches. Nothing is
        sent until the first batch is requested; leaving the loop closes the stream."""
        rank, world = rank_and_world(rank, world)
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES} (use share() for share mode), got {mode!r}")
        query = self.plan_query(batch_size, epoch, seed, rank, world, group, split, tail, shuffle)
        _add_mode(query, mode, replica, replicas)
        if start is not None:
            query["start"] = int(start)
        if resume is not None:
            _check_resume(resume, dataset=dataset, group=group, mode=mode, rank=rank, query=query,
                          replica=replica if mode == "replicate" else 0)
        return self._stream(dataset, query, mode, resume)

    def _open_stream(self, method: str, path: str, query: dict):
        connection = self._connect()
        try:
            connection.request(method, self._target(path, query), headers=self._headers())
            response = connection.getresponse()
            if response.status != 200:
                data = response.read()
                raise _error_from_response(response.status, data, f"{method} {path}")
            content_type = (response.getheader("Content-Type") or "").split(";")[0].strip()
            if content_type != STREAM_CONTENT_TYPE:
                raise ProtocolError(f"{method} {path}: content type {content_type!r}, expected {STREAM_CONTENT_TYPE}")
            cursor = response.getheader("MBData-Cursor")
            if not cursor:
                raise ProtocolError(f"{method} {path}: no MBData-Cursor header")
        except BaseException:
            connection.close()
            raise
        return connection, response

    def _stream(self, dataset: str, query: dict, mode: str, resume: Optional[dict]) -> Iterator[Batch]:
        path = f"/v1/datasets/{quote(dataset, safe='')}/batches"
        if resume is not None:
            self.put_cursor(resume)
        attempt = 0
        reconnecting = False
        while True:
            cause = None
            unreachable = False
            try:
                connection, response = self._open_stream("GET", path, query)
            except _CONNECTION_ERRORS as error:
                cause = f"cannot open the stream: {error}"
                unreachable = True
            except MBDataError as error:
                busy_retries = self.retries if reconnecting else min(3, self.retries)
                retryable = error.status == 503 or (error.code == "cursor_busy" and attempt < busy_retries)
                if not retryable or attempt >= self.retries:
                    raise
                cause = str(error)
            if cause is None:
                self.stream_headers = {k.lower(): v for k, v in response.getheaders()}
                self._cursor_id = self.stream_headers["mbdata-cursor"]
                if resume is not None and self._cursor_id != resume.get("cursor"):
                    response.close()
                    connection.close()
                    raise MBDataError(
                        None, "cursor_mismatch",
                        f"resumed cursor {resume.get('cursor')!r}, but the stream uses {self._cursor_id!r}",
                    )
                cursor = self._cursor_id
                decoded = (
                    Batch(self, message, cursor, mode) if message.kind == wire.KIND_BATCH else message
                    for message in wire.iter_messages(response.read)
                )
                try:
                    for message in _ahead(decoded, self.prefetch):
                        if isinstance(message, Batch):
                            attempt = 0
                            yield message
                        elif message.kind == wire.KIND_END:
                            end = message.json()
                            if end.get("reason") == "complete":
                                self.flush()
                                return
                            cause = f"stream ended with reason {end.get('reason')!r}"
                            break
                        else:
                            error = message.json().get("error") or {}
                            raise StreamFailedError(
                                200, str(error.get("code", "stream_error")), str(error.get("message", ""))
                            )
                    else:
                        cause = "stream ended without an end message"
                except StreamCutError as error:
                    cause = str(error)
                except (*_CONNECTION_ERRORS, ValueError) as error:
                    cause = f"connection lost: {error!r}"
                finally:
                    response.close()
                    connection.close()
            if attempt >= self.retries:
                if unreachable:
                    raise UnavailableError(None, "unreachable", f"GET {path}: {cause}; gave up after {self.retries} retries")
                raise StreamCutError(f"{path}: {cause}; gave up after {self.retries} reconnects")
            time.sleep(self._delay(attempt))
            attempt += 1
            reconnecting = True
            self.reconnects += 1

    def share(
        self,
        dataset: str,
        batch_size: int,
        epoch: int = 0,
        seed: int = 0,
        group: str = "default",
        lease_seconds: int = 30,
        split: Optional[str] = None,
        tail: str = "drop",
        shuffle: bool = True,
        rank: int = 0,
        world: int = 1,
        poll_interval: Optional[float] = None,
    ) -> Iterator[Batch]:
        """Work sharing (POST /v1/datasets/{name}/lease in a loop): each batch is leased to
        one consumer of `group` and must be acked (`batch.ack()`) within `lease_seconds`,
        else it goes to another consumer. While every remaining batch is leased to someone
        else the daemon answers 204; this waits Retry-After, capped at `poll_interval`
        (default: the Client's), and asks again. Ends when every batch of the epoch is
        acked."""
        query = self.plan_query(batch_size, epoch, seed, rank, world, group, split, tail, shuffle)
        query["lease_seconds"] = int(lease_seconds)
        cap = self.poll_interval if poll_interval is None else poll_interval
        return self._share(f"/v1/datasets/{quote(dataset, safe='')}/lease", query, cap)

    def _share(self, path: str, query: dict, cap: float) -> Iterator[Batch]:
        attempt = 0
        while True:
            status, headers, body = self.request("POST", path, query, ok=(200, 204))
            if status == 204:
                try:
                    wait = float(headers.get("retry-after", cap))
                except ValueError:
                    wait = cap
                time.sleep(max(0.0, min(wait, cap)))
                continue
            content_type = headers.get("content-type", "").split(";")[0].strip()
            if content_type != STREAM_CONTENT_TYPE:
                raise ProtocolError(f"POST {path}: content type {content_type!r}, expected {STREAM_CONTENT_TYPE}")
            self.stream_headers = headers
            cursor = headers.get("mbdata-cursor")
            if not cursor:
                raise ProtocolError(f"POST {path}: no MBData-Cursor header")
            self._cursor_id = cursor
            messages = wire.parse_messages(body)
            if len(messages) != 1:
                raise ProtocolError(f"POST {path}: {len(messages)} messages in a lease answer, expected 1")
            message = messages[0]
            if message.kind == wire.KIND_BATCH:
                if message.lease == 0:
                    raise ProtocolError(f"POST {path}: leased batch {message.batch} has lease 0")
                attempt = 0
                yield Batch(self, message, cursor, "share")
            elif message.kind == wire.KIND_END:
                reason = message.json().get("reason")
                if reason == "complete":
                    self.flush()
                    return
                # draining: the daemon is going away; ask again (its successor, or retries fail)
                if attempt >= self.retries:
                    raise UnavailableError(None, "draining", f"POST {path}: the daemon kept draining")
                time.sleep(self._delay(attempt))
                attempt += 1
            else:
                error = message.json().get("error") or {}
                raise StreamFailedError(200, str(error.get("code", "stream_error")), str(error.get("message", "")))


def _ahead(items: Iterator, depth: int) -> Iterator:
    """Runs `items` on a thread of its own, up to `depth` items ahead of the consumer: a
    stream's socket reads, checksums and LZ4 decoding (which release the GIL) overlap
    the training step. Exceptions reach the consumer in order; leaving the loop stops
    the thread at its next item."""
    if depth <= 0:
        yield from items
        return
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stopped = threading.Event()
    done = object()

    def offer(entry: tuple) -> bool:
        while not stopped.is_set():
            try:
                handoff.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
            offer((done, None))
        except BaseException as error:
            offer((done, error))

    thread = threading.Thread(target=produce, name="mbdata-stream", daemon=True)
    thread.start()
    try:
        while True:
            item, error = handoff.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stopped.set()


class _AckQueue:
    """Acks queued by `Batch.ack(wait=False)`, sent by one background thread: everything
    queued while a request is out goes in the next one (per cursor and epoch)."""

    def __init__(self, client: "Client"):
        self._client = client
        self._condition = threading.Condition()
        self._pending: dict[tuple[str, int, bool], list[int]] = {}
        self._sending = False
        self._error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None

    def add(self, cursor: str, epoch: int, lease: Optional[int], batch: int) -> None:
        with self._condition:
            self._raise_error()
            key = (cursor, int(epoch), lease is not None)
            self._pending.setdefault(key, []).append(int(lease) if lease is not None else int(batch))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mbdata-acks", daemon=True)
                self._thread.start()
            self._condition.notify_all()

    def flush(self) -> None:
        with self._condition:
            while self._pending or self._sending:
                self._condition.wait()
            self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    #: Seconds the sender waits after the first queued ack so that more join its request.
    LINGER = 0.02

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._pending:
                    if not self._condition.wait(timeout=5.0):
                        return  # idle: the next add() starts a new thread
            time.sleep(self.LINGER)
            with self._condition:
                work, self._pending = self._pending, {}
                self._sending = True
            try:
                for (cursor, epoch, leases), items in work.items():
                    if leases:
                        self._client.ack_leases(cursor, items)
                    else:
                        self._client.ack(cursor, epoch, items)
            except BaseException as error:  # surfaced by the next add() or flush()
                with self._condition:
                    self._error = self._error or error
            finally:
                with self._condition:
                    self._sending = False
                    self._condition.notify_all()


def _add_mode(query: dict, mode: str, replica: int, replicas: int) -> None:
    """Adds a stream mode other than partition to a plan query; replicate names the member."""
    if mode == "partition":
        return
    query["mode"] = mode
    if mode == "replicate":
        if not 0 <= replica < replicas:
            raise ValueError(f"replica must be in 0…{replicas - 1}, got {replica}")
        query.update(replica=int(replica), replicas=int(replicas))


def _cursor_of(state_or_id: Union[dict, str]) -> str:
    if isinstance(state_or_id, str):
        return state_or_id
    if isinstance(state_or_id, Mapping) and isinstance(state_or_id.get("cursor"), str):
        return state_or_id["cursor"]
    raise ValueError("expected a cursor id or a cursor state with a 'cursor' key")


def _check_resume(state: dict, *, dataset: str, group: str, mode: str, rank: int, replica: int, query: dict) -> None:
    """Refuses to resume from a state saved for another stream."""
    _cursor_of(state)
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
    if mismatches:
        raise ValueError("resume state belongs to another stream: " + "; ".join(mismatches))
