"""Share mode: leases to competing consumer processes, one of which is SIGKILLed while
holding a lease, and the refusal of late acks."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mbdata_client import Client, MBDataError, acked_batches, wire
from servetest import BATCH, SEED, TRAIN_BATCHES, TRAIN_DROPPED, assert_error, events, metric_samples, request, wait_for

CONSUMER = Path(__file__).with_name("share_consumer.py")


def test_a_killed_consumers_lease_goes_to_another_consumer(server, digits, reference, group, tmp_path):
    lease_seconds = 2
    before = metric_samples(Client(server.url).metrics_text())
    processes = []

    def spawn(name, *options):
        log = tmp_path / f"{name}.jsonl"
        process = subprocess.Popen([sys.executable, str(CONSUMER), server.url, group, str(lease_seconds), str(log),
                                    *options], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        processes.append(process)
        return process, log

    try:
        victim, victim_log = spawn("victim", "--hold")
        wait_for(lambda: events(victim_log, "delivered") or victim.poll() is not None, 30, "the victim's lease")
        assert victim.poll() is None, victim.stdout.read().decode(errors="replace")
        workers = [spawn(f"worker-{i}", "--delay", "0.03") for i in range(2)]
        wait_for(lambda: all(events(log, "delivered") for _, log in workers), 30, "both workers' first leases")
        victim.send_signal(signal.SIGKILL)  # dies mid-batch, holding its lease
        victim.wait(10)
        for process, log in workers:
            code = process.wait(60)
            assert code == 0, process.stdout.read().decode(errors="replace")
            assert events(log, "done"), f"{log.name} did not finish the epoch"
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)

    (held,) = events(victim_log, "delivered")
    worker_events = [e for _, log in workers for e in events(log)]
    acked = [e for e in worker_events if e["event"] == "acked"]
    delivered = [e for e in worker_events if e["event"] == "delivered"] + [held]
    assert not [e for e in worker_events if e["event"] == "ack_failed"], "a live consumer's ack was refused"
    assert sorted(e["batch"] for e in acked) == list(range(TRAIN_BATCHES)), "every batch acked exactly once"
    assert held["batch"] in {e["batch"] for e in acked}, "the killed consumer's batch was not delivered again"
    extra = len(delivered) - TRAIN_BATCHES
    assert 1 <= extra <= 3, f"{extra} redeliveries with 3 consumers holding one lease each"
    assert len({e["lease"] for e in delivered}) == len(delivered), "lease ids must be unique"
    # the leased batches are the plan's batches
    ids = reference(SEED, 0)
    ids_of_lease = {e["lease"]: e["ids"] for e in delivered}
    by_batch = {e["batch"]: ids_of_lease[e["lease"]] for e in acked}
    assert by_batch == {k: ids[k].tolist() for k in range(TRAIN_BATCHES)}
    union = [i for e in acked for i in ids_of_lease[e["lease"]]]
    assert len(union) == len(set(union)) == TRAIN_BATCHES * BATCH
    assert len(set(digits.train) - set(union)) == TRAIN_DROPPED
    after = metric_samples(Client(server.url).metrics_text())
    expiries = after.get("mbdata_lease_expiries_total", 0) - before.get("mbdata_lease_expiries_total", 0)
    assert expiries >= 1, "mbdata_lease_expiries_total did not count the expired lease"


def test_a_late_ack_is_refused_and_the_batch_offered_again(server, group):
    client = Client(server.url)
    stream = client.share("digits", BATCH, epoch=0, seed=SEED, group=group, split="train", lease_seconds=1)
    first = next(stream)
    assert first.lease != 0
    time.sleep(1.6)
    first.ack()  # queued: the refusal comes with the next call
    with pytest.raises(MBDataError) as caught:
        client.flush()
    assert (caught.value.status, caught.value.code) == (409, "lease_expired")
    with pytest.raises(MBDataError) as caught:
        first.ack(wait=True)
    assert (caught.value.status, caught.value.code) == (409, "lease_expired")
    second = next(stream)
    assert second.index == first.index and second.lease != first.lease, "the expired batch comes first again"
    cursor = client.cursor_id
    acks = f"/v1/cursors/{cursor}/acks"
    # a request with one expired lease acks nothing, not even its valid leases
    assert_error(request(server.port, "POST", acks, {"leases": [second.lease, first.lease]}), 409, "lease_expired")
    assert_error(request(server.port, "POST", acks, {"leases": [second.lease ^ (1 << 40)]}), 409, "lease_expired")
    assert acked_batches(client.cursor(), 0) == set()
    second.ack()
    assert acked_batches(client.cursor(), 0) == {second.index}
    stream.close()


def test_all_leased_answers_204_and_all_acked_ends_the_epoch(server, group):
    lease = f"/v1/datasets/digits/lease?batch_size={BATCH}&seed={SEED}&split=train&group={group}&lease_seconds=30"
    leases = {}
    for _ in range(TRAIN_BATCHES):
        status, headers, body = request(server.port, "POST", lease)
        assert status == 200 and headers["content-type"].startswith("application/vnd.mbdata.stream"), status
        (message,) = wire.parse_messages(body)
        assert message.kind == wire.KIND_BATCH and message.lease != 0
        leases[message.batch] = message.lease
        cursor = headers["mbdata-cursor"]
    assert sorted(leases) == list(range(TRAIN_BATCHES)), "each batch leased once"
    status, headers, body = request(server.port, "POST", lease)
    assert status == 204 and body == b"", f"every batch is leased: expected 204, got {status}"
    assert 1 <= int(headers["retry-after"]) <= 30, headers.get("retry-after")
    assert headers["mbdata-cursor"] == cursor and int(headers["mbdata-batches-per-epoch"]) == TRAIN_BATCHES
    status, _, body = request(server.port, "POST", f"/v1/cursors/{cursor}/acks", {"leases": sorted(leases.values())})
    assert status == 200, body
    status, _, body = request(server.port, "POST", lease)
    assert status == 200
    (end,) = wire.parse_messages(body)
    assert end.kind == wire.KIND_END and end.json()["reason"] == "complete"
    assert acked_batches(Client(server.url).cursor(cursor), 0) == set(range(TRAIN_BATCHES))


def test_share_parameters_are_checked(server, group):
    for value in ("0", "3601", "x"):
        response = request(server.port, "POST",
                           f"/v1/datasets/digits/lease?batch_size=64&group={group}&lease_seconds={value}")
        error = assert_error(response, 400, "invalid_parameter")
        assert "lease_seconds" in error["message"]
