"""Mixtures over the live daemon (issue 14, protocol 1.2): `mix={...}` streams a weighted
mixture of served datasets, each epoch holding every source's exact share with `_source`
and the source names; resume is exact mid-epoch; share consumers take each batch once;
another mixture of a cursor, an unknown source and a bad weight are refused. Run against a
SQLite state and, when PostgreSQL is installed, a PostgreSQL one."""

from __future__ import annotations

import json
import os
import subprocess
import threading

import numpy as np
import pytest

from conftest import CLUSTER_STATES
from mbdata_client import Client
from mbdata_client.errors import MBDataError
from servetest import Server, binary

NAMES = ["web", "code", "books"]
SIZES = [50, 17, 5]
SEED = 11
BATCH = 4
MIX = {"web": 0.6, "code": 0.25, "books": 0.15}


@pytest.fixture(scope="module")
def sources(mbdata_binary, tmp_path_factory):
    """Three datasets of the same fields whose `value` is 1000 × source + (id − 1)."""
    directory = tmp_path_factory.mktemp("mixture")
    schema = directory / "m.schema.json"
    schema.write_text(json.dumps({"name": "m", "fields": [
        {"name": "value", "dtype": "int64"}, {"name": "tokens", "dtype": "int32", "shape": [None]}]}))
    paths = {}
    for source, (name, size) in enumerate(zip(NAMES, SIZES)):
        jsonl = directory / f"{name}.jsonl"
        jsonl.write_text("".join(json.dumps({"value": 1000 * source + i, "tokens": list(range(i % 3 + 1))}) + "\n" for i in range(size)))
        paths[name] = directory / f"{name}.mbdb"
        result = subprocess.run([str(mbdata_binary), "ingest", str(paths[name]), "--schema", str(schema), str(jsonl)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
    return paths


class MixtureServer(Server):
    """`mbdata serve web=… code=… books=…` with its state in `directory` or `state`."""

    def __init__(self, directory, paths, state=None, options=()):
        super().__init__(directory, paths["web"], *options)
        self.paths = paths
        if state is not None:
            self.state = state

    def command(self) -> list[str]:
        return [str(binary()), "serve", *[f"{name}={path}" for name, path in self.paths.items()],
                "--port", str(self.port), "--state", str(self.state), *self.options]


@pytest.fixture(params=CLUSTER_STATES)
def mix_server(request, sources, tmp_path):
    state = None
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres")
        state = server.create_database() if server else os.environ["MBDATA_TEST_POSTGRES"]
    daemon = MixtureServer(tmp_path / "serve", sources, state).start()
    yield daemon
    if daemon.running:
        daemon.stop_ok()


def rows(batch):
    """(source, id) of the batch's real rows, checking `_source`, the names and the values."""
    assert batch["_source"].dtype == np.int32
    assert batch.sources == NAMES
    out = []
    for source, sample, value in zip(batch["_source"], batch.ids, batch["value"]):
        if source < 0:
            continue
        assert value == 1000 * int(source) + int(sample) - 1, "_source and _id name the row's dataset and sample"
        out.append((int(source), int(sample)))
    return out


def counts(batches):
    found = [0, 0, 0]
    for batch in batches:
        for source, _ in rows(batch):
            found[source] += 1
    return found


@pytest.mark.parametrize("mix, epoch_size, expected", [
    (MIX, 40, [24, 10, 6]),
    ({"web": ("repeat", 2), "code": ("repeat", 1), "books": ("repeat", 0.5)}, None, [100, 17, 3]),
    ({"web": ("choose", 3), "code": ("choose", 40), "books": ("choose", 13)}, None, [3, 40, 13]),
])
def test_every_epoch_holds_each_sources_exact_share(mix_server, group, mix, epoch_size, expected):
    client = Client(mix_server.url)
    for epoch in (0, 1):
        batches = list(client.batches(mix=mix, epoch_size=epoch_size, batch_size=BATCH, seed=SEED, epoch=epoch, group=group))
        assert counts(batches) == expected, f"epoch {epoch}"
    state = client.cursor()
    assert state["dataset"] == "mix:web,code,books"
    assert [s["name"] for s in state["mixture"]["sources"]] == NAMES
    assert all(s["dataset_version"] == 1 for s in state["mixture"]["sources"])


def resumed_mid_epoch(server, group, keep, acked, skip=lambda index: False, **plan):
    """keep(batch) of every batch of `plan`'s epoch by index: `acked` of them acked (not
    those `skip` names), then the daemon restarted and the rest read from the saved cursor,
    checking that nothing acked comes again."""
    client = Client(server.url)
    seen = {}
    for batch in client.batches(group=group, **plan):
        if skip(batch.index):
            continue
        batch.ack()
        seen[batch.index] = keep(batch)
        if len(seen) == acked:
            break
    saved = client.cursor()
    server.restart()
    rest = list(Client(server.url).batches(group=group, resume=saved, **plan))
    assert not {b.index for b in rest} & seen.keys(), "nothing acked comes again"
    for batch in rest:
        seen[batch.index] = keep(batch)
    return seen


def test_a_mixture_stream_resumes_mid_epoch_exactly(mix_server, group):
    plan = dict(mix=MIX, epoch_size=40, batch_size=BATCH, seed=SEED, epoch=1)
    reference = [b.ids.copy() for b in Client(mix_server.url).batches(group=group + "-ref", **plan)]
    assert len(reference) == 10
    # Every third batch is not acked: it comes again.
    seen = resumed_mid_epoch(mix_server, group, lambda batch: batch.ids.copy(), 4, skip=lambda index: index % 3 == 1, **plan)
    assert sorted(seen) == list(range(10))
    assert all(np.array_equal(seen[i], reference[i]) for i in range(10))


def share_in_two(url, keep, **plan):
    """(index, keep(batch)) of every batch two share consumers of `plan` took, each acked."""
    taken, failures = [], []

    def consume():
        try:
            for batch in Client(url).share(**plan):
                taken.append((batch.index, keep(batch)))
                batch.ack(wait=True)
        except Exception as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=consume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures
    return taken


def test_two_share_consumers_take_each_batch_once(mix_server, group):
    taken = share_in_two(mix_server.url, rows, mix=MIX, epoch_size=40, batch_size=BATCH, seed=SEED, group=group)
    assert sorted(index for index, _ in taken) == list(range(10))
    found = [0, 0, 0]
    for _, batch_rows in taken:
        for source, _ in batch_rows:
            found[source] += 1
    assert found == [24, 10, 6]


def test_unknown_sources_bad_weights_and_another_mixture_are_refused(mix_server, group):
    client = Client(mix_server.url)
    with pytest.raises(MBDataError) as caught:
        client.plan_cursor(mix={"web": 0.5, "nope": 0.5}, batch_size=BATCH, group=group)
    assert caught.value.status == 404 and "nope" in caught.value.message
    with pytest.raises(MBDataError) as caught:
        client.plan_cursor(mix={"web": 0.5, "code": -1}, batch_size=BATCH, group=group)
    assert caught.value.status == 400 and "query parameter mix" in caught.value.message
    with pytest.raises(MBDataError) as caught:
        client.plan_cursor(mix=MIX, batch_size=BATCH, group=group, pack={"value": 8})
    assert caught.value.status == 400 and "query parameter pack" in caught.value.message, "a fixed-shape field is not packed"
    with pytest.raises(TypeError):
        client.plan_cursor("web", mix=MIX, batch_size=BATCH)
    client.plan_cursor(mix=MIX, epoch_size=40, batch_size=BATCH, group=group)
    with pytest.raises(MBDataError) as caught:
        client.plan_cursor(mix={"web": 0.5, "code": 0.3, "books": 0.2}, epoch_size=40, batch_size=BATCH, group=group)
    assert (caught.value.status, caught.value.code) == (409, "cursor_mismatch") and "weight" in caught.value.message


def test_a_mixture_spool_serves_the_live_batches(sources, tmp_path, group):
    spool = tmp_path / "spool"
    command = [str(binary()), "shard", "--mix", *[f"{sources[name]}={weight}" for name, weight in MIX.items()],
               "--epoch-size", "40", "--out", str(spool / "mix"), "--batch-size", str(BATCH), "--seed", str(SEED), "--epochs", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    daemon = MixtureServer(tmp_path / "serve", sources, options=("--spool", str(spool))).start()
    try:
        plan = dict(mix=MIX, epoch_size=40, batch_size=BATCH, seed=SEED, epoch=1)
        client = Client(daemon.url)
        spooled = [b.ids.copy() for b in client.batches(group=group, **plan)]
        assert client.stream_headers["mbdata-source"] == "spool"
        live = Client(daemon.url)
        other = [b.ids.copy() for b in live.batches(group=group + "-other", **dict(plan, epoch_size=None, mix={"web": 0.5, "code": 0.5}))]
        assert live.stream_headers["mbdata-source"] == "live", "another mixture is read live"
        assert other
        reference = MixtureServer(tmp_path / "serve-live", sources).start()
        try:
            expected = [b.ids.copy() for b in Client(reference.url).batches(group=group, **plan)]
        finally:
            reference.stop_ok()
        assert len(spooled) == len(expected) == 10
        assert all(np.array_equal(a, b) for a, b in zip(spooled, expected))
    finally:
        daemon.stop_ok()
