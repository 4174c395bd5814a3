"""The exceptions of the mbdata client. Every one is an `MBDataError` carrying `status`
(the HTTP status, or None when the failure was not an HTTP response), `code` (the
protocol's error code, or the client's own for failures it detects), `message`, and
`field` (the request field an error names, as `invalid_outputs` does; else None)."""

from __future__ import annotations


class MBDataError(Exception):
    """An error answer of the daemon (`{"error": {"code", "message"}}`) or a failure the
    client detected; see the subclasses."""

    def __init__(self, status: int | None, code: str, message: str, field: str | None = None):
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def __str__(self) -> str:
        prefix = f"{self.status} " if self.status is not None else ""
        suffix = f" [field {self.field}]" if self.field is not None else ""
        return f"{prefix}{self.code}: {self.message}{suffix}"


class ProtocolError(MBDataError):
    """A message or response that breaks the wire protocol: wrong magic, kind or checksum,
    an unexpected content type, a payload that does not decode."""

    def __init__(self, message: str, code: str = "protocol_error"):
        super().__init__(None, code, message)


class StreamCutError(ProtocolError):
    """A batch stream ended without an end message (connection closed or reset, a message
    cut short) and reconnecting did not help within the client's retries."""

    def __init__(self, message: str):
        super().__init__(message, code="stream_cut")


class StreamFailedError(MBDataError):
    """The daemon sent an error message (kind 3) inside a stream that had started."""


class UnavailableError(MBDataError):
    """The daemon could not be reached (or kept answering `503 draining`) within the
    client's retries."""
