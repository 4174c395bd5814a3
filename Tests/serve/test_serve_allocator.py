"""The client's allocator tuning is opt-in: a trainer's process that imports the client and
streams an epoch through it keeps glibc's allocator as it was, unless it asks for the
tuning (`Client(tune_allocator=True)` or MBDATA_TUNE_ALLOCATOR=1).

Observed from outside the client, in a process of its own: glibc serves an allocation
above its mmap threshold with a mapping of its own, which `mallinfo2().hblkhd` counts. By
default that threshold adapts but never above 32 MiB, so 40 MiB is always mapped; the
tuning sets it to 64 MiB, so 40 MiB then comes from the heap."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from servetest import BATCH, SEED

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

PROBE = r"""
import ctypes, json, sys

from mbdata_client import Client

url, group, batch_size, seed, options = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5])
client = Client(url, **options)
streamed = 0
for batch in client.batches("digits", batch_size, epoch=0, seed=seed, rank=0, world=1, group=group, split="train"):
    streamed += 1
    batch.ack(wait=False)
client.close()


class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
before = libc.mallinfo2().hblkhd
block = libc.malloc(40 << 20)
mapped = libc.mallinfo2().hblkhd - before
libc.free(block)
print(json.dumps({"streamed": streamed, "mapped": mapped}))
"""


def probe(server, group, options: dict, environment: str | None) -> dict:
    """Streams an epoch through a Client made with `options` in a new process whose
    MBDATA_TUNE_ALLOCATOR is `environment` (None: unset), then reports whether a 40 MiB
    allocation was mapped on its own."""
    env = {name: value for name, value in os.environ.items() if name != "MBDATA_TUNE_ALLOCATOR"}
    if environment is not None:
        env["MBDATA_TUNE_ALLOCATOR"] = environment
    command = [sys.executable, "-c", PROBE, server.url, group, str(BATCH), str(SEED), json.dumps(options)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["streamed"] > 0
    return report


@pytest.mark.parametrize(
    "options, environment, tuned",
    [
        ({}, None, False),
        ({"tune_allocator": False}, "1", False),
        ({}, "1", True),
        ({"tune_allocator": True}, None, True),
    ],
    ids=["default", "explicitly-off-over-the-environment", "environment", "explicitly-on"],
)
def test_the_client_tunes_the_allocator_only_when_asked(server, group, options, environment, tuned):
    report = probe(server, group, options, environment)
    if tuned:
        assert report["mapped"] == 0, f"40 MiB was mapped on its own although the tuning was asked for: {report}"
    else:
        assert report["mapped"] >= 40 << 20, f"40 MiB came from the heap: the client changed the allocator: {report}"


def test_a_malformed_environment_setting_is_refused(monkeypatch):
    from mbdata_client import allocator

    monkeypatch.setenv("MBDATA_TUNE_ALLOCATOR", "maybe")
    with pytest.raises(ValueError, match="MBDATA_TUNE_ALLOCATOR"):
        allocator.requested(None)
    assert allocator.requested(False) is False
