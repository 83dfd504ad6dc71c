"""uvicorn's httptools protocol with the limits a public HTTP server needs and uvicorn's
httptools parser does not have:

- **header size**: the request line and headers of one request may take `max_header_bytes`;
  beyond that the client gets 431 and the connection is closed. The bytes are counted as
  they arrive, so an endless header costs at most one read beyond the limit, never its size.
- **header time**: a request's headers must be complete within `header_timeout` seconds of
  the connection opening or of their first byte (a keep-alive connection's idle time is
  uvicorn's own `timeout_keep_alive`); else 408 and the connection is closed.
- **probes first**: `GET /api/health`, `/ready` and `/startup` are answered as soon as their
  headers are read, in the protocol, before any application task: a probe never queues
  behind predictions, however many connections keep the event loop busy;
- **connection cap**: beyond `max_connections` open connections, the oldest one still
  waiting for a request's headers (an idle or slow client) is closed to make room; when
  every other connection is busy, the new connection's request gets 503, unless it is a
  probe. So half-open floods cannot exhaust file descriptors, and the probes keep answering.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from insurance_pipeline.serving.errors import error_body

PROBE_PREFIX = b"/api/health"


@dataclass
class ConnectionLimits:
    max_header_bytes: int = 16 * 1024
    header_timeout: float = 5.0
    max_connections: int = 1000
    # connections waiting for a request's headers, oldest first (dicts keep insertion order)
    waiting: dict = field(default_factory=dict, repr=False)
    # GET path -> (status, body) of a probe, None for any other path: answered as soon as the
    # request's headers are read (`routers.health.probe` through the front door)
    probe: Callable[[str], tuple[int, bytes] | None] | None = field(default=None, repr=False)


class _Settled:
    """An event nobody waits on (what uvicorn sets when the connection goes away)."""

    def set(self) -> None:
        pass


class _Answered:
    """The cycle of a request the protocol answered itself: complete from the start, so the
    parser's later callbacks for it (body, message end) and the connection's end find
    nothing to do."""

    response_complete = True
    keep_alive = True
    message_event = _Settled()


def raw_response(status: int, kind: str, message: str) -> bytes:
    """A complete HTTP/1.1 response with the contract's error body; the connection closes."""
    body = error_body(kind, message)
    head = (
        b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        % len(body)
    )
    return STATUS_LINE[status] + head + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    limits: ConnectionLimits  # set on the subclass `guarded_protocol` makes

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._header_bytes, self._header_timer, self._over_cap = 0, None, False
        self._await_headers()
        if len(self.connections) > self.limits.max_connections:
            self._make_room()

    def connection_lost(self, exc) -> None:
        self._headers_done()
        super().connection_lost(exc)

    # A connection is "waiting" from its start, or the end of a response, until a request's
    # headers are complete: only then does it hold no work, and it may be closed for room.
    def _await_headers(self) -> None:
        self.limits.waiting[self] = None
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.limits.header_timeout, self._too_slow)

    def _headers_done(self) -> None:
        self.limits.waiting.pop(self, None)
        self._header_bytes = 0
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _refuse(self, status: int, kind: str, message: str) -> None:
        self._headers_done()
        if not self.transport.is_closing():
            self.transport.write(raw_response(status, kind, message))
            self.transport.close()

    def _too_slow(self) -> None:
        self._header_timer = None
        timeout = self.limits.header_timeout
        self._refuse(408, "RequestTimeout", f"request headers not received within {timeout:g} s")

    def _too_large(self) -> None:
        limit = self.limits.max_header_bytes
        self._refuse(431, "RequestHeaderFieldsTooLarge", f"request headers exceed {limit} bytes")

    def _make_room(self) -> None:
        """Close the oldest connection that holds no work (not this one); if every other is
        busy, this connection may only ask the probes."""
        for other in self.limits.waiting:
            if other is not self:
                other._headers_done()
                other.transport.close()
                return
        self._over_cap = True

    def data_received(self, data: bytes) -> None:
        if self in self.limits.waiting:
            self._header_bytes += len(data)
        super().data_received(data)
        if self in self.limits.waiting and self._header_bytes > self.limits.max_header_bytes:
            self._too_large()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._await_headers()  # the header clock starts with a request's first byte

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > self.limits.max_header_bytes:
            return self._too_large()
        self._headers_done()
        if self._answer_probe():
            return
        if self._over_cap and not self.url.startswith(PROBE_PREFIX):
            return self._refuse(503, "ServiceUnavailable", "too many connections")
        super().on_headers_complete()

    def _answer_probe(self) -> bool:
        """A probe answered here, before the application: it waits on no task queue and no
        model work (True when it was one). Only between requests: a pipelined probe behind a
        request still running goes the ordinary way, in order."""
        if self.limits.probe is None or self.parser.get_method() != b"GET":
            return False
        if self.cycle is not None and not self.cycle.response_complete:
            return False
        answer = self.limits.probe(self.url.split(b"?", 1)[0].decode("latin-1"))
        if answer is None:
            return False
        status, body = answer
        keep_alive = self.parser.should_keep_alive()
        head = b"".join(b"%s: %s\r\n" % pair for pair in self.server_state.default_headers)
        head += b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
        if not keep_alive:
            head += b"connection: close\r\n"
        self.transport.write(STATUS_LINE[status] + head + b"\r\n" + body)
        self.cycle = _Answered()
        if keep_alive:
            self.on_response_complete()
        else:
            self.transport.close()
        return True

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self.limits.waiting[self] = None  # idle: uvicorn's keep-alive timer runs


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for uvicorn's `http=`, bound to one server's limits."""
    return type("GuardedHttpTools", (GuardedHttpToolsProtocol,), {"limits": limits})
