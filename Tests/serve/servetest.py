"""Helpers of the serve tests: the daemon as a subprocess, raw HTTP requests, raw batch
streams read with a small receive buffer (so that the daemon cannot finish a stream
while the test holds it), the digits ground truth from the dataset's SQLite file, and
Prometheus text parsing. Written from schemas/serve-protocol.md."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs, urlsplit

import pytest

from mbdata_client import Client, wire

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGITS_JSONL = REPO_ROOT / "samples" / "digits" / "digits.jsonl"
DIGITS_SCHEMA = REPO_ROOT / "samples" / "digits" / "digits.schema.json"
STREAM_TYPE = "application/vnd.mbdata.stream"

# The plan most tests use: 1,449 train samples (--val-fraction 0.2), 64 per global batch,
# so 22 batches per epoch and 41 samples dropped.
BATCH = 64
SEED = 7
TRAIN = 1449
VAL = 348
TRAIN_BATCHES = TRAIN // BATCH
TRAIN_DROPPED = TRAIN % BATCH


def binary() -> Path:
    configured = os.environ.get("MBDATA_BINARY")
    path = Path(configured) if configured else REPO_ROOT / ".build" / "debug" / "mbdata"
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the ground truth -----------------------------------------------------------------


@dataclass
class Digits:
    rows: dict[int, tuple]  # _id → (split, id, image bytes, label)
    train: list[int]  # _ids of the train split, ascending
    val: list[int]


def read_digits(dataset: Path) -> Digits:
    connection = sqlite3.connect(f"file:{dataset}?mode=ro", uri=True)
    try:
        rows = {
            row[0]: tuple(row[1:])
            for row in connection.execute('select _id, _split, "id", "image", "label" from samples order by _id')
        }
    finally:
        connection.close()
    train = [i for i, row in rows.items() if row[0] == "train"]
    val = [i for i, row in rows.items() if row[0] == "val"]
    return Digits(rows, train, val)


# --- the daemon -----------------------------------------------------------------------


class Server:
    """`mbdata serve` on a copy of the digits dataset in `directory`, with its state
    database there too, so that `restart()` finds its cursors. `shared` (a `Cluster`'s)
    serves that dataset file and state instead, and picks the port now."""

    def __init__(self, directory: Path, dataset: Path, *options, token: Optional[str] = None,
                 shared: Optional["SharedFiles"] = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port: Optional[int] = None
        if shared is not None:
            self.dataset, self.state, self.port = shared.dataset, shared.state, free_port()
        else:
            self.dataset = self.directory / "digits.mbdb"
            if not self.dataset.exists():
                shutil.copyfile(dataset, self.dataset)
            self.state = self.directory / "state.sqlite"
        self.options = [str(o) for o in options]
        self.token = token
        if token is not None:
            token_file = self.directory / "token"
            token_file.write_text(token + "\n")
            self.options += ["--token-file", str(token_file)]
        self.log = self.directory / "serve.log"
        self.process: Optional[subprocess.Popen] = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [str(binary()), "serve", str(self.dataset), "--port", str(self.port), "--state", str(self.state),
                *self.options]

    def start(self, timeout: float = 30.0) -> "Server":
        if self.port is None:
            self.port = free_port()
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"\n--- start {self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll()
            if code is not None:
                pytest.fail(f"mbdata serve exited {code} while starting\n{self.log_tail()}")
            try:
                status, _, _ = request(self.port, "GET", "/healthz", token=self.token, timeout=2)
                if status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"mbdata serve did not answer GET /healthz within {timeout} s\n{self.log_tail()}")
            time.sleep(0.05)

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 20.0) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"mbdata serve did not exit within {timeout} s of SIGTERM\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then the exit status."""
        self.terminate()
        code = self.wait(timeout)
        self.process = None
        return code

    def stop_ok(self) -> None:
        code = self.stop()
        assert code == 0, f"mbdata serve exited {code} after SIGTERM\n{self.log_tail()}"

    def restart(self) -> "Server":
        self.stop_ok()
        return self.start()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "serve log:\n" + "\n".join(text[-lines:])


@dataclass(frozen=True)
class SharedFiles:
    """The dataset file and the state (a file path, or a `postgresql://` URL) that the
    daemons of a `Cluster` share."""

    dataset: Path
    state: str


class Cluster:
    """Several daemons over one dataset file and one state, for the clients' failover.

    `concurrent` False (SQLite state: each daemon caches its state file, so two must not
    run at once): only the first runs at `start()`, and `kill(i)` SIGKILLs daemon i and
    starts the next one, on its port picked in advance. `concurrent` True (a state every
    daemon may share at once, such as PostgreSQL): `start()` starts them all and `kill(i)`
    only kills. Either way the clients list every daemon's URL from the start."""

    def __init__(self, directory: Path, dataset: Path, count: int, *options, state: Optional[str] = None,
                 concurrent: bool = False):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        shared_dataset = directory / "digits.mbdb"
        shutil.copyfile(dataset, shared_dataset)
        self.shared = SharedFiles(shared_dataset, state or str(directory / "state.sqlite"))
        self.concurrent = concurrent
        self.servers = [Server(directory / f"daemon-{i}", dataset, *options, shared=self.shared) for i in range(count)]

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def start(self) -> "Cluster":
        for server in self.servers if self.concurrent else self.servers[:1]:
            server.start()
        return self

    def kill(self, index: int) -> Optional[Server]:
        """SIGKILLs daemon `index`; without `concurrent`, starts the next one and returns it."""
        self.servers[index].kill()
        if self.concurrent:
            return None
        successor = self.servers[(index + 1) % len(self.servers)]
        return successor.start()

    def stop(self) -> list[str]:
        """SIGTERMs every running daemon → a failure line for each that did not exit 0."""
        failures = []
        for server in self.servers:
            if server.running:
                code = server.stop()
                if code != 0:
                    failures.append(f"{server.url} exited {code}\n{server.log_tail()}")
        return failures


# --- consumer processes -----------------------------------------------------------------


def shard_train_epoch(mbdata_binary, dataset: Path, out: Path) -> None:
    """`mbdata shard` of the train split's epoch 0 (seed SEED, batch BATCH) into `out`."""
    command = [str(mbdata_binary), "shard", str(dataset), "--out", str(out), "--split", "train", "--batch-size", str(BATCH),
               "--seed", str(SEED), "--epochs", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def frame_reference(file, offset=0, length=16, checksum="0" * 16, **changes) -> bytes:
    """The JSON payload of a local batch message (protocol 1.3) naming `length` bytes of
    `file` at `offset`, with `changes` to its fields."""
    info = os.stat(file)
    value = {"path": str(file), "device": info.st_dev, "inode": info.st_ino, "offset": offset, "length": length,
             "frame_checksum": checksum}
    value.update(changes)
    return json.dumps(value).encode()


def events(log: Path, kind=None) -> list[dict]:
    """The JSON-lines events a consumer process appended to `log` (of one kind)."""
    if not log.exists():
        return []
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [e for e in lines if kind is None or e["event"] == kind]


def wait_for(predicate, timeout: float, what: str):
    """Polls `predicate` until it is true; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


# --- raw HTTP ---------------------------------------------------------------------------


def request(port: int, method: str, target: str, body=None, *, token: Optional[str] = None,
            headers: Optional[dict] = None, timeout: float = 30) -> tuple[int, dict, bytes]:
    """One request on a fresh connection → (status, headers with lower-case names, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            all_headers.setdefault("Content-Type", "application/json")
        connection.request(method, target, body=body, headers=all_headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        connection.close()


def error_of(body: bytes) -> dict:
    """The `error` object of an error response; fails the test when the body is not the
    protocol's `{"error": {"code", "message"}}`."""
    try:
        document = json.loads(body)
    except ValueError:
        pytest.fail(f"error body is not JSON: {body[:300]!r}")
    assert isinstance(document, dict) and isinstance(document.get("error"), dict), document
    error = document["error"]
    assert isinstance(error.get("code"), str) and isinstance(error.get("message"), str), document
    return error


def assert_error(response: tuple[int, dict, bytes], status: int, code: str) -> dict:
    got_status, _, body = response
    assert got_status == status, f"expected {status} {code}, got {got_status}: {body[:300]!r}"
    error = error_of(body)
    assert error["code"] == code, f"expected code {code}, got {error}"
    return error


class RawStream:
    """A batch stream read by hand: a socket with a small receive buffer, so that the
    daemon blocks on it instead of finishing the stream, and http.client's response
    parser for the status line, headers and chunked encoding."""

    def __init__(self, port: int, target: str, *, token: Optional[str] = None, receive_buffer: int = 4096,
                 timeout: float = 30):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.socket.settimeout(timeout)
        self.socket.connect(("127.0.0.1", port))
        lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        if token is not None:
            lines.append(f"Authorization: Bearer {token}")
        self.socket.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.response = http.client.HTTPResponse(self.socket, method="GET")
        self.response.begin()
        self.status = self.response.status
        self.headers = {k.lower(): v for k, v in self.response.getheaders()}

    def body(self) -> bytes:
        return self.response.read()

    def next_message(self) -> Optional[wire.Message]:
        return wire.read_message(self.response.read)

    def messages(self) -> list[wire.Message]:
        return list(wire.iter_messages(self.response.read))

    def close(self) -> None:
        try:
            self.response.close()
        finally:
            self.socket.close()

    def __enter__(self) -> "RawStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def hold_stream(port: int, group: str, *, token: Optional[str] = None, extra: str = "") -> RawStream:
    """Opens a long stream (every sample, one per batch: 1,797 messages) and reads its
    first message, leaving the rest unread so that the stream stays open."""
    stream = RawStream(port, f"/v1/datasets/digits/batches?batch_size=1&group={group}{extra}", token=token)
    assert stream.status == 200, f"holding stream answered {stream.status}: {stream.body()[:300]!r}"
    first = stream.next_message()
    assert first is not None and first.kind == wire.KIND_BATCH, first
    return stream


# --- Prometheus text --------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def metric_samples(text: str) -> dict[str, float]:
    """Sum of each metric name's samples (over labels) in a Prometheus text exposition."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match:
            totals[match.group(1)] = totals.get(match.group(1), 0.0) + float(match.group(3))
    return totals


def metric_names(text: str) -> set[str]:
    """Every metric family named in the text: sample names and # TYPE / # HELP names."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE ") or line.startswith("# HELP "):
            parts = line.split()
            if len(parts) >= 3:
                names.add(parts[2])
        elif line and not line.startswith("#"):
            match = _SAMPLE.match(line)
            if match:
                names.add(match.group(1))
    return names


# --- a scripted fake daemon -------------------------------------------------------------


class FakeDaemon:
    """Answers each request with the next scripted (status, headers, body); bodies without
    Content-Length end when the connection closes, so a short body is a cut stream, and a
    status of None closes the connection without an answer."""

    def __init__(self):
        self.script: list[tuple[int, dict, bytes]] = []
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def handle_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                fake.requests.append({
                    "method": self.command, "path": url.path,
                    "query": {k: v[0] for k, v in parse_qs(url.query).items()},
                    "headers": dict(self.headers), "body": body,
                })
                status, headers, payload = fake.script.pop(0) if fake.script else (500, {}, b"no script left")
                if status is None:  # the daemon died before answering
                    self.close_connection = True
                    return
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = handle_any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stream(self, body: bytes, cursor="c-test"):
        self.script.append((200, {"Content-Type": wire_type(), "MBData-Cursor": cursor}, body))

    def hang_up(self):
        self.script.append((None, {}, b""))

    def json(self, status: int, document, headers=None):
        data = json.dumps(document).encode()
        self.script.append((status, {"Content-Type": "application/json", "Content-Length": str(len(data)),
                                     **(headers or {})}, data))

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def wire_type():
    return "application/vnd.mbdata.stream"


def fast_client(url, **options):
    return Client(url, retries=options.pop("retries", 4), backoff=0.001, max_backoff=0.01, **options)
