"""Cursors: acks, a state saved with the model and resumed, reset, mismatch, and a daemon
restarted in the middle of an epoch."""

from __future__ import annotations

import json
import threading
import time

import pytest

from mbdata_client import Client, MBDataError, acked_batches
from servetest import BATCH, SEED, TRAIN_BATCHES, assert_error, request

PLAN = dict(epoch=0, seed=SEED, rank=0, world=1, split="train")


def take(stream, count):
    batches = []
    for batch in stream:
        batches.append(batch)
        if len(batches) == count:
            break
    stream.close()
    return batches


def test_a_plans_cursor_can_be_read_before_streaming(server, group):
    client = Client(server.url)
    state = client.plan_cursor("digits", BATCH, group=group, **PLAN)
    assert state["batches_per_epoch"] == TRAIN_BATCHES
    assert acked_batches(state, 0) == set()
    assert (state["dataset"], state["group"], state["mode"], state["rank"]) == ("digits", group, "partition", 0)
    batches = take(client.batches("digits", BATCH, group=group, **PLAN), 2)
    assert client.cursor_id == state["cursor"]
    assert client.stream_headers["mbdata-plan"] == state["plan_fingerprint"]
    batches[0].ack()
    assert acked_batches(client.plan_cursor("digits", BATCH, group=group, **PLAN), 0) == {0}
    # other ranks and modes name other cursors; share's is the one its leases use
    other = client.plan_cursor("digits", BATCH, group=group, **{**PLAN, "rank": 1, "world": 2})
    assert other["cursor"] != state["cursor"] and other["batches_per_epoch"] == TRAIN_BATCHES
    shared = client.plan_cursor("digits", BATCH, epoch=0, seed=SEED, group=group, split="train", mode="share")
    assert shared["mode"] == "share" and shared["cursor"] not in (state["cursor"], other["cursor"])
    lease = next(client.share("digits", BATCH, epoch=0, seed=SEED, group=group, split="train", lease_seconds=5))
    assert lease.cursor == shared["cursor"]
    lease.ack()
    error = assert_error(request(server.port, "GET", f"/v1/datasets/digits/cursor?batch_size={BATCH}&world=3"),
                         400, "invalid_parameter")
    assert "world" in error["message"] or "batch_size" in error["message"]


def test_the_cursor_advances_only_on_ack(server, group):
    client = Client(server.url)
    batches = take(client.batches("digits", BATCH, group=group, **PLAN), 6)
    state = client.cursor()
    assert acked_batches(state, 0) == set(), "sending must not advance the cursor"
    for batch in batches[:3]:
        batch.ack()
    batches[5].ack()
    state = client.cursor()
    assert state["cursor"] == client.cursor_id
    assert (state["dataset"], state["group"], state["mode"], state["rank"]) == ("digits", group, "partition", 0)
    assert state["plan"]["seed"] == SEED and state["plan"]["batch_size"] == BATCH and state["plan"]["world"] == 1
    assert state["plan"]["split"] == "train" and state["plan"]["tail"] == "drop" and state["plan"]["shuffle"] is True
    assert state["batches_per_epoch"] == TRAIN_BATCHES
    assert state["plan_fingerprint"] == client.stream_headers["mbdata-plan"]
    assert state["dataset_version"] == int(client.stream_headers["mbdata-dataset-version"]) == 1
    (epoch,) = state["epochs"]
    assert epoch["epoch"] == 0 and epoch["low_watermark"] == 3 and epoch["acked_above"] == [5]
    batches[1].ack()  # twice is harmless
    assert acked_batches(client.cursor(), 0) == {0, 1, 2, 5}
    # the same parameters get the same cursor, which skips acked batches
    again = Client(server.url)
    indices = [b.index for b in again.batches("digits", BATCH, group=group, **PLAN)]
    assert again.cursor_id == client.cursor_id
    assert indices == [3, 4] + list(range(6, TRAIN_BATCHES))


