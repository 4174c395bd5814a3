"""A client given several daemons (schemas/serve-protocol.md, § several daemons): the URLs
it takes, how it moves from a daemon that fails to the next, and — against real daemons
over one dataset and one state (`make_cluster`) — that a daemon SIGKILLed mid-epoch loses
nothing: every batch is acked exactly once, and none is delivered again after its ack."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from mbdata_client import Client, MBDataError, UnavailableError, acked_batches
from mbdata_client.daemons import DEFAULT_URL, daemon_urls
from servetest import TRAIN, FakeDaemon, fast_client, free_port, metric_samples, request

# Batches of 8 rows: 181 batches, a stream longer than the socket buffers hold, so a stream
# is still open when its daemon is killed.
SIZE = 8
COUNT = TRAIN // SIZE
PLAN = dict(epoch=0, seed=7, rank=0, world=1, split="train")
SHARE_PLAN = dict(epoch=0, seed=7, split="train")


def dead_url() -> str:
    """A URL where nothing listens: connections are refused."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def second_fake():
    daemon = FakeDaemon()
    yield daemon
    daemon.close()


# --- the URLs ------------------------------------------------------------------------------


def test_the_daemons_come_from_a_list_a_comma_separated_string_or_mbdata_urls(monkeypatch):
    assert Client(["http://a:1", "http://b:2"]).urls == ["http://a:1", "http://b:2"]
    assert Client("http://a:1, http://b:2").urls == ["http://a:1", "http://b:2"]
    assert Client(urls=("http://a:1", "b:2")).urls == ["http://a:1", "b:2"]
    assert Client("http://a:1").url == "http://a:1"
    monkeypatch.setenv("MBDATA_URLS", "http://x:1,http://y:2")
    monkeypatch.setenv("MBDATA_URL", "http://z:3")
    assert Client().urls == ["http://x:1", "http://y:2"]
    monkeypatch.delenv("MBDATA_URLS")
    assert Client().urls == ["http://z:3"]
    monkeypatch.delenv("MBDATA_URL")
    assert daemon_urls(None) == [DEFAULT_URL]
    with pytest.raises(TypeError):
        Client("http://a:1", urls=["http://b:2"])
    with pytest.raises(ValueError):
        Client(" , ")
    with pytest.raises(ValueError, match="scheme"):
        Client(["http://a:1", "ftp://b"])


# --- moving between daemons (scripted fakes) ------------------------------------------------


def test_a_refused_first_daemon_sends_the_request_to_the_next_at_once(fake):
    fake.json(200, {"datasets": []})
    # A backoff of 30 s: waiting before trying the second daemon would time the test out.
    client = Client([dead_url(), fake.url], backoff=30, max_backoff=30)
    started = time.monotonic()
    assert client.datasets() == []
    assert time.monotonic() - started < 5
    assert client.url == fake.url, "the client stays on the daemon that answered"


def test_giving_up_names_every_daemon_tried():
    first, second = dead_url(), dead_url()
    client = Client([first, second], retries=2, backoff=0.001, max_backoff=0.01)
    with pytest.raises(UnavailableError) as raised:
        client.datasets()
    assert raised.value.code == "unreachable"
    assert first in raised.value.message and second in raised.value.message
    assert "3 rounds" in raised.value.message


def test_giving_up_after_the_configured_time():
    client = Client([dead_url()], retries=1000, backoff=0.05, max_backoff=0.05, give_up_after=0.3)
    started = time.monotonic()
    with pytest.raises(UnavailableError, match="gave up"):
        client.datasets()
    assert time.monotonic() - started < 3


def test_a_stream_that_ran_long_gives_up_only_its_time_after_the_last_batch():
    # A stream restarts its tries at every batch: a cut after an hour of batches is retried
    # for give_up_after from the last batch, not given up at once.
    from mbdata_client.daemons import Daemons, Tries

    now = [0.0]
    slept = []
    daemon = Daemons(["http://127.0.0.1:1"])
    tries = Tries(daemon, "GET stream", retries=10, delay=lambda _: 0.5, give_up_after=2.0,
                  clock=lambda: now[0], sleep=slept.append)
    now[0] = 3600.0
    tries.restart()
    assert tries.failed(daemon.current, "cut") and slept == [0.5]
    now[0] += 1.0
    assert tries.failed(daemon.current, "cut again")
    now[0] += 1.0  # 2 s since the last batch: the next wait would pass give_up_after
    assert not tries.failed(daemon.current, "and again")


