"""Hostile traffic against a real service process on 127.0.0.1, each flood bounded (at most
20 s): memory stays bounded, the probes keep answering, and every refusal is the contract's
error body. Bounds here are generous; the figures are in `make bench`."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from insurance_pipeline.serving.schemas import EXAMPLE_INPUT
from insurance_pipeline_tests.helpers import start_service, stop
from tooling.load import batch_rows, open_fds, parse_wrk, post_script, tree_rss_mib, wrk_started

pytestmark = pytest.mark.servers

PREDICT = "/api/models/insurance_charges_model/prediction"
BATCH = "/api/models/insurance_charges_model/predictions"
RSS_LIMIT_MIB = 200
NESTED = ("[" * 5000 + "]" * 5000, '{"a":' * 5000 + "1" + "}" * 5000)


def port(service) -> int:
    return int(service.url.rsplit(":", 1)[1])


def rss(service) -> float:
    return tree_rss_mib(service.process.pid)[0]


def read_all(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    data = b""
    try:
        while len(data) < limit:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    return data


def status_and_body(data: bytes) -> tuple[int, dict]:
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


@pytest.fixture
def guarded(artifact_dir, tmp_path):
    """A service with short limits, so each is reached within a test's seconds."""
    service = start_service(
        artifact_dir,
        tmp_path / "service.log",
        env={
            "SERVICE_HEADER_TIMEOUT_SECONDS": "1",
            "SERVICE_KEEP_ALIVE_SECONDS": "1",
            "SERVICE_MAX_CONNECTIONS": "100",
        },
    )
    yield service
    stop(service)


def send_huge_header(service, megabytes: int) -> bytes:
    """A GET whose one header is `megabytes` long, sent until the server stops reading."""
    sock = socket.create_connection(("127.0.0.1", port(service)), timeout=10)
    sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: ")
    chunk = b"a" * (1 << 20)
    try:
        for _ in range(megabytes):
            sock.sendall(chunk)
    except OSError:
        pass  # the server closed: what it answered is still to be read
    answer = read_all(sock)
    sock.close()
    return answer


def test_huge_headers_get_431_and_memory_stays_bounded(service):
    answers: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: answers.append(send_huge_header(service, 150)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == 4
    for answer in answers:
        status, body = status_and_body(answer)
        assert status == 431 and body["type"] == "RequestHeaderFieldsTooLarge", body
    assert rss(service) <= RSS_LIMIT_MIB
    assert httpx.get(service.url + "/api/health").status_code == 200


def test_headers_that_never_finish_and_idle_connections_are_closed(guarded):
    half = socket.create_connection(("127.0.0.1", port(guarded)), timeout=10)
    half.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
    silent = socket.create_connection(("127.0.0.1", port(guarded)), timeout=10)
    started = time.monotonic()
    for sock in (half, silent):
        status, body = status_and_body(read_all(sock))
        assert status == 408 and body["type"] == "RequestTimeout"
    assert time.monotonic() - started < 5
    idle = socket.create_connection(("127.0.0.1", port(guarded)), timeout=10)
    idle.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    assert idle.recv(65536).startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    assert idle.recv(1) == b""  # closed by the keep-alive timeout, not by us
    assert 0.5 < time.monotonic() - started < 5


def test_a_flood_of_half_open_connections_cannot_starve_the_probes(guarded):
    """Ten times the connection cap, each stopping in the middle of its headers: the oldest
    are closed for room, the server's descriptors stay bounded, and the probes answer."""
    held = []
    try:
        for _ in range(1000):
            sock = socket.create_connection(("127.0.0.1", port(guarded)), timeout=10)
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
            held.append(sock)
        assert open_fds(guarded.process.pid) < 100 + 50
        for path in ("/api/health", "/api/health/ready"):
            assert httpx.get(guarded.url + path, timeout=2).status_code == 200
    finally:
        for sock in held:
            sock.close()
    assert httpx.post(guarded.url + PREDICT, json=EXAMPLE_INPUT).status_code == 200


@pytest.mark.parametrize("path", [PREDICT, BATCH])
@pytest.mark.parametrize("body", NESTED, ids=["arrays", "objects"])
def test_nested_json_is_400_with_the_contract_body_and_no_traceback(service, path, body):
    answer = httpx.post(
        service.url + path, content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json()["type"] == "BodyDecodeError" and answer.json()["messages"]
    records = service.logs_until(lambda rs: False, timeout=0.5)
    assert not [r for r in records if "exc_info" in r or "Traceback" in r["message"]]


def flood(service, tmp_path: Path, body, path: str, connections: int, seconds: float):
    """wrk POSTing `body` for `seconds`; the service's peak RSS while it runs, then the
    parsed run."""
    script = post_script(tmp_path, body)
    load = wrk_started(service.url + path, connections, seconds, script)
    peak = 0.0
    while load.poll() is None:
        peak = max(peak, rss(service))
        time.sleep(0.2)
    return peak, parse_wrk(load.communicate()[0])


def test_a_flood_of_nested_json_keeps_memory_and_logs_bounded(service, tmp_path):
    idle = rss(service)
    peak, run = flood(service, tmp_path, NESTED[0], PREDICT, 16, 10)
    assert run["requests"] > 500 and run["non_2xx"] == run["requests"]  # all refused: 400
    assert peak <= RSS_LIMIT_MIB
    assert back_to_idle(service, idle) <= 1.2 * idle, (rss(service), idle)
    assert httpx.get(service.url + "/api/health").status_code == 200


def back_to_idle(service, idle: float, seconds: float = 10) -> float:
    """RSS once it is within 20 % of `idle`, or when `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while rss(service) > 1.2 * idle and time.monotonic() < deadline:
        time.sleep(0.5)
    return rss(service)


def test_batches_at_32_connections_never_hold_up_the_probes(service, tmp_path):
    """The model runs off the event loop: while 32 connections send 1,000-row batches, every
    probe answers, well inside the chart's 2 s probe timeout; afterwards the memory the
    batches used is given back (serving/memory.py)."""
    body = json.dumps(batch_rows()).encode()
    httpx.post(service.url + BATCH, content=body, headers={"content-type": "application/json"})
    time.sleep(1.5)  # the first batch's lasting allocations (caches) count as idle
    idle = rss(service)
    script = post_script(tmp_path, batch_rows())
    load = wrk_started(service.url + BATCH, 32, 10, script)
    latencies = []
    time.sleep(1)
    while load.poll() is None:
        for path in ("/api/health", "/api/health/ready"):
            started = time.monotonic()
            assert httpx.get(service.url + path, timeout=2).status_code == 200
            latencies.append(time.monotonic() - started)
        time.sleep(0.05)
    run = parse_wrk(load.communicate()[0])
    assert run["requests"] > 30 and run["non_2xx"] == 0, run
    assert len(latencies) > 20 and max(latencies) < 1.0, max(latencies)
    assert rss(service) <= RSS_LIMIT_MIB
    assert back_to_idle(service, idle) <= 1.2 * idle, (rss(service), idle)


def test_sigterm_exits_0_with_every_record_written(artifact_dir, tmp_path):
    service = start_service(artifact_dir, tmp_path / "service.log")
    for _ in range(20):
        httpx.post(service.url + PREDICT, json=EXAMPLE_INPUT)
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(30) == 0
    messages = [r["message"] for r in service.logs()]
    assert messages.count("Prediction created.") == 20
    assert "Application shutdown complete." in messages
    assert messages[-1].startswith("Finished server process")
