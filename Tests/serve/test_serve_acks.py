"""Acks queued by `batch.ack()` (the default): a bounded window, errors on the next call,
lease acks that one expired lease cannot sink, and every ack on the daemon when the loop
ends or a state is read."""

from __future__ import annotations

import threading
import time

import pytest

from mbdata_client import Client, MBDataError, acked_batches
from mbdata_client.acks import AckQueue
from servetest import BATCH, SEED, TRAIN_BATCHES

PLAN = dict(epoch=0, seed=SEED, rank=0, world=1, split="train")


class GatedSender:
    """Records acks; each request waits until `gate` is set."""

    def __init__(self, expired=()):
        self.gate = threading.Event()
        self.requests: list[tuple[str, list[int]]] = []
        self.expired = set(expired)

    def ack(self, cursor_id, epoch, batches):
        self.gate.wait(30)
        self.requests.append(("batches", list(batches)))
        return {}

    def ack_leases(self, cursor_id, leases):
        self.gate.wait(30)
        if self.expired & set(leases):
            raise MBDataError(409, "lease_expired", f"lease of {leases} expired")
        self.requests.append(("leases", list(leases)))
        return {}


def test_ack_blocks_while_the_window_is_full():
    sender = GatedSender()
    acks = AckQueue(sender, window=2)
    acks.add("c", 0, None, 0)
    acks.add("c", 0, None, 1)
    third_added = threading.Event()
    adder = threading.Thread(target=lambda: (acks.add("c", 0, None, 2), third_added.set()))
    adder.start()
    assert not third_added.wait(0.3), "a third ack was queued while two were unsent"
    sender.gate.set()
    assert third_added.wait(30)
    adder.join()
    acks.flush()
    assert sorted(b for _, batches in sender.requests for b in batches) == [0, 1, 2]


def test_the_sender_stops_lingering_once_half_the_window_is_queued(monkeypatch):
    # A fast consumer must not fill the whole window during the linger and then block
    # until the daemon answers: half the window sends at once, the other half fills meanwhile.
    monkeypatch.setattr(AckQueue, "LINGER", 3.0)
    sender = GatedSender()
    sender.gate.set()
    acks = AckQueue(sender, window=8)
    for batch in range(3):
        acks.add("c", 0, None, batch)
    time.sleep(0.3)
    assert sender.requests == [], "three acks of a window of eight wait out the linger"
    acks.add("c", 0, None, 3)
    deadline = time.monotonic() + 2.0
    while not sender.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sender.requests == [("batches", [0, 1, 2, 3])], "half the window was sent before the linger ended"
    acks.add("c", 0, None, 4)
    acks.flush()
    assert sender.requests == [("batches", [0, 1, 2, 3]), ("batches", [4])]


def test_a_flush_does_not_wait_out_the_linger(monkeypatch):
    # The end of every stream flushes: the acks queued last must go at once, not after the
    # linger meant to gather more of them.
    monkeypatch.setattr(AckQueue, "LINGER", 5.0)
    sender = GatedSender()
    sender.gate.set()
    acks = AckQueue(sender, window=8)
    acks.add("c", 0, None, 0)
    time.sleep(0.1)  # the sender is lingering now
    started = time.monotonic()
    acks.flush()
    assert time.monotonic() - started < 2.5, "flush waited out the 5 s linger"
    assert sender.requests == [("batches", [0])]
    acks.add("c", 0, None, 1)  # and a later ack lingers again, as before
    time.sleep(0.3)
    assert sender.requests == [("batches", [0])]
    acks.flush()
    assert sender.requests == [("batches", [0]), ("batches", [1])]


def test_an_ack_error_surfaces_on_the_next_call_once():
    sender = GatedSender(expired={5})
    sender.gate.set()
    acks = AckQueue(sender, window=4)
    acks.add("c", 0, 5, 0)
    with pytest.raises(MBDataError, match="lease_expired"):
        acks.flush()
    acks.check()  # raised once only
    acks.flush()


def test_one_expired_lease_does_not_keep_the_others_from_being_acked():
    sender = GatedSender(expired={2})
    acks = AckQueue(sender, window=8)
    for lease in (1, 2, 3):
        acks.add("c", 0, lease, lease)
    sender.gate.set()
    with pytest.raises(MBDataError, match="lease_expired"):
        acks.flush()
    assert sorted(lease for kind, leases in sender.requests for lease in leases if kind == "leases") == [1, 3]


def test_the_default_ack_is_on_the_daemon_when_the_loop_ends(server, group):
    client = Client(server.url)
    for batch in client.batches("digits", BATCH, group=group, **PLAN):
        assert batch.ack() is None  # queued
    other = Client(server.url)  # another process's view, through the daemon only
    state = other.plan_cursor("digits", BATCH, group=group, **PLAN)
    assert acked_batches(state, 0) == set(range(TRAIN_BATCHES))


def test_a_state_read_waits_for_the_queued_acks(server, group):
    client = Client(server.url)
    stream = client.batches("digits", BATCH, group=group, **PLAN)
    for _, batch in zip(range(3), stream):
        batch.ack()
    assert acked_batches(client.cursor(), 0) == {0, 1, 2}
    stream.close()


def test_ack_window_zero_sends_each_ack_before_returning(server, group):
    client = Client(server.url, ack_window=0)
    stream = client.batches("digits", BATCH, group=group, **PLAN)
    batch = next(stream)
    state = batch.ack()
    assert acked_batches(state, 0) == {0}
    stream.close()
