"""Request body limits, enforced before the body reaches JSON parsing: a size cap per path
(413) and a deadline for the whole body to arrive (408), so that a client sending its body
slowly cannot hold a connection and a request slot for ever."""

from __future__ import annotations

import asyncio

from insurance_pipeline.serving.errors import error_body


class BodyLimits:
    """Pure ASGI middleware. A body larger than its path's limit gets 413, whether or not it
    declares a Content-Length (a chunked body is counted as it arrives); a body not complete
    within `timeout` seconds of the request's start gets 408. Both close the connection."""

    def __init__(self, app, limits: dict[str, int], default: int, timeout: float):
        self.app, self.limits, self.default, self.timeout = app, limits, default, timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        limit = self.limits.get(scope["path"], self.default)
        body = await read_body(scope, receive, send, limit, self.timeout)
        if body is None:
            return  # refused (413, 408) or the client went away
        return await self.app(scope, replayed(body, receive), send)


def replayed(body: bytes, receive):
    """An ASGI `receive` that hands the application the body already read, once, then
    whatever the client sends next (a disconnect)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def read_body(scope, receive, send, limit: int, timeout: float) -> bytes | None:
    """The whole request body, within `limit` bytes and `timeout` seconds; None when it was
    refused (413, 408: answered here) or the client disconnected."""
    too_large = f"request body exceeds {limit} bytes"
    declared = dict(scope["headers"]).get(b"content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        await _refuse(send, 413, "PayloadTooLarge", too_large)
        return None
    chunks, size, more = [], 0, True
    try:
        async with asyncio.timeout(timeout):
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    await _refuse(
                        send, 413, "PayloadTooLarge", f"request body exceeds {limit} bytes"
                    )
                    return None
                chunks.append(chunk)
                more = message.get("more_body", False)
    except TimeoutError:
        await _refuse(
            send, 408, "RequestTimeout", f"request body not received within {timeout:g} s"
        )
        return None
    return b"".join(chunks)


async def _refuse(send, status: int, kind: str, message: str) -> None:
    payload = error_body(kind, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
