"""HTTP to the daemons on the Python standard library's http.client: one keep-alive
connection, guarded by a lock, for requests (acks, cursors, leases, dataset info), retried
with exponential backoff and moved to the next daemon when one fails (`daemons`); a
connection of its own for each batch stream."""

from __future__ import annotations

import http.client
import json
import os
import threading
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union
from urllib.parse import urlencode

from .daemons import DEFAULT_URL, Daemons, Endpoint, Tries
from .errors import ProtocolError, UnavailableError
from .protocol import error_from_response, stream_cursor

__all__ = ["CONNECTION_ERRORS", "DEFAULT_URL", "Transport"]

# Failures of a connection: refused, reset, closed early, timed out, a chunked body cut
# inside a chunk-size line (http.client raises ValueError there).
CONNECTION_ERRORS = (OSError, http.client.HTTPException)

#: The most idle keep-alive connections a Transport keeps: one per thread that sends
#: requests at once (the consumer's, the ack queue's, the submission queue's), and a spare.
MAX_IDLE = 4


class _ConnectTimeout:
    """A connection whose connect waits `connect_timeout` seconds, and whose reads then wait
    `timeout`: a daemon on a node that went away (no refusal, no answer) is left after the
    former, while a stream may stay quiet for the latter."""

    connect_timeout: float

    def connect(self) -> None:
        read_timeout, self.timeout = self.timeout, self.connect_timeout
        try:
            super().connect()
        finally:
            self.timeout = read_timeout
        self.sock.settimeout(read_timeout)


class _HTTPConnection(_ConnectTimeout, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_ConnectTimeout, http.client.HTTPSConnection):
    pass


class StaleConnection(Exception):
    """A reused keep-alive connection that the daemon had closed while it was idle: the
    request is sent again at once on a fresh connection, and not counted as a failure."""


