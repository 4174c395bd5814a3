"""The daemon under bad clients and bad disks (issue 10): no request crashes it, a refused
request changes nothing, an ack answered 2xx is on disk (full or read-only state disk,
kill -9), slow and stalled clients lose their connection instead of holding it, and a drain
ends every open stream with its `draining` end message."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from mbdata_client import wire
from servetest import RawStream, Server, assert_error, hold_stream, request

STREAM = "/v1/datasets/digits/batches"


def cursor_of(port: int, group: str, query: str = "batch_size=1") -> dict:
    status, _, body = request(port, "GET", f"/v1/datasets/digits/cursor?{query}&group={group}")
    assert status == 200, body[:300]
    return json.loads(body)


def ack(port: int, cursor: str, body) -> tuple[int, dict, bytes]:
    return request(port, "POST", f"/v1/cursors/{cursor}/acks", body)


def acked_batches(state: dict, epoch: int = 0) -> set[int]:
    for progress in state["epochs"]:
        if progress["epoch"] == epoch:
            return set(range(progress["low_watermark"])) | set(progress["acked_above"])
    return set()


def state_rows(daemon) -> tuple[int, int]:
    """(cursors, pinned plans) in the daemon's state database."""
    with sqlite3.connect(f"file:{daemon.state}?mode=ro", uri=True) as db:
        return (db.execute("SELECT count(*) FROM cursors").fetchone()[0],
                db.execute("SELECT count(*) FROM pinned_plans").fetchone()[0])


def test_a_lease_named_twice_in_one_ack_is_acked_once(server, group):
    status, headers, body = request(server.port, "POST", f"/v1/datasets/digits/lease?batch_size=64&group={group}")
    assert status == 200, body[:300]
    lease = wire.parse_messages(body)[0].lease
    status, _, body = ack(server.port, headers["mbdata-cursor"], {"leases": [lease, lease]})
    assert status == 200, body[:300]
    assert json.loads(body)["epochs"] == [{"epoch": 0, "low_watermark": 1, "acked_above": []}]
    assert request(server.port, "GET", "/healthz")[0] == 200, "the daemon goes on serving"


def test_refused_requests_leave_no_cursor_and_no_pin(big_server):
    # The big dataset: a held digits stream (450 KB) fits the kernel's buffers, so the daemon
    # could finish it and free the slot while the refused requests are being sent.
    daemon = big_server("--max-streams", "1")
    with hold_stream(daemon.port, "first"):
        before = state_rows(daemon)
        for index in range(10):
            assert_error(request(daemon.port, "GET", f"{STREAM}?batch_size=64&group=refused-{index}"), 429,
                         "too_many_streams")
        assert_error(request(daemon.port, "GET", f"{STREAM}?batch_size=64&group=x&epoch=-1"), 400, "invalid_parameter")
        assert state_rows(daemon) == before == (1, 1)


def test_acks_and_restores_outside_the_plan_are_refused(server, group):
    state = cursor_of(server.port, group, "batch_size=64")
    cursor = state["cursor"]
    for body in ({"epoch": 2**62, "batches": [0]}, {"epoch": -1, "batches": [0]}, {"epoch": 0, "batches": [10**6]},
                 {"epoch": 0, "batches": [-1]}, {"epoch": 2**70, "batches": [0]}, {"leases": [-1]},
                 {"epoch": 0, "batches": [0], "leases": [1]}):
        assert_error(ack(server.port, cursor, body), 400, "invalid_body")
    for change in ({"dataset_version": 999}, {"batches_per_epoch": 10**9}, {"plan_fingerprint": "xxh64:0"}):
        edited = dict(state, **change)
        status, _, body = request(server.port, "PUT", f"/v1/cursors/{cursor}", edited)
        assert status in (400, 409), f"{change}: {status} {body[:200]!r}"
    edited = dict(state, epochs=[{"epoch": 2**62, "low_watermark": 0, "acked_above": []}])
    assert_error(request(server.port, "PUT", f"/v1/cursors/{cursor}", edited), 400, "invalid_body")
    assert cursor_of(server.port, group, "batch_size=64")["epochs"] == []


