"""Inference through `mbdata serve` and the Python client (serve-protocol.md §8): every
sample of a job's plan gets exactly one output row — under consumers SIGKILLed at random,
expired leases and a daemon SIGKILLed and restarted mid-job —, a job's plan stays pinned
while more samples are ingested beside it, refused submissions write nothing, and torch
tensors are accepted. Rows are read back from the dataset file with sqlite3."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from infer_consumer import OUTPUT, SPLIT, outputs
from mbdata_client import Client, MBDataError, acked_batches
from mbdata_client.infer import Submitter
from servetest import (DIGITS_SCHEMA, REPO_ROOT, VAL, assert_error, binary, events, metric_samples, read_digits,
                       request, wait_for)

CONSUMER = Path(__file__).with_name("infer_consumer.py")
PREDS_SCHEMA = REPO_ROOT / "samples" / "digits" / "preds.schema.json"
TABLE = f"outputs_{OUTPUT}"
BATCH = 16
BATCHES = -(-VAL // BATCH)  # tail=pad: 22 batches, the last with 12 real rows


def mbdata(*arguments) -> str:
    result = subprocess.run([str(binary()), *map(str, arguments)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"mbdata {' '.join(map(str, arguments))} exited {result.returncode}\n" \
                                   f"{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture
def infer_server(make_server):
    """infer_server(*options) → a daemon of its own whose dataset has the output `preds`."""

    def make(*options):
        daemon = make_server(*options, start=False)
        mbdata("outputs", "create", daemon.dataset, "--name", OUTPUT, "--schema", PREDS_SCHEMA)
        return daemon.start()

    return make


def query(dataset: Path, sql: str, arguments=()) -> list[tuple]:
    with sqlite3.connect(dataset) as db:
        return db.execute(sql, arguments).fetchall()


def output_rows(dataset: Path) -> dict[int, tuple[int, list[float]]]:
    """_id → (pred, prob) of every row of the output table."""
    return {i: (pred, np.frombuffer(prob, "<f4").tolist())
            for i, pred, prob in query(dataset, f"select _id, pred, prob from {TABLE} order by _id")}


def expected_rows(dataset: Path, ids) -> dict[int, tuple[int, list[float]]]:
    """The rows `infer_consumer.outputs` computes for the samples `ids`, from the file."""
    truth = read_digits(dataset)
    ids = [int(i) for i in ids]
    images = np.stack([np.frombuffer(truth.rows[i][2], np.uint8).reshape(8, 8) for i in ids])
    computed = outputs(images)
    return {i: (int(computed["pred"][k]), computed["prob"][k].tolist()) for k, i in enumerate(ids)}


def committed_batches(dataset: Path) -> list[int]:
    return [batch for (batch,) in query(dataset, "select batch from mbdata_output_batches order by batch")]


def assert_exactly_once(daemon, expected_ids=None):
    """Every val sample (or `expected_ids`) has exactly one output row, equal to what the
    consumers compute; every batch of the job is committed once; the job says complete."""
    ids = sorted(expected_ids if expected_ids is not None else read_digits(daemon.dataset).val)
    rows = output_rows(daemon.dataset)
    assert sorted(rows) == ids, f"{len(rows)} output rows for {len(ids)} samples"
    assert rows == expected_rows(daemon.dataset, ids), "an output row differs from what the consumers computed"
    assert committed_batches(daemon.dataset) == list(range(BATCHES))
    state = Client(daemon.url).infer_cursor("digits", OUTPUT, BATCH, split=SPLIT)
    assert state["batches_per_epoch"] == BATCHES and acked_batches(state, 0) == set(range(BATCHES))


class Consumers:
    """Consumer processes (infer_consumer.py), each with its JSON-lines log."""

    def __init__(self, daemon, folder: Path, *options):
        self.daemon, self.folder, self.options = daemon, folder, [str(o) for o in options]
        self.processes: list[tuple[subprocess.Popen, Path]] = []

    def spawn(self, *extra) -> tuple[subprocess.Popen, Path]:
        log = self.folder / f"consumer-{len(self.processes)}.jsonl"
        process = subprocess.Popen([sys.executable, str(CONSUMER), self.daemon.url, str(log), "--batch-size",
                                    str(BATCH), *self.options, *map(str, extra)],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.processes.append((process, log))
        return process, log

    def submitted(self) -> int:
        return sum(len(events(log, "submitted")) for _, log in self.processes)

    def all_events(self, kind=None) -> list[dict]:
        return [e for _, log in self.processes for e in events(log, kind)]

    def wait_alive(self, timeout=90) -> None:
        """Waits for every process not killed; each must exit 0 having seen the job complete."""
        for process, log in self.processes:
            code = process.wait(timeout)
            if code == -signal.SIGKILL:
                continue
            assert code == 0, process.stdout.read().decode(errors="replace")
            assert events(log, "done"), f"{log.name} did not see the job complete"

    def kill_all(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)


@pytest.fixture
def consumers(tmp_path):
    made = []

    def make(daemon, *options):
        made.append(Consumers(daemon, tmp_path, *options))
        return made[-1]

    yield make
    for group in made:
        group.kill_all()


def test_consumers_killed_at_random_leave_every_sample_exactly_one_row(infer_server, consumers):
    daemon = infer_server()
    rng = random.Random(12)
    group = consumers(daemon, "--lease-seconds", 2, "--delay", 0.03)
    holder, holder_log = group.spawn("--hold")  # takes a lease and dies with it
    wait_for(lambda: events(holder_log, "delivered") or holder.poll() is not None, 30, "the holder's lease")
    live = [group.spawn() for _ in range(3)]
    holder.send_signal(signal.SIGKILL)
    kills = 0
    for target in (3, 8, 13):  # batches submitted before each kill
        wait_for(lambda: group.submitted() >= target or all(p.poll() is not None for p, _ in live), 60,
                 f"{target} batches submitted")
        running = [entry for entry in live if entry[0].poll() is None]
        if not running:
            break
        victim, _ = rng.choice(running)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        kills += 1
        live.append(group.spawn())  # a re-run joins in its place
    group.wait_alive()
    assert kills >= 1, "the job ended before any consumer could be killed"
    assert_exactly_once(daemon)
    submitted = group.all_events("submitted")
    assert len({e["batch"] for e in submitted}) == len(submitted), "a batch was committed twice"


def test_an_expired_lease_is_refused_and_its_batch_goes_to_another_consumer(infer_server):
    daemon = infer_server()
    size = VAL  # one batch holds the whole val split
    first = next(Client(daemon.url).infer("digits", output=OUTPUT, batch_size=size, split=SPLIT, lease_seconds=1))
    # The second consumer is answered 204 until the first one's lease expires.
    second = next(Client(daemon.url, poll_interval=0.05).infer("digits", output=OUTPUT, batch_size=size,
                                                                split=SPLIT, lease_seconds=30))
    assert second.index == first.index == 0 and second.lease != first.lease
    late = {"pred": np.full(size, 7, np.int64), "prob": np.ones((size, 10), np.float32)}
    with pytest.raises(MBDataError) as refused:
        first.submit(late)  # its lease expired; the batch is another consumer's now
    assert (refused.value.status, refused.value.code) == (409, "lease_expired")
    assert query(daemon.dataset, f"select count(*) from {TABLE}") == [(0,)]
    answer = second.submit(outputs(second["image"]))
    assert answer["rows"] == VAL and answer["finished"] == answer["batches"] == 1
    with pytest.raises(MBDataError) as refused:
        first.submit(late)  # and now the batch is done
    assert (refused.value.status, refused.value.code) == (409, "already_done")
    rows = output_rows(daemon.dataset)
    assert len(rows) == VAL and all(pred != 7 or prob != [1.0] * 10 for pred, prob in rows.values())
    assert rows == expected_rows(daemon.dataset, sorted(rows))


def test_refused_submissions_leave_no_rows(infer_server):
    daemon = infer_server()
    client = Client(daemon.url)
    batch = next(client.infer("digits", output=OUTPUT, batch_size=BATCH, split=SPLIT))
    good = outputs(batch["image"])
    rows = len(batch.ids)
    cases = {
        "missing field": ({"pred": good["pred"]}, "prob"),
        "unknown tensor": ({**good, "extra": good["pred"]}, "extra"),
        "wrong dtype": ({**good, "prob": good["prob"].astype(np.float64)}, "prob"),
        "wrong shape": ({**good, "prob": good["prob"][:-1]}, "prob"),
        "wrong row shape": ({**good, "prob": good["prob"][:, :9]}, "prob"),
        "wrong _id": ({**good, "_id": batch.ids[::-1].copy()}, "_id"),
    }
    for name, (submission, field) in cases.items():
        with pytest.raises(MBDataError) as refused:
            batch.submit(submission)
        assert (refused.value.status, refused.value.code, refused.value.field) == (400, "invalid_outputs", field), \
            f"{name}: {refused.value}"
        assert query(daemon.dataset, f"select count(*) from {TABLE}") == [(0,)], name
        assert committed_batches(daemon.dataset) == [], name
    path = f"/v1/cursors/{batch.cursor}/outputs"
    body, content_type = Submitter(client._transport).body(batch, good)
    headers = {"Content-Type": content_type, "MBData-Lease": str(batch.lease)}
    assert_error(request(daemon.port, "POST", path, b"not safetensors", headers=headers), 400, "invalid_body")
    assert_error(request(daemon.port, "POST", path, bytes(body), headers={**headers, "MBData-Lease": "x"}),
                 400, "invalid_body")
    assert_error(request(daemon.port, "POST", path, bytes(body), headers={**headers, "MBData-Lease": str(batch.lease ^ (1 << 40))}),
                 409, "lease_expired")
    assert query(daemon.dataset, f"select count(*) from {TABLE}") == [(0,)]
    # The lease outlived every refusal: the corrected submission is accepted.
    answer = batch.submit(good)
    assert answer == {"cursor": batch.cursor, "batch": batch.index, "rows": rows, "finished": 1, "batches": BATCHES}
    # A retry of a committed submission (its answer lost) is told it is done, and writes nothing.
    assert_error(request(daemon.port, "POST", path, bytes(body), headers=headers), 409, "already_done")
    assert output_rows(daemon.dataset) == expected_rows(daemon.dataset, batch.ids.tolist())


def test_a_daemon_killed_mid_job_resumes_and_writes_exactly_once(infer_server, consumers):
    daemon = infer_server()
    group = consumers(daemon, "--delay", 0.05)
    for _ in range(2):
        group.spawn()
    wait_for(lambda: group.submitted() >= 5, 60, "5 batches submitted")
    daemon.kill()  # SIGKILL, mid-job: leases and in-flight submissions are lost
    assert 5 <= len(committed_batches(daemon.dataset)) < BATCHES
    daemon.start()  # same port; the consumers' retries reach it
    group.wait_alive()
    assert_exactly_once(daemon)


def test_an_ingest_beside_the_job_leaves_its_plan_pinned(infer_server, consumers, tmp_path):
    daemon = infer_server()
    client = Client(daemon.url)
    pinned = client.infer_cursor("digits", OUTPUT, BATCH, split=SPLIT)  # makes the job
    before = read_digits(daemon.dataset)
    more = tmp_path / "more.jsonl"
    rng = np.random.default_rng(3)
    more.write_text("".join(
        json.dumps({"id": 5000 + i, "image": rng.integers(0, 17, (8, 8)).tolist(), "label": int(i % 10)}) + "\n"
        for i in range(40)))
    mbdata("ingest", daemon.dataset, "--schema", DIGITS_SCHEMA, "--split", SPLIT, more)
    after = read_digits(daemon.dataset)
    assert len(after.val) == len(before.val) + 40
    group = consumers(daemon)
    group.spawn()
    group.wait_alive()
    assert_exactly_once(daemon, before.val)
    state = client.infer_cursor("digits", OUTPUT, BATCH, split=SPLIT)
    assert state["dataset_version"] == pinned["dataset_version"] and state["cursor"] == pinned["cursor"]
    new_ids = set(after.val) - set(before.val)
    assert not new_ids & set(output_rows(daemon.dataset)), "a sample ingested after the job started has an output"


@pytest.mark.parametrize("lease_ahead", [0, 2])
def test_queued_submissions_commit_every_sample_once_and_are_answered_when_the_loop_ends(infer_server, lease_ahead):
    daemon = infer_server()
    client = Client(daemon.url, submit_window=4)
    batches = []
    for batch in client.infer("digits", output=OUTPUT, batch_size=BATCH, split=SPLIT, lease_ahead=lease_ahead):
        image = batch["image"].copy()
        assert batch.submit(outputs(image)) is None  # queued: the next batch is leased meanwhile
        batches.append(batch)
    # The loop ended only after every queued submission was answered.
    assert [b.submitted["batch"] for b in batches] == [b.index for b in batches]
    assert sorted(b.index for b in batches) == list(range(BATCHES))
    assert_exactly_once(daemon)


def test_a_refused_queued_submission_is_raised_by_the_next_call_and_writes_nothing(infer_server):
    daemon = infer_server()
    client = Client(daemon.url, submit_window=1)
    loop = client.infer("digits", output=OUTPUT, batch_size=BATCH, split=SPLIT)
    first, second = next(loop), next(loop)
    good_first, good_second = outputs(first["image"]), outputs(second["image"])
    assert first.submit({**good_first, "prob": good_first["prob"].astype(np.float64)}, wait=False) is None
    # A window of one: the next submission waits for the first's answer, and raises its refusal.
    with pytest.raises(MBDataError) as refused:
        second.submit(good_second, wait=False)
    assert (refused.value.status, refused.value.code, refused.value.field) == (400, "invalid_outputs", "prob")
    assert committed_batches(daemon.dataset) == [] and first.submitted is None
    second.submit(good_second, wait=False)
    client.flush()  # raises nothing more: the refusal was raised once
    assert committed_batches(daemon.dataset) == [second.index] and second.submitted["rows"] == len(second.ids)
    # The refused batch's lease outlived the refusal: the corrected outputs are accepted.
    assert first.submit(good_first, wait=True)["batch"] == first.index
    assert output_rows(daemon.dataset) == expected_rows(daemon.dataset, [*first.ids, *second.ids])


def test_lz4_framed_submissions_are_accepted(infer_server):
    daemon = infer_server()
    answers = [batch.submit(outputs(batch["image"]))
               for batch in Client(daemon.url).infer("digits", output=OUTPUT, batch_size=128, split=SPLIT,
                                                      compress=True)]
    assert [a["rows"] for a in answers] == [128, 128, VAL - 256]
    assert output_rows(daemon.dataset) == expected_rows(daemon.dataset, read_digits(daemon.dataset).val)
    assert metric_samples(Client(daemon.url).metrics_text())["mbdata_outputs_rows_total"] == VAL


def test_torch_tensors_are_accepted(infer_server):
    torch = pytest.importorskip("torch")
    from mbdata_client.torch import to_torch

    daemon = infer_server()
    for batch in Client(daemon.url).infer("digits", output=OUTPUT, batch_size=128, split=SPLIT):
        images = to_torch(batch, meta=False)["image"].flatten(1)
        expected = outputs(batch["image"])
        pred = images.to(torch.int64).sum(1).remainder(10)
        prob = (images[:, :10].to(torch.float32) / 16).requires_grad_()  # detached by the client
        assert np.array_equal(pred.numpy(), expected["pred"])
        batch.submit({"pred": pred, "prob": prob.t().contiguous().t()})  # a non-contiguous view
    rows = output_rows(daemon.dataset)
    assert rows == expected_rows(daemon.dataset, read_digits(daemon.dataset).val)


def test_the_infer_digits_sample_kills_a_process_and_still_writes_every_prediction_once(infer_server):
    daemon = infer_server()
    command = [sys.executable, str(REPO_ROOT / "samples" / "infer_digits.py"), "--url", daemon.url, "--dataset",
               "digits", "--output", OUTPUT, "--db", str(daemon.dataset)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "killed inference process" in result.stdout, result.stdout
    accuracy = float(result.stdout.split("held-out accuracy (SQL join of samples and outputs_preds): ")[1].split()[0])
    assert accuracy >= 0.9, result.stdout
    assert sorted(output_rows(daemon.dataset)) == read_digits(daemon.dataset).val
