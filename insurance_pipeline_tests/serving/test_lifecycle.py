"""Probe-safe and graceful, over real sockets: probes answer under load, SIGTERM drains,
a slow body is cut off. Bounds are generous; the figures are in `make bench`."""

import http.client
import json
import signal
import socket
import threading
import time

import httpx
import pytest

from insurance_pipeline.serving.schemas import EXAMPLE_INPUT
from insurance_pipeline_tests.helpers import start_service, stop

pytestmark = pytest.mark.servers

PREDICT = "/api/models/insurance_charges_model/prediction"
BODY = json.dumps(EXAMPLE_INPUT).encode()


def _port(service) -> int:
    return int(service.url.rsplit(":", 1)[1])


def _open_request(service, body_prefix: bytes) -> socket.socket:
    """A connection that has sent the headers and part of the body of a prediction."""
    sock = socket.create_connection(("127.0.0.1", _port(service)), timeout=30)
    head = (
        f"POST {PREDICT} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode()
    sock.sendall(head + body_prefix)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _refused(service) -> bool:
    try:
        socket.create_connection(("127.0.0.1", _port(service)), timeout=1).close()
    except OSError:
        return True
    return False


def test_sigterm_lets_in_flight_requests_finish_and_refuses_new_ones(artifact_dir, tmp_path):
    service = start_service(artifact_dir, tmp_path / "service.log")
    try:
        in_flight = _open_request(service, BODY[:10])
        time.sleep(0.3)
        service.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not _refused(service) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _refused(service), "new connections are still accepted after SIGTERM"
        assert service.process.poll() is None, "exited before its in-flight request finished"
        in_flight.sendall(BODY[10:])
        status, body = _read_response(in_flight)
        assert status == 200 and "charges" in json.loads(body)
        started = time.monotonic()
        service.process.wait(timeout=25)  # well inside the chart's 30 s grace period
        assert service.process.returncode == 0  # a drained SIGTERM is a clean exit
        assert time.monotonic() - started < 25
        records = service.logs()
        assert any(r["message"] == "Prediction created." for r in records)  # logs flushed
    finally:
        stop(service)


def test_a_slow_body_is_cut_off_with_408(artifact_dir, tmp_path):
    service = start_service(
        artifact_dir, tmp_path / "service.log", env={"SERVICE_BODY_TIMEOUT_SECONDS": "1"}
    )
    try:
        slow = _open_request(service, BODY[:5])
        started = time.monotonic()
        status, body = _read_response(slow)
        assert status == 408 and json.loads(body)["type"] == "RequestTimeout"
        assert 0.9 < time.monotonic() - started < 10
        assert slow.recv(1) == b""  # and the connection is closed
        assert httpx.get(service.url + "/api/health/ready").status_code == 200
        assert httpx.post(service.url + PREDICT, json=EXAMPLE_INPUT).status_code == 200
    finally:
        stop(service)


def test_probes_answer_within_a_second_under_saturating_load(service):
    stop_at = time.monotonic() + 4
    counts: list[int] = []

    def hammer():
        conn = http.client.HTTPConnection("127.0.0.1", _port(service), timeout=30)
        done = 0
        while time.monotonic() < stop_at:
            conn.request("POST", PREDICT, BODY, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            done += 1
        counts.append(done)

    threads = [threading.Thread(target=hammer) for _ in range(32)]
    for t in threads:
        t.start()
    time.sleep(1)
    latencies = []
    for path in ["/api/health", "/api/health/ready"] * 5:
        started = time.monotonic()
        response = httpx.get(service.url + path, timeout=5)
        latencies.append(time.monotonic() - started)
        assert response.status_code == 200
        time.sleep(0.1)
    for t in threads:
        t.join()
    assert sum(counts) > 500, counts  # the load was real
    assert max(latencies) < 1.0, latencies
