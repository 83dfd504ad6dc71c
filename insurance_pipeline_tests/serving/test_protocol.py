"""The probes are answered in the protocol, before any application task: over a real socket,
on uvicorn's own server machinery (the pinned version), the application never sees a probe,
a keep-alive connection goes on to serve the next request, and everything else reaches it."""

from __future__ import annotations

import asyncio
import json

import pytest
import uvicorn
from uvicorn.server import ServerState

from insurance_pipeline.serving.protocol import ConnectionLimits, guarded_protocol

pytestmark = pytest.mark.pure


def probe(path: str):
    if path == "/api/health":
        return 200, b'{"health_status":"HEALTHY"}'
    if path == "/api/health/ready":
        return 503, b'{"readiness_status":"REFUSING_TRAFFIC"}'
    return None


async def exchange(requests: list[bytes]) -> tuple[list[bytes], list[str]]:
    """Send `requests` on one keep-alive connection to a guarded server; the raw responses,
    and the paths the application was called with."""
    seen: list[str] = []

    async def app(scope, receive, send):
        seen.append(scope["path"])
        await receive()
        body = b'{"from":"the app"}'
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})

    limits = ConnectionLimits(probe=probe)
    config = uvicorn.Config(app, http=guarded_protocol(limits), log_config=None, lifespan="off")
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: config.http_protocol_class(config=config, server_state=state, app_state={}),
        "127.0.0.1",
        0,
    )
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    try:
        for request in requests:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            answers.append(head + await reader.readexactly(length))
    finally:
        writer.close()
        server.close()
        await server.wait_closed()
    return answers, seen


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode()


def test_probes_never_reach_the_application_and_the_connection_goes_on():
    post = b"POST /api/models/m/prediction HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"
    answers, seen = asyncio.run(
        exchange([get("/api/health"), get("/api/health/ready?x=1"), post, get("/api/health")])
    )
    assert seen == ["/api/models/m/prediction"]  # only the prediction reached the app
    first, ready, predicted, again = answers
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert first.endswith(b'\r\n\r\n{"health_status":"HEALTHY"}')
    assert b"content-type: application/json" in first
    assert ready.startswith(b"HTTP/1.1 503 ") and ready.endswith(b'"REFUSING_TRAFFIC"}')
    assert predicted.endswith(b'{"from":"the app"}') and again == first


def test_other_paths_and_methods_go_to_the_application():
    answers, seen = asyncio.run(exchange([get("/api/health/unknown"), get("/docs")]))
    assert seen == ["/api/health/unknown", "/docs"]
    assert json.loads(answers[0].split(b"\r\n\r\n")[1]) == {"from": "the app"}
