"""Fixtures of the serve tests: the mbdata binary, the digits dataset ingested with a
train/val split, and `mbdata serve` daemons started on free ports (one shared by most
tests, each test using its own consumer groups; tests that need other options, a restart
or a shutdown start their own). Every daemon is stopped with SIGTERM and must exit 0.

    python3 -m venv .venv && .venv/bin/pip install -r Tests/serve/requirements.txt ./clients/python
    swift build --product mbdata
    MBDATA_BINARY=.build/debug/mbdata .venv/bin/python -m pytest Tests/serve -q

MBDATA_BINARY overrides the binary (default: .build/debug/mbdata under the repository root).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess

import numpy as np
import pytest

try:
    import mbdata_client  # noqa: F401
except ImportError:  # pragma: no cover
    raise pytest.UsageError("the serve tests need the client: pip install ./clients/python") from None

import postgres_server
from servetest import DIGITS_JSONL, DIGITS_SCHEMA, TRAIN, VAL, Cluster, FakeDaemon, Server, binary, read_digits


@pytest.fixture(scope="session")
def mbdata_binary():
    path = binary()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"no mbdata binary at {path}: run `swift build --product mbdata` or set MBDATA_BINARY")
    return path


@pytest.fixture(scope="session")
def digits_db(mbdata_binary, tmp_path_factory):
    dataset = tmp_path_factory.mktemp("digits") / "digits.mbdb"
    command = [str(mbdata_binary), "ingest", str(dataset), "--schema", str(DIGITS_SCHEMA), "--val-fraction", "0.2",
               str(DIGITS_JSONL)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return dataset


@pytest.fixture(scope="session")
def digits(digits_db):
    truth = read_digits(digits_db)
    assert len(truth.rows) == 1797 and len(truth.train) == TRAIN and len(truth.val) == VAL, (
        f"unexpected split sizes: {len(truth.train)} train, {len(truth.val)} val"
    )
    return truth


@pytest.fixture(scope="session")
def server(digits_db, tmp_path_factory):
    """The shared daemon (default options)."""
    daemon = Server(tmp_path_factory.mktemp("serve-shared"), digits_db).start()
    yield daemon
    if daemon.running:
        daemon.stop_ok()


@pytest.fixture
def make_server(digits_db, tmp_path):
    """make_server(*options, token=None) → a started daemon of its own, stopped (exit 0
    required) after the test unless the test stopped it."""
    daemons = []
    names = itertools.count()

    def make(*options, token=None, start=True):
        daemon = Server(tmp_path / f"serve-{next(names)}", digits_db, *options, token=token)
        daemons.append(daemon)
        return daemon.start() if start else daemon

    yield make
    failures = []
    for daemon in daemons:
        if daemon.running:
            code = daemon.stop()
            if code != 0:
                failures.append(f"exit {code}\n{daemon.log_tail()}")
    if failures:
        pytest.fail("mbdata serve did not exit 0 after SIGTERM: " + "\n".join(failures))


#: The states a `make_cluster` test runs over: one SQLite file (daemons one after another)
#: and PostgreSQL (daemons at once): the database $MBDATA_TEST_POSTGRES names, or else a
#: server of the tests' own when PostgreSQL is installed (`make deps` installs it).
POSTGRES_BIN = postgres_server.binaries()
CLUSTER_STATES = ["sqlite"] + (["postgresql"] if os.environ.get("MBDATA_TEST_POSTGRES") or POSTGRES_BIN else [])


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the session (None when $MBDATA_TEST_POSTGRES names one)."""
    if os.environ.get("MBDATA_TEST_POSTGRES"):
        yield None
        return
    server = postgres_server.PostgresServer(POSTGRES_BIN).start()
    yield server
    server.stop()


