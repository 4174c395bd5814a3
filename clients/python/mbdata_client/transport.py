"""HTTP to one daemon on the Python standard library's http.client: one keep-alive
connection, guarded by a lock, for requests (acks, cursors, leases, dataset info), retried
with exponential backoff; a connection of its own for each batch stream."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from typing import Any, Callable, Optional
from urllib.parse import urlencode, urlsplit

from .errors import ProtocolError, UnavailableError
from .protocol import error_from_response, stream_cursor

__all__ = ["CONNECTION_ERRORS", "DEFAULT_URL", "Transport"]

DEFAULT_URL = "http://127.0.0.1:7070"
# Failures of a connection: refused, reset, closed early, timed out, a chunked body cut
# inside a chunk-size line (http.client raises ValueError there).
CONNECTION_ERRORS = (OSError, http.client.HTTPException)


class Transport:
    """The connections to one daemon and the retry policy of everything sent to it.

    `url` defaults to $MBDATA_URL, else `DEFAULT_URL`; `token` to $MBDATA_TOKEN."""

    def __init__(
        self, url: Optional[str], token: Optional[str], *, timeout: float, retries: int, backoff: float,
        max_backoff: float,
    ):
        url = url or os.environ.get("MBDATA_URL") or DEFAULT_URL
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r}")
        if not parts.hostname:
            raise ValueError(f"no host in {url!r}")
        self.url = url
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.token = token if token is not None else (os.environ.get("MBDATA_TOKEN") or None)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._lock = threading.Lock()
        self._connection: Optional[http.client.HTTPConnection] = None

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry `attempt` (0, 1, …): exponential, capped."""
        return min(self.max_backoff, self.backoff * (2**attempt))

    def connect(self) -> http.client.HTTPConnection:
        """A new connection to the daemon (not yet open)."""
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def headers(self, extra: Optional[dict] = None) -> dict:
        """The headers of every request (user agent, bearer token), plus `extra`."""
        headers = {"User-Agent": "mbdata-client-python/0.1"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if extra:
            headers.update(extra)
        return headers

    def target(self, path: str, query: Optional[dict] = None) -> str:
        """The request target of `path` under the URL's path, with `query` encoded."""
        target = self.prefix + path
        if query:
            target += "?" + urlencode(query)
        return target

    def close(self) -> None:
        """Closes the keep-alive connection (the next request opens another)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def request(
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
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on the keep-alive connection → (status, headers with lower-case
        names, body). A bytes-like `body` is sent as it is (its Content-Type among
        `headers`), any other JSON-serialisable one as JSON. Statuses outside `ok` raise
        `MBDataError`; with `retry`, connection failures and `503` are retried.
        `on_resend` is called before each time the request is sent again (a retry, or a
        stale keep-alive connection replaced), for callers whose request may have taken
        effect the first time."""
        payload = None
        headers = self.headers(headers)
        if isinstance(body, (bytes, bytearray, memoryview)):
            payload = body
        elif body is not None:
            payload = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        target = self.target(path, query)
        attempt = 0
        while True:
            stale_retry = False
            try:
                with self._lock:
                    connection = self._connection
                    reused = connection is not None
                    if connection is None:
                        connection = self.connect()
                    try:
                        connection.request(method, target, body=payload, headers=headers)
                        response = connection.getresponse()
                        data = response.read()
                    except BaseException:
                        connection.close()
                        self._connection = None
                        raise
                    if response.will_close:
                        connection.close()
                        self._connection = None
                    else:
                        self._connection = connection
                status = response.status
                response_headers = {k.lower(): v for k, v in response.getheaders()}
            except CONNECTION_ERRORS as error:
                # A keep-alive connection the daemon closed while idle fails at once: retry
                # on a fresh one without counting it.
                if reused and isinstance(
                    error, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
                ):
                    stale_retry = True
                if not stale_retry:
                    if not retry or attempt >= self.retries:
                        raise UnavailableError(
                            None, "unreachable", f"{method} {target} on {self.host}:{self.port}: {error}"
                        ) from error
                    time.sleep(self.delay(attempt))
                    attempt += 1
                if on_resend is not None:
                    on_resend()
                continue
            if status == 503 and retry and attempt < self.retries:
                time.sleep(self.delay(attempt))
                attempt += 1
                if on_resend is not None:
                    on_resend()
                continue
            if status not in ok:
                raise error_from_response(status, data, f"{method} {target}")
            return status, response_headers, data

    def json(self, method: str, path: str, query: Optional[dict] = None, body: Any = None, **options) -> Any:
        """`request` whose answer is JSON, decoded (None for an empty body)."""
        _, _, data = self.request(method, path, query, body, **options)
        try:
            return json.loads(data.decode("utf-8")) if data else None
        except (UnicodeDecodeError, ValueError) as error:
            raise ProtocolError(f"{method} {path}: response is not JSON ({error})") from None

    def open_stream(
        self, method: str, path: str, query: dict
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, dict[str, str], str]:
        """A batch stream on a connection of its own → (connection, response, headers with
        lower-case names, cursor id); the caller closes both. Not retried."""
        connection = self.connect()
        try:
            connection.request(method, self.target(path, query), headers=self.headers())
            response = connection.getresponse()
            if response.status != 200:
                data = response.read()
                raise error_from_response(response.status, data, f"{method} {path}")
            headers = {k.lower(): v for k, v in response.getheaders()}
            cursor = stream_cursor(f"{method} {path}", headers)
        except BaseException:
            connection.close()
            raise
        return connection, response, headers, cursor
