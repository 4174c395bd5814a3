"""The daemons a client may use, in order of preference, and how one operation moves from a
daemon that fails to the next (schemas/serve-protocol.md, § several daemons).

A client is given one daemon URL or several (an argument, else $MBDATA_URLS, else
$MBDATA_URL). It uses the first (the local daemon) until it fails — a connection refused,
reset or timed out, a stream cut, a `503 draining` or `503 state_unavailable` — and then the
next, round robin. Within one round every daemon is tried once, at once; after a round in
which all failed it waits (exponential backoff, capped) before the next round, and it gives
up after `retries` rounds or `give_up_after` seconds, whichever comes first, with an error
naming every daemon it tried."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Optional, Union
from urllib.parse import urlsplit

from .errors import MBDataError, UnavailableError

__all__ = ["DEFAULT_URL", "Daemons", "Endpoint", "Tries", "daemon_urls"]

DEFAULT_URL = "http://127.0.0.1:7070"


@dataclass(frozen=True)
class Endpoint:
    """One daemon: its URL as given, and what a connection to it needs."""

    url: str
    scheme: str
    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, url: str) -> "Endpoint":
        """The endpoint of `http[s]://host[:port][/prefix]` (a bare `host:port` is http)."""
        url = url.strip()
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r}")
        if not parts.hostname:
            raise ValueError(f"no host in {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(url, parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


def daemon_urls(urls: Union[str, Sequence[str], None]) -> list[str]:
    """The daemon URLs a client was given: a list, or one string of comma-separated URLs;
    None means $MBDATA_URLS (comma-separated), else $MBDATA_URL, else `DEFAULT_URL`."""
    if urls is None:
        urls = os.environ.get("MBDATA_URLS") or os.environ.get("MBDATA_URL") or DEFAULT_URL
    if isinstance(urls, str):
        urls = urls.split(",")
    listed = [url.strip() for url in urls if url and url.strip()]
    if not listed:
        raise ValueError("no daemon URL given")
    return listed


class Daemons:
    """The endpoints of a client in order of preference and the one in use, shared by the
    client's threads (its streams, its ack sender)."""

    def __init__(self, urls: Union[str, Sequence[str], None]):
        self.endpoints = [Endpoint.parse(url) for url in daemon_urls(urls)]
        self._index = 0
        self._lock = threading.Lock()

    @property
    def current(self) -> Endpoint:
        """The daemon requests go to now."""
        with self._lock:
            return self.endpoints[self._index]

    def __len__(self) -> int:
        return len(self.endpoints)

    def fail_over(self, failed: Endpoint) -> Endpoint:
        """Moves past `failed` to the next daemon, round robin, unless another thread already
        moved on from it; returns the daemon now in use."""
        with self._lock:
            if self.endpoints[self._index] == failed:
                self._index = (self._index + 1) % len(self.endpoints)
            return self.endpoints[self._index]


class Tries:
    """The tries of one operation (a request, opening a stream) over the daemons: `failed`
    records a daemon's failure and decides whether, and when, to try again."""

    def __init__(
        self, daemons: Daemons, what: str, *, retries: int, delay: Callable[[int], float], give_up_after: float,
        clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
    ):
        self.what = what
        self._daemons = daemons
        self._retries = retries
        self._delay = delay
        self._give_up_after = give_up_after
        self._clock = clock
        self._sleep = sleep
        self._started = clock()
        self._in_round = 0
        #: Rounds that ended in failure so far (a round: every daemon tried once).
        self.rounds = 0
        #: Each daemon tried, by URL, and how it failed last.
        self.failures: dict[str, str] = {}
        self._last: Optional[BaseException] = None

    def restart(self) -> None:
        """Counts the time to give up after from now (nothing failed yet: `failures` is empty)."""
        self._started = self._clock()

    def failed(self, endpoint: Endpoint, cause: Union[str, BaseException], *, move: bool = True) -> bool:
        """Records that `endpoint` failed with `cause`. With `move`, the next daemon of this
        round is tried at once; once every daemon failed in a round, this waits the backoff
        before the next round. `move=False` (an answer that asks to wait on the same daemon,
        as `cursor_busy` does) ends the round here. False when the operation must give up:
        then `error()` says why."""
        self.failures[endpoint.url] = str(cause)
        self._last = cause if isinstance(cause, BaseException) else None
        if move:
            self._daemons.fail_over(endpoint)
            self._in_round += 1
            if self._in_round < len(self._daemons):
                return True
        self._in_round = 0
        finished, self.rounds = self.rounds, self.rounds + 1
        if finished >= self._retries:
            return False
        wait = self._delay(finished)
        if self._clock() + wait - self._started > self._give_up_after:
            return False
        self._sleep(wait)
        return True

    def error(self) -> UnavailableError:
        """The error of an operation that gave up: it names every daemon tried and how each
        failed. Its status and code are the last failure's when that was the daemon's
        (`503 draining`), else `unreachable`."""
        elapsed = self._clock() - self._started
        tried = "; ".join(f"{url}: {cause}" for url, cause in self.failures.items())
        status, code = None, "unreachable"
        if isinstance(self._last, MBDataError):
            status, code = self._last.status, self._last.code
        return UnavailableError(
            status, code, f"{self.what}: gave up after {self.rounds} rounds over {len(self._daemons)} daemon(s) "
            f"in {elapsed:.1f} s; tried {tried}"
        )