def test_resume_from_a_saved_cursor_gets_exactly_the_rest(server, reference, group):
    client = Client(server.url)
    stream = client.batches("digits", BATCH, group=group, **PLAN)
    first = take(stream, 9)
    for batch in first[:5] + [first[7]]:
        batch.ack()
    saved = json.loads(json.dumps(client.cursor()))  # as a checkpoint would store it
    assert acked_batches(saved, 0) == {0, 1, 2, 3, 4, 7}
    # training went on past the checkpoint (acks 5, 6, 8…11) and then crashed
    for batch in take(client.batches("digits", BATCH, group=group, **PLAN), 6):
        batch.ack()
    assert acked_batches(client.cursor(), 0) == set(range(12))
    # a new process restores the checkpoint: the daemon's cursor goes back to it
    restored = Client(server.url)
    rest = list(restored.batches("digits", BATCH, group=group, resume=saved, **PLAN))
    expected = [5, 6] + list(range(8, TRAIN_BATCHES))
    assert [b.index for b in rest] == expected
    ids = reference(SEED, 0)
    assert [b.ids.tolist() for b in rest] == [ids[k].tolist() for k in expected]
    assert acked_batches(restored.cursor(), 0) == {0, 1, 2, 3, 4, 7}


def test_reset_forgets_every_ack(server, group):
    client = Client(server.url)
    for batch in take(client.batches("digits", BATCH, group=group, **PLAN), 4):
        batch.ack()
    state = client.cursor()
    client.reset_cursor(state)
    assert acked_batches(client.cursor(), 0) == set()
    assert [b.index for b in client.batches("digits", BATCH, group=group, **PLAN)] == list(range(TRAIN_BATCHES))
    status, _, _ = request(server.port, "DELETE", f"/v1/cursors/{state['cursor']}")
    assert status == 204


def test_a_state_for_another_plan_is_refused(server, group):
    a, b = Client(server.url), Client(server.url)
    take(a.batches("digits", BATCH, group=group, **PLAN), 1)
    take(b.batches("digits", BATCH, group=group, **{**PLAN, "seed": SEED + 1}), 1)
    assert a.cursor_id != b.cursor_id
    state_b = b.cursor()
    response = request(server.port, "PUT", f"/v1/cursors/{a.cursor_id}", {**state_b, "cursor": a.cursor_id})
    assert_error(response, 409, "cursor_mismatch")
    with pytest.raises(ValueError, match="seed"):
        a.batches("digits", BATCH, group=group, resume=state_b, **PLAN)


def test_a_restarted_daemon_resumes_from_the_acked_batches(make_server, reference, group):
    daemon = make_server()
    client = Client(daemon.url)
    received = take(client.batches("digits", BATCH, group=group, **PLAN), 8)
    for batch in received[:7]:
        batch.ack()  # batch 7 was received but not acked
    client.flush()  # queued acks are on the daemon (acked means done) before it stops
    cursor = client.cursor_id
    daemon.restart()
    state = Client(daemon.url).cursor(cursor)
    assert acked_batches(state, 0) == set(range(7)), "acks must survive a restart (--state)"
    again = Client(daemon.url)
    rest = list(again.batches("digits", BATCH, group=group, **PLAN))
    assert again.cursor_id == cursor
    assert int(again.stream_headers["mbdata-remaining"]) == TRAIN_BATCHES - 7
    assert [b.index for b in rest] == list(range(7, TRAIN_BATCHES))
    ids = reference(SEED, 0)
    assert [b.ids.tolist() for b in rest] == [ids[k].tolist() for k in range(7, TRAIN_BATCHES)]


