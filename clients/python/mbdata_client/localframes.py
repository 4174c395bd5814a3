"""Reading a spooled batch's frame from the daemon's shard file instead of the socket.

A client on the daemon's host asks a batch stream for `delivery=local` (protocol 1.3);
the daemon then sends, for each batch of a spool set, a local batch message (kind 4)
whose JSON payload says where the frame lies: the shard file's path and identity
(`st_dev`, `st_ino`), the offset, the length and the frame's xxh64. Through a socket a
790 KB CIFAR batch cost the client a kernel copy from loopback and the daemon a copy
into the socket: about 0.9 ms of CPU a batch on 2 cores, where a `pread` from the page
cache and the checksum cost the client about 0.25 ms and the daemon next to nothing
(Benchmarks/README.md, "The CPU budget of one spool batch").

The file is as untrusted as the socket: it must be a regular file with the identity the
daemon named (a spool written over since is another file), the frame must lie within
it, and its bytes go through the same `frames.FrameReceiver` checks — the frame's xxh64
against the one the message names, the LZ4 frame's structure, the content size. A file
this process cannot open, or one that is not the daemon's, raises
`LocalFilesUnavailable`; the stream then reopens without local delivery.

Reading ahead. With `readers` (and the client's native module, `_framereader`), `start`
queues a frame's `preadv` and xxh64 on threads that never take the GIL and returns at once;
`read_ahead` keeps a few messages' frames in flight that way while the consumer works on
the current batch, and `PendingFrame.wait` checks each one (`FrameReceiver.check_stored`)
in its batch's turn, on the consumer's thread. Python reader threads could not do this:
their Python between the GIL-free calls waited for the trainer's thread to let go of the
GIL, and the README's loop ran at 0.67× the numpy DataLoader where reading every frame on
the consumer's thread had run 1.02× (Benchmarks/README.md).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from typing import Any, Optional
from urllib.parse import urlsplit

import numpy as np

from . import frames
from .errors import ProtocolError, StreamCutError

try:
    from . import _framereader
except ImportError:  # built without a C compiler: frames are read on the consumer's thread
    _framereader = None

__all__ = ["LocalFiles", "LocalFilesUnavailable", "PendingFrame", "READ_AHEAD", "native_readers", "read_ahead", "wanted"]

#: Shard files kept open (least recently used closed first). Far more than the frames in
#: flight, so that a file being read ahead is never the one closed.
_OPEN_FILES = 64
#: Frames read ahead of the consumer (the client's buffer pool holds them, the
#: consumer's batch and the one before it).
READ_AHEAD = 2


def native_readers() -> bool:
    """Whether frames can be read ahead outside the GIL (the native module is built, and
    MBDATA_NATIVE_READER is not 0)."""
    return _framereader is not None and os.environ.get("MBDATA_NATIVE_READER", "1") != "0"


class LocalFilesUnavailable(ProtocolError):
    """A local batch's shard file cannot be read by this process as the daemon's file."""

    def __init__(self, message: str):
        super().__init__(message, code="local_files_unavailable")


def wanted(url: str) -> bool:
    """Whether a daemon at `url` runs on this host: a loopback address or `localhost`."""
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


#: A local frame's `frame_checksum`: exactly 16 lower-case hexadecimal digits.
_CHECKSUM = re.compile(r"[0-9a-f]{16}")


class _Reference:
    """A local batch message's JSON payload (`LocalFrame` in the protocol), checked as the
    spec writes it: integers that are JSON integers, an absolute path, the checksum's 16 digits."""

    __slots__ = ("path", "device", "inode", "offset", "length", "checksum")

    def __init__(self, payload: bytes, label: str):
        try:
            value = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise ProtocolError(f"{label}: not a local frame ({error!r})") from None
        if not isinstance(value, dict):
            raise ProtocolError(f"{label}: not a local frame (not a JSON object)")
        numbers = [value.get(name) for name in ("device", "inode", "offset", "length")]
        if not all(type(number) is int for number in numbers):
            raise ProtocolError(f"{label}: a local frame's device, inode, offset and length must be integers")
        self.device, self.inode, self.offset, self.length = numbers
        self.path, checksum = value.get("path"), value.get("frame_checksum")
        if not isinstance(self.path, str) or not os.path.isabs(self.path) or "\0" in self.path:
            raise ProtocolError(f"{label}: the frame's path is not an absolute path")
        if not isinstance(checksum, str) or not _CHECKSUM.fullmatch(checksum):
            raise ProtocolError(f"{label}: a local frame's frame_checksum is not 16 lower-case hexadecimal digits")
        self.checksum = int(checksum, 16)
        if min(self.device, self.inode, self.offset) < 0 or not 0 < self.length <= 1 << 30:
            raise ProtocolError(f"{label}: a local frame's numbers are out of range")


class _File:
    __slots__ = ("descriptor", "size", "device", "inode")

    def __init__(self, path: str):
        try:
            # O_NONBLOCK: a FIFO named instead of a shard must not block the open.
            descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as error:
            raise LocalFilesUnavailable(f"cannot open the daemon's shard {path}: {error.strerror}") from None
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            os.close(descriptor)
            raise LocalFilesUnavailable(f"the daemon's shard {path} is not a regular file here")
        self.descriptor, self.size, self.device, self.inode = descriptor, info.st_size, info.st_dev, info.st_ino

    def close(self) -> None:
        os.close(self.descriptor)


