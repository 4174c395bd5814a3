"""A minimal reader of the `mbdata serve` wire protocol, written from
schemas/serve-protocol.md alone (not from the daemon's or the client's code).

Used by the serve benchmark for two things:

- the protocol checks (protocol_check.py), which compare what the daemon does with
  what serve-protocol.md says;
- the reference consumer `serve-raw` in consumer.py: the same stream read with
  http.client + lz4.frame + numpy, no client library, to tell the client's own cost
  apart from the daemon's.

Standard library, numpy and lz4 only.
"""

from __future__ import annotations

import http.client
import json
import struct
import urllib.parse
from dataclasses import dataclass

import lz4.frame
import numpy as np
import xxhash

MESSAGE = struct.Struct("<4sB3sIIIIQQQQ")  # magic kind reserved epoch batch rank samples uncompressed length checksum lease
assert MESSAGE.size == 56
MAGIC = b"MBW1"
KIND_BATCH, KIND_END, KIND_ERROR = 1, 2, 3
STREAM_TYPE = "application/vnd.mbdata.stream"

ST_DTYPES = {
    "U8": np.uint8, "I8": np.int8, "I16": np.int16, "I32": np.int32, "I64": np.int64,
    "F16": np.float16, "F32": np.float32, "F64": np.float64, "BOOL": np.bool_,
}


class ProtocolError(RuntimeError):
    pass


@dataclass
class Message:
    magic: bytes
    kind: int
    reserved: bytes
    epoch: int
    batch: int
    rank: int
    samples: int
    uncompressed: int
    length: int
    checksum: int
    lease: int
    payload: bytes | bytearray

    def json(self) -> dict:
        return json.loads(bytes(self.payload))


def parse_header(raw: bytes) -> tuple:
    return MESSAGE.unpack(raw)


def read_exact(resp: http.client.HTTPResponse, n: int) -> bytes:
    data = resp.read(n)
    if len(data) != n:
        raise EOFError(f"stream ended after {len(data)} of {n} bytes")
    return data


def read_message(resp: http.client.HTTPResponse, *, strict: bool = True) -> Message | None:
    """The next message, or None at a clean end of the body (no bytes at all)."""
    head = resp.read(MESSAGE.size)
    if not head:
        return None
    if len(head) != MESSAGE.size:
        raise EOFError(f"stream cut inside a message header ({len(head)} of {MESSAGE.size} bytes)")
    magic, kind, reserved, epoch, batch, rank, samples, unc, length, checksum, lease = MESSAGE.unpack(head)
    if strict and magic != MAGIC:
        raise ProtocolError(f"bad magic {magic!r}")
    if strict and kind not in (KIND_BATCH, KIND_END, KIND_ERROR):
        raise ProtocolError(f"bad kind {kind}")
    payload = bytearray(length)
    if length:
        got = resp.readinto(payload)
        while got < length:
            more = resp.readinto(memoryview(payload)[got:])
            if not more:
                raise EOFError(f"stream cut inside a payload ({got} of {length} bytes)")
            got += more
    return Message(magic, kind, reserved, epoch, batch, rank, samples, unc, length, checksum, lease, payload)


def safetensors_header(buffer: bytes | bytearray) -> tuple[dict, int]:
    (h,) = struct.unpack_from("<Q", buffer, 0)
    return json.loads(bytes(buffer[8 : 8 + h])), 8 + h


def decode_batch(payload: bytes | bytearray) -> tuple[dict[str, np.ndarray], dict, bytes]:
    """LZ4 frame -> (tensors as numpy views, safetensors header, buffer)."""
    buffer = lz4.frame.decompress(payload)
    header, base = safetensors_header(buffer)
    tensors: dict[str, np.ndarray] = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        start, stop = t["data_offsets"]
        dtype = np.dtype(ST_DTYPES[t["dtype"]]).newbyteorder("<")
        tensors[name] = np.frombuffer(buffer, dtype=dtype, count=(stop - start) // dtype.itemsize,
                                      offset=base + start).reshape(t["shape"])
    return tensors, header, buffer


class Connection:
    """One keep-alive HTTP/1.1 connection to the daemon."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        u = urllib.parse.urlsplit(base_url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.timeout = timeout
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, body: dict | None = None) -> http.client.HTTPResponse:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            self.conn.request(method, path, body=data, headers=headers)
            return self.conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.conn.request(method, path, body=data, headers=headers)
            return self.conn.getresponse()

    def json(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None, dict]:
        """(status, parsed JSON body or None, headers) of a non-streaming request."""
        resp = self.request(method, path, body)
        raw = resp.read()
        try:
            doc = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            doc = {"_raw": raw[:200].decode(errors="replace")}
        return resp.status, doc, {k.lower(): v for k, v in resp.getheaders()}

    def close(self) -> None:
        self.conn.close()


def batches_path(dataset: str, **params) -> str:
    q = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    return f"/v1/datasets/{dataset}/batches?{q}"


def ack(conn: Connection, cursor: str, epoch: int, batches: list[int]) -> dict:
    status, doc, _ = conn.json("POST", f"/v1/cursors/{cursor}/acks", {"epoch": epoch, "batches": batches})
    if status != 200:
        raise ProtocolError(f"ack of {batches} on {cursor}: HTTP {status} {doc}")
    return doc or {}


def xxh64(data, seed: int = 0) -> int:
    return xxhash.xxh64_intdigest(bytes(data), seed)