def test_a_client_rides_through_a_daemon_restart(make_server, group):
    """The daemon restarts while a trainer is in its epoch: the open stream ends with
    `draining`, the client retries its acks until the new daemon answers and reconnects
    its stream; every batch is delivered and acked, none twice (each batch was acked
    before the next one was asked for). Batches of 8: 181 messages, more than the socket
    buffers hold, so the stream is still open when the daemon stops."""
    daemon = make_server()
    client = Client(daemon.url, retries=40, backoff=0.05, max_backoff=0.25)
    restart_errors = []

    def restart():
        try:
            daemon.restart()
        except BaseException as error:  # pytest.fail inside the thread
            restart_errors.append(error)

    size = 8
    count = 1449 // size
    thread = None
    indices = []
    for batch in client.batches("digits", size, group=group, **PLAN):
        indices.append(batch.index)
        batch.ack()
        if len(indices) == 5:
            thread = threading.Thread(target=restart)
            thread.start()
    thread.join(60)
    assert not restart_errors, restart_errors
    assert daemon.starts == 2
    assert client.reconnects >= 1, "the stream never reconnected: it ended before the restart"
    assert sorted(indices) == list(range(count)) and len(indices) == count, indices
    assert acked_batches(client.cursor(), 0) == set(range(count))


def test_unknown_cursors_and_bad_ack_bodies(server, group):
    assert_error(request(server.port, "GET", "/v1/cursors/c-0000000000000000"), 404, "unknown_cursor")
    client = Client(server.url)
    take(client.batches("digits", BATCH, group=group, **PLAN), 1)
    acks = f"/v1/cursors/{client.cursor_id}/acks"
    assert_error(request(server.port, "POST", acks, b"not json", headers={"Content-Type": "application/json"}),
                 400, "invalid_body")
    assert_error(request(server.port, "POST", acks, {"epoch": 0, "batches": "three"}), 400, "invalid_body")
    assert_error(request(server.port, "POST", acks, {"epoch": 0, "batches": [TRAIN_BATCHES]}), 400, "invalid_body")
    assert_error(request(server.port, "PUT", f"/v1/cursors/{client.cursor_id}", b"{",
                         headers={"Content-Type": "application/json"}), 400, "invalid_body")
    with pytest.raises(MBDataError) as caught:
        client.ack("c-0000000000000000", 0, [1])
    assert (caught.value.status, caught.value.code) == (404, "unknown_cursor")
    assert acked_batches(client.cursor(), 0) == set()


def test_a_body_over_1_mib_is_refused(server, group):
    client = Client(server.url)
    take(client.batches("digits", BATCH, group=group, **PLAN), 1)
    acks = f"/v1/cursors/{client.cursor_id}/acks"
    ack = json.dumps({"epoch": 0, "batches": [1]}).encode()
    exactly = ack + b" " * ((1 << 20) - len(ack))
    status, _, body = request(server.port, "POST", acks, exactly, headers={"Content-Type": "application/json"})
    assert status == 200, f"a body of exactly 1 MiB is allowed: {status} {body[:200]!r}"
    assert_error(request(server.port, "POST", acks, exactly + b" ", headers={"Content-Type": "application/json"}),
                 413, "body_too_large")


def test_queued_acks_reach_the_daemon_by_flush_and_a_late_lease_ack_surfaces_there(server, group):
    client = Client(server.url)
    batches = take(client.batches("digits", BATCH, group=group, **PLAN), 5)
    for batch in batches[:4]:
        assert batch.ack(wait=False) is None
    client.flush()
    # read through another client: nothing of the first one's state is cached
    assert acked_batches(Client(server.url).cursor(client.cursor_id), 0) == {0, 1, 2, 3}
    # a complete stream flushes its queued acks before it ends
    for batch in client.batches("digits", BATCH, group=group, **PLAN):
        batch.ack(wait=False)
    assert acked_batches(Client(server.url).cursor(client.cursor_id), 0) == set(range(TRAIN_BATCHES))

    leases = client.share("digits", BATCH, epoch=0, seed=SEED, group=group, split="train", lease_seconds=1)
    lease = next(leases)
    leases.close()
    time.sleep(1.3)
    lease.ack(wait=False)
    with pytest.raises(MBDataError) as raised:
        client.flush()
    assert raised.value.code == "lease_expired"
    client.flush()  # the error is reported once