class LocalFiles:
    """The shard files local batch messages name, opened once each; reads their frames
    on the caller's thread (`receive`) or, with `readers` native threads, ahead of it
    (`start`). Used from one thread."""

    def __init__(self, readers: int = 0) -> None:
        self._files: OrderedDict[str, _File] = OrderedDict()
        self._position = 0
        self._file: Optional[_File] = None
        self._receiver = frames.FrameReceiver(self._fill) if frames.available() else None
        self._readers: Any = None
        if readers > 0 and self._receiver is not None and native_readers():
            self._readers = _framereader.FrameReader(readers)
        self._pid = os.getpid()

    @property
    def reads_ahead(self) -> bool:
        """Whether `start` reads frames on the native reader threads (in the process that
        made them: a forked child reads on its own thread)."""
        return self._readers is not None and os.getpid() == self._pid

    def close(self) -> None:
        if self._readers is not None and os.getpid() == self._pid:
            self._readers.close()  # waits for the reads under way, before their files close
        for file in self._files.values():
            file.close()
        self._files.clear()

    def _open(self, reference: _Reference) -> _File:
        file = self._files.get(reference.path)
        if file is not None and (file.device, file.inode) != (reference.device, reference.inode):
            # The path now names another file (a spool written again): open it afresh.
            self._files.pop(reference.path).close()
            file = None
        if file is None:
            file = _File(reference.path)
            self._files[reference.path] = file
            while len(self._files) > _OPEN_FILES:
                self._files.popitem(last=False)[1].close()
        else:
            self._files.move_to_end(reference.path)
        if (file.device, file.inode) != (reference.device, reference.inode):
            raise LocalFilesUnavailable(f"{reference.path} here is not the file the daemon has open (another device or inode)")
        if reference.offset + reference.length > file.size:
            raise ProtocolError(
                f"the frame at {reference.offset} (+{reference.length}) lies outside the {file.size}-byte shard {reference.path}"
            )
        return file

    def _fill(self, view: memoryview) -> int:
        filled = 0
        while filled < len(view):
            count = os.preadv(self._file.descriptor, [view[filled:]], self._position)
            if not count:
                break
            filled += count
            self._position += count
        return filled

    def receive(self, payload: bytes, label: str, output: np.ndarray) -> tuple[int, int]:
        """Reads the frame the local batch `payload` names and decodes it into `output`
        (the batch's uncompressed size) → the frame's (length, xxh64)."""
        reference = _Reference(payload, label)
        self._file, self._position = self._open(reference), reference.offset
        descriptor = self._file.descriptor
        if self._receiver.receive_stored(
            label, reference.length, reference.checksum, output,
            lambda buffers: os.preadv(descriptor, buffers, reference.offset),
        ):
            return reference.length, reference.checksum
        try:
            self._receiver.receive(label, reference.length, reference.checksum, output)
        except StreamCutError:
            raise LocalFilesUnavailable(f"{reference.path} ends inside {label}'s frame (cut short since it was opened)") from None
        return reference.length, reference.checksum

    def start(self, payload: bytes, label: str, output: np.ndarray) -> "PendingFrame":
        """Starts reading the frame the local batch `payload` names into `output` → the
        pending read: queued on the reader threads when `reads_ahead`; otherwise, or for a
        frame not laid out as one stored block, received here and now (`receive`). The
        reference is parsed and the file opened here, so a file this process cannot use
        is refused at once."""
        reference = _Reference(payload, label)
        parts = frames.stored_parts(reference.length, output)
        if parts is None or not self.reads_ahead:
            self.receive(payload, label, output)
            return PendingFrame(self, None, payload, label, reference, output, None)
        read = self._readers.start(self._open(reference).descriptor, reference.offset, parts)
        return PendingFrame(self, read, payload, label, reference, output, parts)

    def _check_read(self, pending: "PendingFrame", got: int, digest: int) -> None:
        if not self._receiver.check_stored(pending.label, pending.length, pending.checksum, pending.parts, got, lambda: digest):
            self.receive(pending.payload, pending.label, pending.output)  # laid out otherwise, or cut short

    def frame(self, payload: bytes, label: str) -> tuple[bytes, int]:
        """The frame the local batch `payload` names, as bytes (checked by the caller, as a
        received frame is) → (frame, xxh64)."""
        reference = _Reference(payload, label)
        file = self._open(reference)
        data = os.pread(file.descriptor, reference.length, reference.offset)
        if len(data) != reference.length:
            raise LocalFilesUnavailable(f"{reference.path} ends inside {label}'s frame (cut short since it was opened)")
        return data, reference.checksum


class PendingFrame:
    """A frame `LocalFiles.start` read or queued on the reader threads; `wait` before its bytes are used."""

    __slots__ = ("_files", "_read", "payload", "label", "length", "checksum", "output", "parts")

    def __init__(self, files: LocalFiles, read: Any, payload: bytes, label: str, reference: _Reference, output: np.ndarray,
                 parts: Optional[list]):
        self._files, self._read, self.payload, self.label, self.output, self.parts = files, read, payload, label, output, parts
        self.length, self.checksum = reference.length, reference.checksum

    def wait(self) -> None:
        """Waits for the read and checks the frame as `receive` would (`ProtocolError`,
        `LocalFilesUnavailable`); a frame the read found laid out otherwise, or cut short, is
        received again from its start here."""
        if self._read is None:
            return
        read, self._read = self._read, None
        got, digest = read.wait()
        self._files._check_read(self, got, digest)


def read_ahead(messages: Iterable, depth: int = READ_AHEAD) -> Iterator:
    """`messages` in order, each pulled `depth` messages before the consumer gets it: over a
    `MessageReader` whose `LocalFiles` reads ahead, `depth` frames in flight on the reader
    threads while the consumer works. An error reading a message is raised before the
    messages pulled ahead of it are handed on (their batches were not acked: they come
    again)."""
    pulled: deque = deque()
    for message in messages:
        pulled.append(message)
        if len(pulled) > depth:
            yield pulled.popleft()
    yield from pulled
