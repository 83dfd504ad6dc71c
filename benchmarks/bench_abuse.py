"""Abuse benchmark: the service (from `.venv-serving`, the chart's default settings: no
prediction inputs in the logs) under each hostile traffic of docs/serving.md "Under abuse", every flood
bounded (at most 20 s): its memory during and after, the probes, batch throughput, and where a
batch's time goes (in process, the same code path).

Prints a table; --update-docs writes it to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from _docs import update_docs_section  # noqa: E402

from tooling.load import batch_rows, open_fds, parse_wrk, post_script, tree_rss_mib, wrk_started  # noqa: E402
from tooling.stack import free_port  # noqa: E402

PREDICT = "/api/models/insurance_charges_model/prediction"
BATCH = "/api/models/insurance_charges_model/predictions"
NESTED = "[" * 5000 + "]" * 5000
CHART_DEFAULTS = {"LOG_PREDICTION_INPUTS": "false"}


class Service:
    def __init__(self, python: str, artifact: Path, log: Path, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(Path(python).absolute()), "-m", "insurance_pipeline.serving"]
            + ["--artifact-dir", str(artifact)]
            + ["--port", str(self.port)],
            cwd=log.parent,
            stdout=open(log, "w"),  # noqa: SIM115 - lives with the process
            stderr=subprocess.STDOUT,
            env={**os.environ, **CHART_DEFAULTS, **(env or {})},
        )
        deadline = time.monotonic() + 60
        while not self.answers("/api/health/ready"):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit(f"the service did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)

    def answers(self, path: str, timeout: float = 2) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as answer:
                return answer.status == 200
        except OSError:
            return False

    def rss(self) -> float:
        return tree_rss_mib(self.process.pid)[0]

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(30)


def watched(service: Service, flood) -> dict:
    """Runs `flood()` while sampling RSS; then how long RSS takes to come back."""
    idle, peak, done = service.rss(), [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], service.rss())
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = flood()
    finally:
        done.set()
        sampler.join()
    ended = time.monotonic()
    while service.rss() > 1.2 * idle and time.monotonic() - ended < 10:
        time.sleep(0.2)
    recovered = time.monotonic() - ended
    return {
        "idle": idle,
        "peak": peak[0],
        "after": service.rss(),
        "recovered_s": recovered,
        **(result or {}),
    }


def huge_headers(service: Service) -> dict:
    def one():
        sock = socket.create_connection(("127.0.0.1", service.port), timeout=10)
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(150):
                sock.sendall(b"a" * (1 << 20))
        except OSError:
            pass
        answer = sock.recv(200)
        sock.close()
        statuses.append(int(answer.split(b" ")[1]) if answer else 0)

    statuses: list[int] = []
    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return {"statuses": statuses}


def wrk_flood(service: Service, work: Path, body, path: str, connections: int, seconds: int):
    script = post_script(work, body, name=f"flood{connections}")
    load = wrk_started(service.url + path, connections, seconds, script)
    probes: dict[str, list[float]] = {"/api/health": [], "/api/health/ready": []}
    failures = 0
    time.sleep(1)
    while load.poll() is None:
        for probe, latencies in probes.items():
            started = time.monotonic()
            failures += not service.answers(probe, timeout=2)
            latencies.append((time.monotonic() - started) * 1000)
        time.sleep(0.05)
    return {"run": parse_wrk(load.communicate()[0]), "probes": probes, "probe_failures": failures}


def half_open(service: Service, count: int) -> dict:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    count = min(count, hard - 256)  # this process's own limit bounds the flood it can send
    held, refused = [], 0
    for _ in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", service.port), timeout=5)
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
            held.append(sock)
        except OSError:
            refused += 1
    fds = open_fds(service.process.pid)
    started = time.monotonic()
    ok = service.answers("/api/health") and service.answers("/api/health/ready")
    probe_ms = (time.monotonic() - started) * 1000
    for sock in held:
        sock.close()
    return {"fds": fds, "probe_ok": ok, "probe_ms": probe_ms, "refused": refused, "sent": count}


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("nan")


def where_batches_go(artifact: Path, rows: list[dict], n: int = 30) -> dict[str, float]:
    """Milliseconds per 1,000-row request, by stage, in process (the batch path's code)."""
    from insurance_pipeline.serving.fast_path import BATCH as ADAPTER
    from insurance_pipeline.serving.logging import configure_logging, flush_logs
    from insurance_pipeline.serving.state import batch_body, load_model

    configure_logging(stream=io.StringIO())
    model = load_model(artifact, None, log_inputs=False).model
    body = json.dumps(rows).encode()

    def timed(step, repeat=n):
        step()
        started = time.perf_counter()
        for _ in range(repeat):
            out = step()
        return (time.perf_counter() - started) / repeat * 1000, out

    decode, decoded = timed(lambda: json.loads(body))
    validate, items = timed(lambda: ADAPTER.validate_python(decoded))
    inputs = [item.__dict__ for item in items]
    compiled, arrays = timed(lambda: model.model.predict(inputs))
    results, found = timed(lambda: model.as_batch(arrays))  # measured on its own
    serialize, _ = timed(lambda: batch_body(found))
    logging_ms, _ = timed(lambda: (model.log.requested(inputs), model.log.created(found.charges)))
    flush_logs()
    return {
        "decode": decode,
        "validate": validate,
        "model": compiled,
        "results": results,
        "serialize": serialize,
        "logging": logging_ms,
    }


def measure(args, work: Path) -> dict:
    service = Service(args.service_python, args.artifact_dir, work / "service.log")
    try:
        found = {"headers": watched(service, lambda: huge_headers(service))}
        found["nested"] = watched(
            service, lambda: wrk_flood(service, work, NESTED, PREDICT, 16, 20)
        )
        found["half_open"] = watched(service, lambda: half_open(service, 21_000))
        found["batches"] = watched(
            service, lambda: wrk_flood(service, work, batch_rows(), BATCH, 32, args.seconds)
        )
        found["exit"] = service.stop()
    finally:
        if service.process.poll() is None:
            service.process.kill()
    found["numpy_batches"] = numpy_batches(args, work)
    found["stages"] = where_batches_go(args.artifact_dir, batch_rows())
    return found


def numpy_batches(args, work: Path) -> dict:
    """The same batch flood on the numpy forests (SERVING_NATIVE=false), for comparison."""
    service = Service(
        args.service_python, args.artifact_dir, work / "numpy.log", {"SERVING_NATIVE": "false"}
    )
    try:
        return watched(
            service, lambda: wrk_flood(service, work, batch_rows(), BATCH, 32, args.seconds)
        )
    finally:
        service.stop()


def mark(ok: bool) -> str:
    return "✅" if ok else "❌"


def table(args, m: dict) -> str:
    rows = []
    for key, label in (
        ("headers", "4 × 150 MB request headers at once"),
        ("nested", "nested JSON (5,000 deep), 16 connections, 20 s"),
        ("half_open", f"{m['half_open']['sent']:,} connections stopping mid-header"),
        ("batches", "1,000-row batches, 32 connections"),
    ):
        r = m[key]
        ok = r["peak"] <= 200 and r["after"] <= 200 and r["recovered_s"] < 10
        rows.append(
            f"| {label} | {r['idle']:.0f} / {r['peak']:.0f} / {r['after']:.0f} MiB, back in "
            f"{r['recovered_s']:.1f} s | ≤ 200 MiB, back within 10 s {mark(ok)} |"
        )
    h, n, o, b = m["headers"], m["nested"]["run"], m["half_open"], m["batches"]
    run, probes = b["run"], b["probes"]
    numpy_run = m["numpy_batches"]["run"]
    health, ready = p99(probes["/api/health"]), p99(probes["/api/health/ready"])
    rows_per_s = run["rps"] * 1000
    stages = m["stages"]
    total = sum(stages.values())
    spent = ", ".join(f"{k} {v:.1f} ms ({v / total:.0%})" for k, v in stages.items())
    return f"""Measured {dt.date.today()} on {os.cpu_count()} cores: the service from `.venv-serving` with the chart's \
defaults (LOG_PREDICTION_INPUTS=false, 2 model threads, 16 KiB headers, 5 s header and keep-alive \
timeouts, 1,000 connections), load from wrk and raw sockets on the same machine.

| traffic | RSS idle / peak / after | goal |
| --- | --- | --- |
{chr(10).join(rows)}

| measure | value | goal |
| --- | --- | --- |
| huge headers: answers | {sorted(set(h["statuses"]))} (431: too large) | 431 or closed {mark(set(h["statuses"]) <= {431, 0})} |
| nested JSON: answers | {n["requests"]:,} requests, all {"400" if n["non_2xx"] == n["requests"] else "mixed"} | 400 {mark(n["non_2xx"] == n["requests"])} |
| half-open flood: the server's descriptors / probes | {o["fds"]} fds; probes {"answered" if o["probe_ok"] else "FAILED"} in {o["probe_ms"]:.0f} ms ({o["refused"]} connects refused by the kernel) | bounded, probes answer {mark(o["probe_ok"] and o["fds"] < 1100)} |
| batch throughput at 32 connections (native forests) | {run["rps"]:.1f} requests/s = **{rows_per_s:,.0f} rows/s**, {run["timeouts"]} timeouts, {run["non_2xx"]} non-2xx | ≥ 100,000 rows/s, no timeout {mark(rows_per_s >= 100_000 and run["timeouts"] == 0)} |
| … the same on the numpy forests (SERVING_NATIVE=false) | {numpy_run["rps"] * 1000:,.0f} rows/s, {numpy_run["timeouts"]} timeouts | (for comparison) |
| `/api/health` / `/api/health/ready` p99 during the batches | {health:.1f} ms / {ready:.1f} ms, {b["probe_failures"]} failed | ≤ 50 ms, none failed {mark(max(health, ready) <= 50 and b["probe_failures"] == 0)} |
| SIGTERM exit status | {m["exit"]} | 0 {mark(m["exit"] == 0)} |

Where a 1,000-row request's time goes (one thread, in process, {total:.1f} ms in all): {spent}.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact-dir", type=Path, required=True)
    parser.add_argument("--service-python", required=True)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--update-docs", "--update-readme", dest="update_docs", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-abuse-"))
    measured = measure(args, work)
    text = table(args, measured)
    print(text)
    if args.update_docs:
        update_docs_section("abuse", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