def test_a_malformed_chunked_body_gets_400(server, group):
    cursor = cursor_of(server.port, group)["cursor"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(f"POST /v1/cursors/{cursor}/acks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                           "Content-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n".encode())
        status_line = connection.makefile("rb").readline()
    assert status_line.split()[1] == b"400", status_line
    assert cursor_of(server.port, group)["epochs"] == []


def test_a_body_sent_one_byte_at_a_time_is_cut_after_the_body_timeout(make_server):
    daemon = make_server("--body-timeout", "2")
    connections = [socket.create_connection(("127.0.0.1", daemon.port), timeout=0.3) for _ in range(20)]
    for connection in connections:
        connection.sendall(b"POST /v1/cursors/c-0/acks HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
    started = time.monotonic()
    open_connections = set(range(len(connections)))
    while open_connections and time.monotonic() - started < 15:
        for index in list(open_connections):
            try:
                connections[index].sendall(b" ")
                if connections[index].recv(1) == b"":
                    open_connections.discard(index)
            except socket.timeout:
                pass
            except OSError:
                open_connections.discard(index)
    elapsed = time.monotonic() - started
    for connection in connections:
        connection.close()
    assert not open_connections, f"{len(open_connections)} slow bodies still open after {elapsed:.1f} s"
    assert 1.0 < elapsed < 12, elapsed
    assert request(daemon.port, "GET", "/healthz")[0] == 200, "the daemon goes on serving"


def test_stalled_readers_lose_their_stream_slots_after_the_stall_timeout(big_server):
    daemon = big_server("--max-streams", "2", "--stall-timeout", "2")
    stalled = [RawStream(daemon.port, f"{STREAM}?batch_size=1&group=stalled-{index}") for index in range(2)]
    try:
        assert [stream.status for stream in stalled] == [200, 200]
        assert_error(request(daemon.port, "GET", f"{STREAM}?batch_size=64&group=next"), 429, "too_many_streams")
        started = time.monotonic()
        while True:
            status, _, body = request(daemon.port, "GET", f"{STREAM}?batch_size=64&group=next")
            if status == 200 or time.monotonic() - started > 20:
                break
            time.sleep(0.2)
        assert status == 200, f"still {status} after {time.monotonic() - started:.1f} s: {body[:200]!r}"
        assert 1.0 < time.monotonic() - started < 15
        assert wire.parse_messages(body)[-1].json()["reason"] == "complete"
        assert daemon.log.read_text().count("took no bytes for --stall-timeout") == 2, daemon.log_tail()
    finally:
        for stream in stalled:
            stream.close()


def test_sigterm_ends_every_open_stream_with_a_draining_end_message(big_server):
    """Consumers that read slowly (a message each in turn, as trainers between steps): when
    the drain ends their streams, a batch of 256 KiB still waits in the daemon for each
    socket, and a close that dropped it cut the streams inside a batch."""
    daemon = big_server()
    streams = [RawStream(daemon.port, f"{STREAM}?batch_size=1&group=drain-{index}") for index in range(6)]
    try:
        assert all(stream.status == 200 for stream in streams)
        time.sleep(0.5)  # every stream blocks on its reader
        daemon.terminate()
        time.sleep(0.5)
        batches = [0] * len(streams)
        ends: list = [None] * len(streams)
        while any(end is None for end in ends):
            for index, stream in enumerate(streams):
                if ends[index] is not None:
                    continue
                message = stream.next_message()  # a cut inside a message raises StreamCutError
                assert message is not None, f"stream {index} ended after {batches[index]} batches without an end message"
                if message.kind == wire.KIND_BATCH:
                    batches[index] += 1
                else:
                    ends[index] = message
        for index, end in enumerate(ends):
            assert end.kind == wire.KIND_END, end
            assert end.json() == {"reason": "draining", "sent": batches[index]}, f"stream {index}: {end.json()}"
    finally:
        for stream in streams:
            stream.close()
    assert daemon.wait(60) == 0, daemon.log_tail()
    daemon.process = None


# --- fault injection ---------------------------------------------------------------------


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")


def fill(directory: Path) -> Path:
    """Fills the file system of `directory` with one file; returns it."""
    filler = directory / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def test_a_full_state_disk_answers_503_and_loses_no_acknowledged_ack(make_server, tmp_path):
    mount = tmp_path / "state-fs"
    mount_tmpfs(mount, "1m")
    try:
        daemon = make_server(start=False)
        daemon.state = mount / "state.sqlite"
        daemon.start()
        cursor = cursor_of(daemon.port, "full")["cursor"]
        filler = fill(mount)
        answered, refused = set(), None
        for batch in range(1797):
            status, _, body = ack(daemon.port, cursor, {"epoch": 0, "batches": [batch]})
            if status == 200:
                answered.add(batch)
                continue
            assert_error((status, {}, body), 503, "state_unavailable")
            refused = batch
            break
        assert refused is not None, "the full disk never refused a write"
        assert acked_batches(cursor_of(daemon.port, "full")) == answered, "memory moved without the write"
        assert_error(ack(daemon.port, cursor, {"epoch": 0, "batches": [refused]}), 503, "state_unavailable")
        filler.unlink()
        status, _, body = ack(daemon.port, cursor, {"epoch": 0, "batches": [refused]})
        assert status == 200, body[:300]
        daemon.restart()
        assert acked_batches(cursor_of(daemon.port, "full")) == answered | {refused}
        daemon.stop_ok()
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_kill_9_during_heavy_ack_traffic_loses_no_acknowledged_ack(make_server):
    daemon = make_server()
    cursor = cursor_of(daemon.port, "killed")["cursor"]
    answered: list[set[int]] = [set() for _ in range(8)]

    def acker(index: int) -> None:
        for batch in range(index, 1797, 8):
            try:
                status, _, _ = ack(daemon.port, cursor, {"epoch": 0, "batches": [batch]})
            except OSError:
                return
            if status == 200:
                answered[index].add(batch)

    threads = [threading.Thread(target=acker, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while sum(map(len, answered)) < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    daemon.kill()
    for thread in threads:
        thread.join(30)
    acknowledged = set().union(*answered)
    assert acknowledged, "no ack was answered before the kill"
    daemon.start()
    missing = acknowledged - acked_batches(cursor_of(daemon.port, "killed"))
    assert not missing, f"{len(missing)} acks answered 200 were lost by kill -9: {sorted(missing)[:10]}"
