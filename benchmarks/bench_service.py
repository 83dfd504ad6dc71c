"""Service benchmark: in-process predict latency, HTTP throughput and latency on loopback,
RSS and start-to-ready time. The load generator is bounded (request count and seconds) and
talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _readme import update_readme_section  # noqa: E402

from insurance_pipeline.serving.schemas import EXAMPLE_INPUT  # noqa: E402

ROW = EXAMPLE_INPUT
PATH = "/api/models/insurance_charges_model/prediction"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def in_process(artifact: Path, n: int = 5000) -> dict[str, float]:
    import logging

    from insurance_pipeline.serving.app import load_model

    logging.getLogger().handlers[:] = [logging.NullHandler()]
    logging.getLogger().setLevel(logging.INFO)  # the JSON record is built, then discarded
    state = load_model(artifact)
    assert state.ready, state.error
    timings = []
    for _ in range(n):
        started = time.perf_counter_ns()
        state.predict([ROW])
        timings.append((time.perf_counter_ns() - started) / 1e6)
    return {"p50_ms": statistics.median(timings), "p99_ms": percentile(timings, 0.99)}


async def _client(port: int, body: bytes, count: int, deadline: float, latencies: list[float]):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.decode(errors="replace"))
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        writer.close()


async def load(port: int, total: int, connections: int, seconds: float) -> dict[str, float]:
    body = json.dumps(ROW).encode()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    started = time.perf_counter()
    await asyncio.gather(
        *[
            _client(port, body, total // connections, deadline, latencies)
            for _ in range(connections)
        ]
    )
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 0.99),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_to_ready(python: str, artifact: Path, port: int) -> tuple[subprocess.Popen, float]:
    import urllib.request

    started = time.perf_counter()
    process = subprocess.Popen(
        [
            python,
            "-m",
            "insurance_pipeline.serving",
            "--artifact-dir",
            str(artifact),
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "LOG_LEVEL": "INFO"},
    )
    while time.perf_counter() - started < 60:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health/ready", timeout=1):
                return process, time.perf_counter() - started
        except OSError:
            time.sleep(0.01)
    process.kill()
    raise SystemExit("service never became ready")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact-dir", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument(
        "--service-python",
        default=sys.executable,
        help="interpreter of the service process (make bench: a serving-only venv, as in the image)",
    )
    args = parser.parse_args()
    inproc = in_process(args.artifact_dir)
    port = free_port()
    process, ready_s = start_to_ready(args.service_python, args.artifact_dir, port)
    try:
        asyncio.run(load(port, 500, args.connections, 10))  # warm-up
        http = asyncio.run(load(port, args.requests, args.connections, args.seconds))
        rss = rss_mib(process.pid)
    finally:
        process.terminate()
        process.wait(10)
    table = f"""Measured {dt.date.today()} on {os.cpu_count()} cores (load generator on the same machine), \
{http["requests"]} requests over {args.connections} keep-alive connections; the service runs from \
`{Path(args.service_python).parent.parent.name}` (serving-only install when `.venv-serving`):

| measure | value | goal |
| --- | --- | --- |
| in-process single-row predict (with JSON log record) p50 / p99 | {inproc["p50_ms"]:.3f} ms / {inproc["p99_ms"]:.3f} ms | p50 ≤ 1 ms |
| HTTP throughput on loopback | {http["rps"]:.0f} req/s | ≥ 500 req/s |
| HTTP latency p50 / p99 | {http["p50_ms"]:.2f} ms / {http["p99_ms"]:.2f} ms | p99 ≤ 10 ms |
| service RSS after the run | {rss:.0f} MiB | ≤ 200 MiB |
| process start to ready | {ready_s:.2f} s | ≤ 3 s |
"""
    print(table)
    if args.update_readme:
        update_readme_section("service", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