class Transport:
    """The connections to the daemons and the retry policy of everything sent to them.

    `urls`: one URL, several comma-separated in one string, or a list; None means
    $MBDATA_URLS, else $MBDATA_URL, else `DEFAULT_URL`. `token` defaults to $MBDATA_TOKEN."""

    def __init__(
        self, urls: Union[str, Sequence[str], None], token: Optional[str], *, timeout: float, connect_timeout: float,
        retries: int, backoff: float, max_backoff: float, give_up_after: float,
    ):
        self.daemons = Daemons(urls)
        self.token = token if token is not None else (os.environ.get("MBDATA_TOKEN") or None)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.give_up_after = give_up_after
        self._lock = threading.Lock()
        # Keep-alive connections not in use; a request takes one (or opens one) and puts it
        # back, so requests from several threads (a queued submission beside the next lease)
        # run at once, each on its own connection.
        self._idle: list[tuple[Endpoint, http.client.HTTPConnection]] = []

    @property
    def urls(self) -> list[str]:
        """Every daemon's URL, in order of preference."""
        return [endpoint.url for endpoint in self.daemons.endpoints]

    @property
    def current(self) -> Endpoint:
        """The daemon requests go to now."""
        return self.daemons.current

    @property
    def url(self) -> str:
        """The URL of the daemon requests go to now."""
        return self.current.url

    @url.setter
    def url(self, urls: Union[str, Sequence[str]]) -> None:
        self.daemons = Daemons(urls)
        self.close()

    @property
    def host(self) -> str:
        """The host of the daemon requests go to now."""
        return self.current.host

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry `attempt` (0, 1, …): exponential, capped."""
        return min(self.max_backoff, self.backoff * (2**attempt))

    def tries(self, what: str) -> Tries:
        """The tries of one operation over the daemons, under this transport's limits."""
        return Tries(self.daemons, what, retries=self.retries, delay=self.delay, give_up_after=self.give_up_after)

    def connect(self, endpoint: Endpoint) -> http.client.HTTPConnection:
        """A new connection to `endpoint` (not yet open)."""
        kind = _HTTPSConnection if endpoint.scheme == "https" else _HTTPConnection
        connection = kind(endpoint.host, endpoint.port, timeout=self.timeout)
        connection.connect_timeout = min(self.connect_timeout, self.timeout)
        return connection

    def headers(self, extra: Optional[dict] = None) -> dict:
        """The headers of every request (user agent, bearer token), plus `extra`."""
        headers = {"User-Agent": "mbdata-client-python/0.1"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if extra:
            headers.update(extra)
        return headers

    @staticmethod
    def target(endpoint: Endpoint, path: str, query: Optional[dict] = None) -> str:
        """The request target of `path` under the endpoint's path, with `query` encoded."""
        target = endpoint.prefix + path
        if query:
            target += "?" + urlencode(query)
        return target

    def close(self) -> None:
        """Closes the idle keep-alive connections (the next request opens another)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for _, connection in idle:
            connection.close()

    def _checkout(self, endpoint: Endpoint) -> tuple[http.client.HTTPConnection, bool]:
        """(an idle connection to `endpoint`, True), or (a new one, False); idle
        connections to other daemons are closed."""
        found: Optional[http.client.HTTPConnection] = None
        stale: list[http.client.HTTPConnection] = []
        with self._lock:
            keep = []
            for idle_endpoint, connection in self._idle:
                if idle_endpoint != endpoint:
                    stale.append(connection)
                elif found is None:
                    found = connection
                else:
                    keep.append((idle_endpoint, connection))
            self._idle = keep
        for connection in stale:
            connection.close()
        if found is not None:
            return found, True
        return self.connect(endpoint), False

    def _checkin(self, endpoint: Endpoint, connection: http.client.HTTPConnection) -> None:
        """Keeps `connection` for the next request, up to `MAX_IDLE` of them."""
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append((endpoint, connection))
                return
        connection.close()

    def request(
        self,
        method: str,
        path: str,
        query: Optional[dict] = None,
        body: Any = None,
        **options,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on a keep-alive connection → (status, headers with lower-case
        names, body); `exchange` with the same arguments says more."""
        _, status, headers, data = self.exchange(method, path, query, body, **options)
        return status, headers, data

    def exchange(
        self,
        method: str,
        path: str,
        query: Optional[dict] = None,
        body: Any = None,
        *,
        retry: bool = True,
        ok: tuple[int, ...] = (200, 201, 204),
        headers: Optional[dict] = None,
        on_resend: Optional[Callable[[], None]] = None,
    ) -> tuple[Endpoint, int, dict[str, str], bytes]:
        """One request on a keep-alive connection → (the daemon that answered, status,
        headers with lower-case names, body). A bytes-like `body` is sent as it is (its
        Content-Type among `headers`), any other JSON-serialisable one as JSON. Statuses
        outside `ok` raise `MBDataError`. With `retry`, a connection failure or a `503
        draining` / `state_unavailable` sends the request to the next daemon (`Tries`),
        and an `UnavailableError` naming every daemon tried ends it. `on_resend` is called
        before each time the request is sent again (a retry, or a stale keep-alive
        connection replaced), for callers whose request may have taken effect the first
        time."""
        payload = None
        headers = self.headers(headers)
        if isinstance(body, (bytes, bytearray, memoryview)):
            payload = body
        elif body is not None:
            payload = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        tries = self.tries(f"{method} {path}")
        while True:
            endpoint = self.current
            target = self.target(endpoint, path, query)
            try:
                status, response_headers, data = self._send(endpoint, method, target, payload, headers)
            except StaleConnection:
                if on_resend is not None:
                    on_resend()
                continue
            except CONNECTION_ERRORS as error:
                if not retry:
                    raise UnavailableError(None, "unreachable", f"{method} {target} on {endpoint.url}: {error}") from error
                if not tries.failed(endpoint, error):
                    raise tries.error() from error
                if on_resend is not None:
                    on_resend()
                continue
            if status == 503 and retry:
                # draining or state_unavailable: nothing changed there; the next daemon may answer.
                if not tries.failed(endpoint, error_from_response(status, data, f"{method} {target} on {endpoint.url}")):
                    raise tries.error()
                if on_resend is not None:
                    on_resend()
                continue
            if status not in ok:
                raise error_from_response(status, data, f"{method} {target}")
            return endpoint, status, response_headers, data

    def _send(
        self, endpoint: Endpoint, method: str, target: str, payload: Optional[bytes], headers: dict
    ) -> tuple[int, dict[str, str], bytes]:
        """Sends one request to `endpoint` on an idle keep-alive connection to it (a new
        one when there is none) → (status, headers, body)."""
        connection, reused = self._checkout(endpoint)
        try:
            connection.request(method, target, body=payload, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except BaseException as error:
            connection.close()
            if reused and isinstance(error, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)):
                raise StaleConnection() from error
            raise
        if response.will_close:
            connection.close()
        else:
            self._checkin(endpoint, connection)
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def json(self, method: str, path: str, query: Optional[dict] = None, body: Any = None, **options) -> Any:
        """`request` whose answer is JSON, decoded (None for an empty body)."""
        _, _, data = self.request(method, path, query, body, **options)
        try:
            return json.loads(data.decode("utf-8")) if data else None
        except (UnicodeDecodeError, ValueError) as error:
            raise ProtocolError(f"{method} {path}: response is not JSON ({error})") from None

    def open_stream(
        self, endpoint: Endpoint, method: str, path: str, query: dict
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, dict[str, str], str]:
        """A batch stream from `endpoint` on a connection of its own → (connection,
        response, headers with lower-case names, cursor id); the caller closes both. Not
        retried."""
        connection = self.connect(endpoint)
        try:
            connection.request(method, self.target(endpoint, path, query), headers=self.headers())
            response = connection.getresponse()
            if response.status != 200:
                data = response.read()
                raise error_from_response(response.status, data, f"{method} {path} on {endpoint.url}")
            headers = {k.lower(): v for k, v in response.getheaders()}
            cursor = stream_cursor(f"{method} {path}", headers)
        except BaseException:
            connection.close()
            raise
        return connection, response, headers, cursor

