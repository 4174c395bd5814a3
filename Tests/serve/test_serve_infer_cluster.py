"""Inference across daemons (serve-protocol.md §9, "Inference across daemons"): two daemons
over one PostgreSQL serve one inference job to consumers on both; daemon 0 is SIGKILLed
mid-job and its consumer moves to daemon 1, where its leases (held in the database) are
still good. Every sample of the job's plan ends with exactly one row in PostgreSQL, read
back with `mbdata outputs export --state`."""

from __future__ import annotations

import json
import os
import subprocess
import threading

import numpy as np
import pytest

import postgres_server
from infer_consumer import OUTPUT, SPLIT, outputs
from mbdata_client import Client, MBDataError
from servetest import REPO_ROOT, VAL, Cluster, binary, read_digits

pytestmark = pytest.mark.skipif(
    not (os.environ.get("MBDATA_TEST_POSTGRES") or postgres_server.binaries()), reason="PostgreSQL is not installed")

PREDS_SCHEMA = REPO_ROOT / "samples" / "digits" / "preds.schema.json"
BATCH = 16
BATCHES = -(-VAL // BATCH)


def mbdata(*arguments) -> str:
    result = subprocess.run([str(binary()), *map(str, arguments)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"mbdata {' '.join(map(str, arguments))} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_two_daemons_on_one_postgresql_write_every_sample_of_a_job_once_though_one_is_killed(postgres, digits_db, tmp_path):
    state = postgres.create_database() if postgres else os.environ["MBDATA_TEST_POSTGRES"]
    cluster = Cluster(tmp_path / "cluster", digits_db, 2, state=state, concurrent=True)
    mbdata("outputs", "create", cluster.shared.dataset, "--name", OUTPUT, "--schema", PREDS_SCHEMA)
    cluster.start()
    lock = threading.Lock()
    committed: list[int] = []
    errors: list[BaseException] = []

    def consume(first: int) -> None:
        client = Client(cluster.urls[first:] + cluster.urls[:first], retries=200, backoff=0.05, max_backoff=0.25, give_up_after=60)
        try:
            for count, batch in enumerate(client.infer("digits", output=OUTPUT, batch_size=BATCH, split=SPLIT, lease_seconds=2)):
                if first == 0 and count == 4:
                    cluster.kill(0)  # with this consumer's lease held: its submission goes to daemon 1
                try:
                    batch.submit(outputs(batch["image"]))
                except MBDataError as error:
                    assert error.status == 409 and error.code in ("lease_expired", "already_done"), error
                    continue
                with lock:
                    committed.append(batch.index)
        except BaseException as error:  # re-raised below
            errors.append(error)

    threads = [threading.Thread(target=consume, args=(first,)) for first in (0, 1)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(thread.is_alive() for thread in threads), "a consumer did not finish"
        assert not errors, errors
    finally:
        failures = cluster.stop()
    assert not failures, failures
    assert len(committed) == len(set(committed)), sorted(committed)
    assert sorted(committed) == list(range(BATCHES))

    exported = tmp_path / "preds.jsonl"
    mbdata("outputs", "export", "digits", "--name", OUTPUT, "--state", state, "--format", "jsonl", "--out", exported)
    rows = [json.loads(line) for line in exported.read_text().splitlines()]
    digits = read_digits(cluster.shared.dataset)
    assert [row["_id"] for row in rows] == digits.val
    images = np.stack([np.frombuffer(digits.rows[row["_id"]][2], np.uint8) for row in rows])
    expected = outputs(images)
    assert [row["pred"] for row in rows] == expected["pred"].tolist()
    assert np.array_equal(np.array([row["prob"] for row in rows], np.float32), expected["prob"])
    listed = json.loads(mbdata("outputs", "list", "digits", "--state", state, "--json"))
    assert [(o["dataset"], o["output"], o["table"], o["rows"]) for o in listed] == [("digits", OUTPUT, f"outputs_digits_{OUTPUT}", VAL)]
    assert [(j["rowsWritten"], j["rowsExpected"], j["finishedBatches"]) for j in listed[0]["jobs"]] == [(VAL, VAL, BATCHES)]