@pytest.fixture(params=CLUSTER_STATES)
def make_cluster(request, digits_db, tmp_path):
    """make_cluster(count, *options, dataset=None) → a started `servetest.Cluster` of `count`
    daemons over one copy of the digits dataset (or `dataset`, served as "digits") and one state, stopped (exit 0 required) after the test.
    Parametrised by the state: `sqlite` (a file in the test's folder; one daemon runs at a
    time, the next started when one is killed) and `postgresql` (a fresh database of the
    session's server, or $MBDATA_TEST_POSTGRES; every daemon at once)."""
    clusters = []
    postgres = request.param == "postgresql"
    state = None
    if postgres:
        server = request.getfixturevalue("postgres")
        state = server.create_database() if server else os.environ["MBDATA_TEST_POSTGRES"]

    def make(count, *options, dataset=None):
        cluster = Cluster(tmp_path / f"cluster-{len(clusters)}", dataset or digits_db, count, *options, state=state,
                          concurrent=postgres)
        clusters.append(cluster)
        return cluster.start()

    yield make
    failures = [failure for cluster in clusters for failure in cluster.stop()]
    if failures:
        pytest.fail("mbdata serve did not exit 0 after SIGTERM: " + "\n".join(failures))


_groups = itertools.count()


@pytest.fixture
def group(request):
    """A consumer group of this test's own (cursors are per group)."""
    base = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:40]
    return f"{base}-{next(_groups)}"


@pytest.fixture(scope="session")
def reference(server):
    """reference(seed, epoch) → the world-1 batches' `_id` arrays of the train split
    (batch size 64, tail drop, shuffled), streamed once per (seed, epoch) in a group of
    their own."""
    from mbdata_client import Client

    made = {}

    def make(seed=7, epoch=0):
        if (seed, epoch) not in made:
            client = Client(server.url)
            batches = list(client.batches("digits", 64, epoch=epoch, seed=seed, rank=0, world=1,
                                          group=f"reference-{seed}-{epoch}", split="train"))
            assert [b.index for b in batches] == list(range(len(batches)))
            made[(seed, epoch)] = [b.ids.copy() for b in batches]
        return made[(seed, epoch)]

    return make


def noise_dataset(mbdata_binary, folder, samples: int, seed: int):
    """A dataset in `folder` of `samples` samples of 256 KiB of noise (incompressible)."""
    np.save(folder / "x.npy", np.random.default_rng(seed).integers(0, 256, (samples, 1 << 18), dtype=np.uint8))
    (folder / "big.schema.json").write_text(json.dumps({"name": "big", "fields": [
        {"name": "x", "dtype": "uint8", "shape": [1 << 18]}]}))
    dataset = folder / "big.mbdb"
    subprocess.run([str(mbdata_binary), "ingest", str(dataset), "--schema", str(folder / "big.schema.json"),
                    f"x={folder / 'x.npy'}"], check=True, capture_output=True, timeout=300)
    (folder / "x.npy").unlink()
    return dataset


@pytest.fixture(scope="session")
def big_db(mbdata_binary, tmp_path_factory):
    """64 samples of 256 KiB of noise: a stream of them (16 MiB, incompressible) outgrows
    every socket buffer, so a consumer that stops reading really blocks the daemon."""
    return noise_dataset(mbdata_binary, tmp_path_factory.mktemp("big"), 64, seed=0)


@pytest.fixture(scope="session")
def long_stream_db(mbdata_binary, tmp_path_factory):
    """256 samples of 256 KiB of noise (64 MiB): a rank's stream of half of them is larger
    than everything that may hold it between a daemon and a consumer that paces itself —
    the daemon's read-ahead, both sockets' buffers (a receive buffer may grow to tcp_rmem's
    maximum, 32 MiB on many hosts), the client's read-ahead — so its daemon is still
    writing it when it is killed mid-epoch."""
    return noise_dataset(mbdata_binary, tmp_path_factory.mktemp("long-stream"), 256, seed=1)


@pytest.fixture
def big_server(big_db, tmp_path):
    """big_server(*options) → a started daemon serving the big dataset (as "digits")."""
    daemons = []

    def make(*options):
        daemons.append(Server(tmp_path / f"big-{len(daemons)}", big_db, *options).start())
        return daemons[-1]

    yield make
    for daemon in daemons:
        if daemon.running:
            assert daemon.stop() == 0, daemon.log_tail()


@pytest.fixture
def fake():
    """A scripted fake daemon (servetest.FakeDaemon) for tests of the client alone."""
    daemon = FakeDaemon()
    yield daemon
    daemon.close()
