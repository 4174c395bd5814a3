"""A client of `mbdata serve` (schemas/serve-protocol.md): the public `Client`, over
`transport` (HTTP), `streams` (partition and replicate), `share` (leases), `infer`
(inference leases and output submissions), `acks` (queued acks) and `protocol` (the JSON
documents)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Iterator, Optional, Union

from . import allocator
from .acks import AckQueue
from .batch import Batch
from .buffers import BufferPool
from .infer import Submitter, inference_batches, infer_query
from .plan import MODES, add_mode, mixture_name, plan_query, rank_and_world
from .protocol import (
    STREAM_CONTENT_TYPE,
    acked_batches,
    batch_acks,
    check_resume,
    cursor_of,
    cursor_path,
    dataset_path,
    lease_acks,
)
from .share import leased_batches
from .streams import REMOTE_PREFETCH, batch_stream
from .submissions import SubmissionQueue
from .transport import DEFAULT_URL, Transport

__all__ = ["Batch", "Client", "DEFAULT_URL", "STREAM_CONTENT_TYPE", "acked_batches", "rank_and_world"]


def _transport_setting(name: str, doc: str) -> property:
    def get(client: "Client"):
        return getattr(client._transport, name)

    def set_(client: "Client", value) -> None:
        setattr(client._transport, name, value)

    return property(get, set_, doc=doc)


def _reading(dataset: Optional[str], batch_size: Optional[int], mix: Optional[dict]) -> tuple[Optional[str], str]:
    """What a stream reads: the dataset's name in the path (None: a mixture's
    /v1/mixture/…) and the name its cursor carries (`dataset`)."""
    if batch_size is None:
        raise TypeError("batch_size is required")
    if (dataset is None) == (mix is None):
        raise TypeError("name a dataset or a mixture (mix={...}), not both or neither")
    return dataset, dataset if mix is None else mixture_name(mix)


class Client:
    """A client of `mbdata serve`: one daemon, or several that share their state.

    `url` is one daemon URL, several (a list, or one string of comma-separated URLs), or
    None: $MBDATA_URLS (comma-separated), else $MBDATA_URL, else http://127.0.0.1:7070;
    `urls=` is the same argument under a plural name. `token` defaults to $MBDATA_TOKEN.

    Several daemons (schemas/serve-protocol.md, § several daemons): the client uses the
    first (the local daemon) and, when it fails — connection refused, reset or timed out, a
    stream cut, `503 draining` or `state_unavailable` — moves to the next, round robin:
    every daemon of a round is tried at once, and after a round in which all failed it
    waits, with exponential backoff from `backoff` seconds up to `max_backoff`. It gives
    up after `retries` rounds or `give_up_after` seconds, whichever comes first, with an
    `UnavailableError` naming every daemon tried. It stays on the daemon that answered.
    A partition or replicate stream reopens from the cursor (acked batches are not sent
    again; batches received but not acked are — the trainer sees a batch again only if it
    had not acked it); acks are sent again to the next daemon (they are idempotent); share
    and infer leases are asked for again; an outputs submission is sent again under its
    lease (`409 already_done` on a resend means it had committed). With one daemon the
    same rules retry it alone. A stream opened on a cursor whose previous stream the daemon
    has not yet seen close (`409 cursor_busy`, as when a process reopens its cursor right
    after leaving a stream) is retried on the same daemon up to three times (0.7 s with the
    default backoff) before the error is raised.

    `timeout` (seconds) bounds each wait for the daemon's answer or a stream's next bytes;
    `connect_timeout` (default 10) each wait for a connection to be accepted, so that a
    daemon whose node went away (no answer, no refusal) is left for the next quickly.

    `prefetch` batches are read, checked and decoded ahead of the consumer on a background
    thread; 0 decodes them in the consumer's thread. The default (None) reads 2 ahead; when
    a stream's frames are read from the daemon's spool files (local delivery) — a `pread`
    and a checksum, ~0.15 ms for 790 KB, which handing batches between two Python threads
    cost more than it hid — the consumer's thread reads the stream and two native threads
    of the client's C module read and hash the next 2 frames without the GIL, each checked
    in its batch's turn (`localframes`; without the module, or with
    MBDATA_NATIVE_READER=0, on the consumer's thread). Benchmarks/README.md has the figures.
    Each batch's tensors are views into one decoded buffer, reused for a later batch only
    once nothing refers to it (`mbdata_client.buffers`).

    `ack_window` (default 256): `batch.ack()` queues the ack and returns, and a background
    thread sends queued acks together; at most this many wait unsent (see `Batch.ack`
    for when they are certainly on the daemon). 0 makes `ack()` send each ack before it
    returns.

    `tune_allocator=True` raises glibc's mmap and trim thresholds for the whole process
    (see `mbdata_client.allocator`), so that decoded batches reuse the memory earlier ones
    freed: faster on large batches, at the cost of up to 256 MiB of free heap kept. Off by
    default; None follows $MBDATA_TUNE_ALLOCATOR (1 turns it on).

    `local_files` (default True): a partition or replicate stream from a daemon on this
    host (a loopback URL) asks for local delivery (protocol 1.3): the daemon names where each
    spooled batch's frame lies in its shard files, and the client reads it from there with
    the same checks (the file's identity, the frame's xxh64 and structure) instead of
    receiving its bytes, which costs both processes less CPU. Live batches come through the
    socket either way. A stream that cannot read the daemon's files (another container, no
    permission) reopens at once without it, and the reason is kept in `stream_fallbacks`.

    `submit_window` (default 0): above 0, `batch.submit(outputs)` of an inference batch
    queues the submission and returns, and a background thread sends them in order while
    the next batches are leased (see `Batch.submit`).

    One Client keeps a few keep-alive connections, one per thread that sends at once, so
    acks and submissions from several threads are safe; `cursor()` refers to the latest stream this Client opened, so give
    each concurrent stream its own Client when you need that.
    """

    url = _transport_setting("url", "The URL of the daemon in use; setting it replaces the list of daemons.")
    urls = property(lambda client: client._transport.urls, doc="Every daemon's URL, in order of preference.")
    token = _transport_setting("token", "The bearer token sent with every request, or None.")
    timeout = _transport_setting("timeout", "Seconds a connection waits for the daemon's answer or next bytes.")
    connect_timeout = _transport_setting("connect_timeout", "Seconds a connection waits to be accepted.")
    retries = _transport_setting("retries", "Rounds over the daemons a failed request or stream is tried again.")
    backoff = _transport_setting("backoff", "Seconds before the first retry; doubled on each.")
    max_backoff = _transport_setting("max_backoff", "The longest wait between retries, in seconds.")
    give_up_after = _transport_setting("give_up_after", "Seconds a failed request or stream keeps trying daemons.")

    def __init__(
        self,
        url: Union[str, Sequence[str], None] = None,
        token: Optional[str] = None,
        *,
        urls: Union[str, Sequence[str], None] = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        retries: int = 8,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        give_up_after: float = 120.0,
        poll_interval: float = 0.1,
        prefetch: Optional[int] = None,
        ack_window: int = 256,
        submit_window: int = 0,
        tune_allocator: Optional[bool] = None,
        local_files: bool = True,
    ):
        if url is not None and urls is not None:
            raise TypeError("give the daemons as url or as urls, not both")
        self._transport = Transport(
            url if urls is None else urls, token, timeout=timeout, connect_timeout=connect_timeout, retries=retries,
            backoff=backoff, max_backoff=max_backoff, give_up_after=give_up_after,
        )
        self.poll_interval = poll_interval
        self.prefetch = prefetch
        self._cursor_id: Optional[str] = None
        #: The response headers (lower-case names) of the latest batch stream or lease.
        self.stream_headers: dict[str, str] = {}
        #: How many times this Client's streams reconnected (after a cut, `draining`, a 503),
        #: to the same daemon or the next.
        self.reconnects = 0
        self._acks = AckQueue(self, ack_window)
        self._submissions = SubmissionQueue(submit_window)
        self._buffers = BufferPool(max(0, REMOTE_PREFETCH if prefetch is None else prefetch) + 3)
        #: Whether batch streams from a daemon on this host (a loopback URL) ask for local
        #: delivery: a spooled batch's frame read from the daemon's shard file, not the socket.
        #: Set to False by a stream that found it cannot read those files.
        self.local_files = local_files
        #: Why streams fell back from local delivery to the socket (normally empty).
        self.stream_fallbacks: list[str] = []
        if allocator.requested(tune_allocator):
            allocator.tune_allocator()

    @property
    def ack_window(self) -> int:
        """The most acks `batch.ack()` leaves queued, unsent; 0 sends each at once."""
        return self._acks.window

    @ack_window.setter
    def ack_window(self, window: int) -> None:
        self._acks.window = int(window)

    @property
    def submit_window(self) -> int:
        """The most submissions `batch.submit(outputs)` leaves queued, unanswered; 0 (the
        default) sends each before `submit` returns."""
        return self._submissions.window

    @submit_window.setter
    def submit_window(self, window: int) -> None:
        self._submissions.window = int(window)

    def flush(self) -> None:
        """Waits until every queued ack (`batch.ack()`) and submission
        (`batch.submit(outputs, wait=False)`) is on the daemon; raises the first error one
        of them met."""
        try:
            self._submissions.flush()
        finally:
            self._acks.flush()

    def _check(self) -> None:
        """Raises, once, an error a queued ack or submission met; does not wait."""
        self._submissions.check()
        self._acks.check()

    def close(self) -> None:
        """Flushes the queued acks and submissions and closes the keep-alive connections."""
        self.flush()
        self._transport.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(
        self, method: str, path: str, query: Optional[dict] = None, body: Any = None, **options
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on the keep-alive connection → (status, headers with lower-case
        names, body). A JSON-serialisable `body` is sent as JSON. Statuses outside `ok`
        (keyword; default 200, 201, 204) raise `MBDataError`; with `retry` (keyword; default
        True), connection failures and `503` are retried."""
        return self._transport.request(method, path, query, body, **options)

    def _opened(self, headers: dict[str, str], cursor: str) -> None:
        """Records the stream or lease answer just opened as this Client's latest."""
        self.stream_headers = headers
        self._cursor_id = cursor

    # --- datasets and operations ----------------------------------------------------------

    def health(self) -> dict:
        """GET /healthz (not retried): `{"status": "ok"}`; raises on `503 draining`."""
        return self._transport.json("GET", "/healthz", retry=False)

    def metrics_text(self) -> str:
        """GET /metrics: the Prometheus text exposition."""
        _, _, data = self.request("GET", "/metrics")
        return data.decode("utf-8")

    def datasets(self) -> list[dict]:
        """GET /v1/datasets: `[{"name", "version", "samples", "splits"}, …]`."""
        return self._transport.json("GET", "/v1/datasets")["datasets"]

    def dataset(self, name: str) -> dict:
        """GET /v1/datasets/{name}: the dataset's entry plus its `schema`."""
        return self._transport.json("GET", dataset_path(name))

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
        return self._transport.json("GET", cursor_path(cursor_id))

    def plan_cursor(
        self,
        dataset: Optional[str] = None,
        batch_size: Optional[int] = None,
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
        pack: Optional[dict] = None,
        mix: Optional[dict] = None,
        epoch_size: Optional[int] = None,
    ) -> dict:
        """GET /v1/datasets/{name}/cursor: the state of the cursor these parameters name
        (created if new), before streaming — its id, plan fingerprint, batches per epoch
        and acks. `mode` is partition, replicate or share (share: rank/world default to
        0/1 rather than the environment); `pack`, `mix` and `epoch_size` as `batches()` takes them. It becomes this
        Client's current cursor."""
        if mode == "share":
            rank, world = rank_and_world(0 if rank is None else rank, 1 if world is None else world)
        else:
            rank, world = rank_and_world(rank, world)
        if mode not in (*MODES, "share"):
            raise ValueError(f"mode must be partition, replicate or share, got {mode!r}")
        path_name, name = _reading(dataset, batch_size, mix)
        query = plan_query(batch_size, epoch, seed, rank, world, group, split, tail, shuffle, pack, mix, epoch_size)
        add_mode(query, mode, replica, replicas)
        self.flush()
        state = self._transport.json("GET", dataset_path(path_name, "cursor"), query)
        self._cursor_id = cursor_of(state)
        return state

    def infer_cursor(self, dataset: str, output: str, batch_size: int, **plan) -> dict:
        """GET /v1/datasets/{name}/cursor?mode=infer: the state of the inference job that
        `infer` with the same arguments works on (`plan`: its split, seed, shuffle and
        tail), made if new — its cursor id, pinned `dataset_version`, `batches_per_epoch`,
        and under `epochs` the batches committed (`acked_batches(state, 0)`). It becomes
        this Client's current cursor."""
        if "lease_seconds" in plan:
            raise TypeError("infer_cursor() takes the plan's parameters only, not lease_seconds")
        state = self._transport.json("GET", dataset_path(dataset, "cursor"), infer_query(output, batch_size, **plan))
        self._cursor_id = cursor_of(state)
        return state

    def put_cursor(self, state: dict) -> dict:
        """PUT /v1/cursors/{id}: replaces the daemon's record of the cursor with `state`
        (after the queued acks)."""
        self.flush()
        return self._transport.json("PUT", cursor_path(cursor_of(state)), body=state)

    def reset_cursor(self, state_or_id: Union[dict, str, None] = None) -> None:
        """DELETE /v1/cursors/{id}: forgets every ack of the cursor (a state, an id, or by
        default the latest stream's cursor)."""
        cursor_id = cursor_of(state_or_id) if state_or_id is not None else self._cursor_id
        if not cursor_id:
            raise RuntimeError("no cursor to reset")
        self.flush()
        self.request("DELETE", cursor_path(cursor_id))

    def ack(self, cursor_id: str, epoch: int, batches: list[int]) -> dict:
        """Acks partition or replicate batches of one epoch; returns the new state."""
        return self._transport.json("POST", cursor_path(cursor_id, "acks"), body=batch_acks(epoch, batches))

    def ack_leases(self, cursor_id: str, leases: list[int]) -> dict:
        """Acks share-mode leases; returns the new state (409 `lease_expired` if any
        lease expired, and then none of them is acked)."""
        return self._transport.json("POST", cursor_path(cursor_id, "acks"), body=lease_acks(leases))

    # --- batch streams --------------------------------------------------------------------

    plan_query = staticmethod(plan_query)

    def batches(
        self,
        dataset: Optional[str] = None,
        batch_size: Optional[int] = None,
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
        pack: Optional[dict] = None,
        mix: Optional[dict] = None,
        epoch_size: Optional[int] = None,
    ) -> Iterator[Batch]:
        """This rank's batches of one epoch, in batch order (GET /v1/datasets/{name}/batches).

        `rank`/`world` default to $RANK/$WORLD_SIZE, else 0/1. Batches the cursor has acked
        are skipped, so a restarted trainer gets exactly what it has not acked. With
        `resume=state` (from `cursor()`), the state is PUT first. `mode="replicate"` with
        `replica`/`replicas` gives each member of a group the same batches. Nothing is
        sent until the first batch is requested; leaving the loop closes the stream.

        `pack={"tokens": 2048}` packs the variable-length field `tokens` into rows of 2048
        (optional `"window"` and `"overlong"`: `"split"` or `"drop"`): `batch_size` counts
        rows, and each batch holds `tokens`, `segment_ids` and `positions` `[rows, 2048]`
        and `_id` `[rows, segments]` (-1 after a row's last segment). Packed epochs differ
        in batches: the stream's `stream_headers["mbdata-batches-per-epoch"]` is this one's.

        `mix={"web": 0.6, "code": ("repeat", 2), "books": ("choose", 1000)}` (instead of
        `dataset`) reads a mixture of served datasets (GET /v1/mixture/batches): weights are
        proportions, or `("repeat", R)` / `("choose", N)` per epoch; `epoch_size` is the
        draws per epoch of proportion weights. Each batch has `_source` (int32, the row's
        index in `mix`, −1 on padding rows) and `batch.sources` (the names). `mix` with
        `pack` packs the mixture's draws into rows: `_source` is then `[rows, segments]`,
        per segment like `_id`."""
        rank, world = rank_and_world(rank, world)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES} (use share() for share mode), got {mode!r}")
        path_name, name = _reading(dataset, batch_size, mix)
        query = plan_query(batch_size, epoch, seed, rank, world, group, split, tail, shuffle, pack, mix, epoch_size)
        add_mode(query, mode, replica, replicas)
        if start is not None:
            query["start"] = int(start)
        if resume is not None:
            check_resume(resume, dataset=name, group=group, mode=mode, rank=rank, query=query,
                         replica=replica if mode == "replicate" else 0)
        return batch_stream(self, self._transport, path_name, query, mode, resume)

    def share(
        self,
        dataset: Optional[str] = None,
        batch_size: Optional[int] = None,
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
        pack: Optional[dict] = None,
        mix: Optional[dict] = None,
        epoch_size: Optional[int] = None,
    ) -> Iterator[Batch]:
        """Work sharing (POST /v1/datasets/{name}/lease in a loop): each batch is leased to
        one consumer of `group` and must be acked (`batch.ack()`) within `lease_seconds`,
        else it goes to another consumer. While every remaining batch is leased to someone
        else the daemon answers 204; this waits Retry-After, capped at `poll_interval`
        (default: the Client's), and asks again. Ends when every batch of the epoch is
        acked. `pack` packs rows and `mix`/`epoch_size` read a mixture as `batches()` does."""
        path_name, name = _reading(dataset, batch_size, mix)
        query = plan_query(batch_size, epoch, seed, rank, world, group, split, tail, shuffle, pack, mix, epoch_size)
        query["lease_seconds"] = int(lease_seconds)
        cap = self.poll_interval if poll_interval is None else poll_interval
        return leased_batches(self, self._transport, path_name, query, cap)

    def infer(
        self,
        dataset: str,
        output: str,
        batch_size: int,
        split: Optional[str] = None,
        seed: int = 0,
        shuffle: bool = False,
        tail: str = "pad",
        lease_seconds: int = 30,
        poll_interval: Optional[float] = None,
        compress: Optional[bool] = None,
        lease_ahead: int = 0,
    ) -> Iterator[Batch]:
        """Inference over a split (POST /v1/datasets/{name}/lease?mode=infer in a loop):
        each batch is leased to one consumer, which computes its outputs and sends them
        with `batch.submit(outputs)` within `lease_seconds`; the daemon writes them to the
        output table `output` (made beforehand with `mbdata outputs create`) together with
        the batch's completion, in one transaction. Any number of consumers may run the
        same call, join or leave; one killed mid-batch loses its lease, and the batch goes
        to another. The loop ends when every batch of the job is committed — so running it
        again after a crash finishes only what is left.

        The plan is the job's: `batch_size`, `split`, `seed`, `shuffle` (default False:
        ingest order) and `tail` (default "pad": the last batch is padded so that every
        sample gets an output; `batch.valid` flags the real rows). While every remaining
        batch is leased to someone else the daemon answers 204, and this asks again after
        Retry-After, capped at `poll_interval` (default: the Client's). `compress`: True
        sends every submission in an LZ4 frame, False none, None (default) bodies of
        1 MiB or more to a daemon on another machine, when that makes them a tenth smaller.

        `lease_ahead` (default 0): above 0, a thread of its own leases up to that many
        batches ahead of the loop, so the daemon reads the next batch while this one is
        computed; their leases run meanwhile, so `lease_seconds` must cover
        `lease_ahead + 1` batches' work. With queued submissions (`Client(submit_window=…)`)
        this is the fast path: neither the lease nor the commit waits on the model.

            for batch in client.infer("digits", output="preds", batch_size=256, split="val"):
                logits = model(batch["image"])
                batch.submit({"pred": logits.argmax(1), "prob": softmax(logits)})
        """
        query = infer_query(output, batch_size, split, seed, shuffle, tail, lease_seconds)
        cap = self.poll_interval if poll_interval is None else poll_interval
        return inference_batches(self, self._transport, dataset, query, cap, Submitter(self._transport, compress), lease_ahead)
