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
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections import OrderedDict
from typing import Optional
from urllib.parse import urlsplit

import numpy as np

from . import frames
from .errors import ProtocolError, StreamCutError

__all__ = ["LocalFiles", "LocalFilesUnavailable", "wanted"]

#: Shard files kept open (least recently used closed first).
_OPEN_FILES = 64


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
    """The shard files local batch messages name, opened once each; reads their frames."""

    def __init__(self) -> None:
        self._files: OrderedDict[str, _File] = OrderedDict()
        self._position = 0
        self._file: Optional[_File] = None
        self._receiver = frames.FrameReceiver(self._fill) if frames.available() else None

    def close(self) -> None:
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

    def frame(self, payload: bytes, label: str) -> tuple[bytes, int]:
        """The frame the local batch `payload` names, as bytes (checked by the caller, as a
        received frame is) → (frame, xxh64)."""
        reference = _Reference(payload, label)
        file = self._open(reference)
        data = os.pread(file.descriptor, reference.length, reference.offset)
        if len(data) != reference.length:
            raise LocalFilesUnavailable(f"{reference.path} ends inside {label}'s frame (cut short since it was opened)")
        return data, reference.checksum