def test_a_daemon_that_accepts_no_connection_is_left_after_the_connect_timeout(fake):
    """A listener whose accept queue is full drops new connections' SYNs, as a node that
    went away does: the client waits `connect_timeout`, not `timeout`, before the next."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(4):  # fill the accept queue without blocking
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
            fillers.append(filler)
        fake.json(200, {"datasets": []})
        client = Client([f"http://127.0.0.1:{listener.getsockname()[1]}", fake.url], timeout=60, connect_timeout=0.5)
        started = time.monotonic()
        assert client.datasets() == []
        assert time.monotonic() - started < 10
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_a_draining_daemon_sends_requests_to_the_next(fake, second_fake):
    fake.json(503, {"error": {"code": "draining", "message": "shutting down"}})
    second_fake.json(200, {"datasets": [{"name": "digits"}]})
    client = fast_client([fake.url, second_fake.url])
    assert client.datasets() == [{"name": "digits"}]
    assert client.url == second_fake.url


def test_an_ack_whose_daemon_died_is_sent_again_to_the_next(fake, second_fake):
    fake.hang_up()
    second_fake.json(200, {"cursor": "c-test", "epochs": [{"epoch": 0, "low_watermark": 3, "acked_above": []}]})
    state = fast_client([fake.url, second_fake.url]).ack("c-test", 0, [2])
    assert acked_batches(state, 0) == {0, 1, 2}
    assert fake.requests[0]["body"] == second_fake.requests[0]["body"] == b'{"epoch": 0, "batches": [2]}'


def test_a_cut_stream_reopens_on_the_next_daemon_with_the_same_parameters(fake, second_fake):
    from test_serve_client import batch_message, end_message

    fake.stream(batch_message(0) + batch_message(1) + batch_message(2)[:100])  # cut inside batch 2
    second_fake.stream(batch_message(2) + batch_message(3) + end_message("complete", 2))
    client = fast_client([fake.url, second_fake.url])
    got = [b.index for b in client.batches("digits", 8, **PLAN)]
    assert got == [0, 1, 2, 3]
    assert fake.requests[0]["query"] == second_fake.requests[0]["query"]
    assert client.reconnects == 1 and client.url == second_fake.url


def test_a_submission_resent_to_the_next_daemon_counts_already_done_as_done(fake, second_fake):
    from test_serve_infer_client import CURSOR, error, outputs_of, padded_batch

    fake.stream(padded_batch(lease=9), cursor=CURSOR)
    fake.hang_up()  # the first daemon dies with the submission: did it commit? The next one knows.
    second_fake.json(409, error("already_done"))
    client = fast_client([fake.url, second_fake.url])
    batch = next(client.infer("d", output="preds", batch_size=4, split="val"))
    assert batch.submit(outputs_of())["already_done"] is True
    assert second_fake.requests[0]["headers"]["MBData-Lease"] == "9"
    assert second_fake.requests[0]["body"] == fake.requests[-1]["body"]


# --- real daemons over one dataset and one state ---------------------------------------------


class Consumer:
    """A trainer's record: each batch delivered and each ack answered 2xx, checked as they
    happen — a batch delivered after its ack fails the test. `count` batches of `size`
    samples make the epoch."""

    def __init__(self, count: int = COUNT, size: int = SIZE):
        self.count, self.size = count, size
        self.delivered: list[int] = []
        self.acked: dict[int, int] = {}
        self.ids: dict[int, list[int]] = {}

    def deliver(self, batch) -> None:
        assert batch.index not in self.acked, f"batch {batch.index} delivered again after its ack"
        self.delivered.append(batch.index)
        ids = batch.ids.tolist()
        assert self.ids.setdefault(batch.index, ids) == ids, f"batch {batch.index} came back with other samples"

    def acked_once(self, index: int) -> None:
        self.acked[index] = self.acked.get(index, 0) + 1

    @property
    def samples(self) -> list[int]:
        return [i for ids in self.ids.values() for i in ids]

    def assert_every_batch_acked_exactly_once(self) -> None:
        assert sorted(self.acked) == list(range(self.count)), f"missing {sorted(set(range(self.count)) - set(self.acked))}"
        assert set(self.acked.values()) == {1}, {k: v for k, v in self.acked.items() if v != 1}
        assert len(self.samples) == len(set(self.samples)) == self.count * self.size


def in_background(action) -> threading.Thread:
    """Runs `action` on a thread; its failure is re-raised by `join_ok`."""
    errors = []

    def run():
        try:
            action()
        except BaseException as error:  # pytest.fail inside the thread
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


def join_ok(thread: threading.Thread, timeout: float = 60) -> None:
    thread.join(timeout)
    assert not thread.is_alive(), "the background action did not finish"
    assert not thread.errors, thread.errors  # type: ignore[attr-defined]


def failover_client(urls) -> Client:
    # Up to a minute of rounds: long enough for a successor daemon to start.
    return Client(urls, retries=200, backoff=0.05, max_backoff=0.25, give_up_after=60)


def test_a_dead_daemon_listed_first_costs_nothing(make_cluster, group):
    cluster = make_cluster(1)
    client = Client([dead_url(), *cluster.urls], backoff=30, max_backoff=30)
    consumer = Consumer()
    started = time.monotonic()
    for batch in client.batches("digits", SIZE, group=group, **PLAN):
        consumer.deliver(batch)
        batch.ack()
        consumer.acked_once(batch.index)
    assert time.monotonic() - started < 25, "a backoff was waited before the live daemon was tried"
    consumer.assert_every_batch_acked_exactly_once()
    assert consumer.delivered == list(range(COUNT))
    assert acked_batches(client.cursor(), 0) == set(range(COUNT))


# The long-stream dataset (conftest's `long_stream_db`, 256 samples of 256 KiB) as two ranks
# read it: global batches of 2, one sample per rank, 128 batches of 256 KiB per rank.
LONG_SIZE, LONG_WORLD = 2, 2
LONG_COUNT = 256 // LONG_SIZE
# Acks of each rank before daemon A is killed: 120 batches (30 MiB) of each stream remain.
KILL_AFTER = 8


@pytest.mark.parametrize("wait", [True, False], ids=["acks-sent", "acks-queued"])
def test_partition_streams_move_to_the_next_daemon_when_their_daemon_is_killed(make_cluster, long_stream_db, group, wait):
    """Two ranks stream from daemon A, each pacing itself as a trainer does; once both have
    acked 8 batches (and, with queued acks, have acks in flight) A is SIGKILLed, while most
    of each stream — more than every buffer between A and the rank holds — is still to
    come, so both streams are cut mid-epoch. Each rank moves to B and resumes from its
    cursor: queued acks land before the stream reopens, so no batch acked comes again (a
    batch received but not acked may, and is acked then), and every batch is acked exactly
    once. With PostgreSQL B first refuses the cursors (`cursor_busy`) until A's stream
    claims lapse; the clients retry."""
    cluster = make_cluster(2, dataset=long_stream_db)
    all_acked = threading.Barrier(LONG_WORLD + 1)  # each rank's 8th ack, and the test
    killed = threading.Event()
    clients = [failover_client(cluster.urls) for _ in range(LONG_WORLD)]
    consumers = [Consumer(LONG_COUNT, LONG_SIZE // LONG_WORLD) for _ in range(LONG_WORLD)]

    def train(rank: int) -> None:
        client, consumer = clients[rank], consumers[rank]
        for batch in client.batches("digits", LONG_SIZE, group=group, epoch=0, seed=7, rank=rank, world=LONG_WORLD):
            consumer.deliver(batch)
            time.sleep(0.002)  # a training step: the rank reads no faster than it trains
            batch.ack(wait=wait)
            consumer.acked_once(batch.index)
            if len(consumer.delivered) == KILL_AFTER:
                all_acked.wait(120)
                assert killed.wait(120), "daemon A was not killed"
        client.flush()

    ranks = [in_background(lambda rank=rank: train(rank)) for rank in range(LONG_WORLD)]
    all_acked.wait(120)
    _, _, metrics = request(cluster.servers[0].port, "GET", "/metrics")
    served = metric_samples(metrics.decode()).get("mbdata_batches_served_total", 0)
    cluster.kill(0)
    killed.set()
    assert served < LONG_WORLD * LONG_COUNT - 2 * LONG_WORLD, f"daemon A had written {served} batches before the kill"
    for rank in ranks:
        join_ok(rank, timeout=300)
    for client, consumer in zip(clients, consumers):
        assert client.reconnects >= 1, "the stream was not cut: it ended before the kill"
        assert client.url == cluster.urls[1]
        consumer.assert_every_batch_acked_exactly_once()
        assert acked_batches(client.cursor(), 0) == set(range(LONG_COUNT))
    samples = consumers[0].samples + consumers[1].samples
    assert len(samples) == len(set(samples)) == LONG_COUNT * LONG_SIZE, "the ranks' batches overlap"


def test_share_leases_are_asked_for_again_on_the_next_daemon(make_cluster, group):
    """Share mode: A is killed while this consumer holds a lease. Its ack goes to B, which
    does not know a lease of A's (409 lease_expired; a shared store may know it and accept
    it): the batch is dropped and leased again later. Every batch is acked exactly once."""
    cluster = make_cluster(2)
    client = failover_client(cluster.urls)
    consumer = Consumer()
    expired = []
    for batch in client.share("digits", SIZE, group=group, lease_seconds=60, **SHARE_PLAN):
        consumer.deliver(batch)
        if len(consumer.delivered) == 20:
            cluster.kill(0)
        try:
            batch.ack(wait=True)  # each ack's outcome, for the accounting below
        except MBDataError as error:
            assert error.code == "lease_expired", error
            expired.append(batch.index)
            continue
        consumer.acked_once(batch.index)
    assert client.url == cluster.urls[1]
    consumer.assert_every_batch_acked_exactly_once()
    assert all(consumer.delivered.count(index) == 2 for index in expired)
    if not cluster.concurrent:  # B never knew A's leases: the one held at the kill expired
        assert len(expired) == 1, expired


def test_six_share_consumers_on_three_daemons_ack_every_batch_once_though_one_is_killed(make_cluster, group):
    """Six share consumers, two starting on each of three daemons over one PostgreSQL; daemon 0
    is SIGKILLed mid-epoch. Its consumers move on, its leases expire on the database's clock
    and their batches go to the others: every batch is acked exactly once."""
    cluster = make_cluster(3)
    if not cluster.concurrent:
        pytest.skip("with SQLite state one daemon runs at a time: the consumers cannot spread over three")
    lock = threading.Lock()
    acked: dict[int, int] = {}
    delivered = [0]
    killed = threading.Event()

    def consume(first: int) -> None:
        client = failover_client(cluster.urls[first:] + cluster.urls[:first])
        for batch in client.share("digits", SIZE, group=group, lease_seconds=2, **SHARE_PLAN):
            with lock:
                delivered[0] += 1
                kill = delivered[0] == 30 and not killed.is_set()
                if kill:
                    killed.set()
            if kill:
                cluster.kill(0)
            try:
                batch.ack(wait=True)  # each ack's outcome, for the accounting below
            except MBDataError as error:
                assert error.code == "lease_expired", error
                continue
            with lock:
                acked[batch.index] = acked.get(batch.index, 0) + 1

    consumers = [in_background(lambda first=consumer % 3: consume(first)) for consumer in range(6)]
    for consumer in consumers:
        join_ok(consumer)
    assert killed.is_set(), "the epoch ended before the kill"
    assert sorted(acked) == list(range(COUNT)), f"missing {sorted(set(range(COUNT)) - set(acked))}"
    assert set(acked.values()) == {1}, {k: v for k, v in acked.items() if v != 1}
