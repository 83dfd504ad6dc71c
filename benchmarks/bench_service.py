"""Service benchmark, in one run on loopback: `make serve` beside a trivial FastAPI endpoint
(`trivial_endpoint.py`) under the same load generator (wrk: 1 thread, 4 connections, best of
3 runs each); the in-process predict path; `make serve`'s memory summed over its processes;
the probes while 64 connections saturate predictions; `make serve`'s start to ready.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from _docs import update_docs_section  # noqa: E402

from insurance_pipeline.serving.schemas import EXAMPLE_INPUT  # noqa: E402
from tooling.load import post_script, side_by_side, tree_rss_mib, wrk  # noqa: E402
from tooling.stack import free_port  # noqa: E402

PREDICT = "/api/models/insurance_charges_model/prediction"


def wait_ready(url: str, process: subprocess.Popen, seconds: float = 120) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        if process.poll() is not None:
            raise SystemExit(f"{process.args} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return time.perf_counter() - started
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"{url} never answered")


def in_process(artifact: Path, n: int = 5000) -> dict[str, float]:
    """The predict path for one row with its two records (formatted by the writer thread)."""
    from insurance_pipeline.serving.logging import configure_logging, flush_logs
    from insurance_pipeline.serving.state import load_model

    configure_logging(stream=open(os.devnull, "w"))  # noqa: SIM115 - lives with the process
    state = load_model(artifact)
    assert state.model is not None, state.error
    row = dict(EXAMPLE_INPUT)
    timings = []
    for i in range(n + 500):
        started = time.perf_counter_ns()
        state.model.predict_logged(row)
        if i >= 500:
            timings.append((time.perf_counter_ns() - started) / 1e6)
    flush_logs()
    timings.sort()
    compiled, plain, with_interval = state.model.model, [], []
    for _ in range(n):
        started = time.perf_counter_ns()
        compiled.regressor.predict_row(compiled.encoder.encode_row(row))
        middle = time.perf_counter_ns()
        compiled.predict_row(row)
        plain.append(middle - started)
        with_interval.append(time.perf_counter_ns() - middle)
    return {
        "p50_ms": statistics.median(timings),
        "p99_ms": timings[int(0.99 * len(timings))],
        "interval_ms": (statistics.median(with_interval) - statistics.median(plain)) / 1e6,
        "has_interval": compiled.interval is not None,
        "pin_ms": pin_check_ms(artifact),
    }


def forests_side_by_side(artifact: Path) -> dict[str, dict[str, float]]:
    """The model alone, native forests beside numpy's: ms for a 1,000-row batch and µs for
    one row (medians), in this process."""
    from insurance_pipeline.serving.state import NativeChoice, load_model
    from tooling.load import batch_rows

    rows, found = batch_rows(), {}
    for name, choice in (("native", NativeChoice()), ("numpy", NativeChoice(enabled=False))):
        model = load_model(artifact, native=choice).model.model
        batch = [timed_ms(lambda m=model: m.predict(rows)) for _ in range(30)]
        one = [timed_ms(lambda m=model: m.predict_row(rows[0])) for _ in range(3000)]
        found[name] = {
            "batch_ms": statistics.median(batch),
            "row_us": statistics.median(one) * 1000,
        }
    return found


def timed_ms(step) -> float:
    started = time.perf_counter()
    step()
    return (time.perf_counter() - started) * 1000


def pin_check_ms(artifact: Path, n: int = 200) -> float:
    """What the service's trust costs: once, at load, the sha256 of the manifest against
    MODEL_SHA256 (the manifest pins model.npz, which is hashed at load anyway). No request
    verifies anything."""
    from insurance_pipeline.compiled.artifact import manifest_digest, read_manifest

    digest = manifest_digest(artifact)
    started = time.perf_counter()
    for _ in range(n):
        read_manifest(artifact, digest)
    return (time.perf_counter() - started) / n * 1000


def start_processes(args, work: Path) -> tuple[subprocess.Popen, subprocess.Popen, int, int]:
    """The trivial endpoint and `make serve`, each on its own free port."""
    trivial_port, service_port = free_port(), free_port()
    trivial = subprocess.Popen(
        [args.service_python, "-m", "uvicorn", "trivial_endpoint:app"]
        + ["--app-dir", str(ROOT / "benchmarks"), "--port", str(trivial_port)]
        + ["--no-access-log", "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    serve = subprocess.Popen(
        ["make", "-s", "serve"],
        cwd=ROOT,
        stdout=open(work / "serve.log", "w"),  # noqa: SIM115 - lives with the process
        stderr=subprocess.STDOUT,
        env={**os.environ, "SERVICE_PORT": str(service_port)},
        start_new_session=True,
    )
    return trivial, serve, trivial_port, service_port


def measure_http(args, script: Path, serve, trivial, service_port: int, trivial_port: int):
    ready_s = wait_ready(f"http://127.0.0.1:{service_port}/api/health/ready", serve)
    wait_ready(f"http://127.0.0.1:{trivial_port}/docs", trivial)
    time.sleep(1)
    idle_rss, _ = tree_rss_mib(serve.pid)
    service_url = f"http://127.0.0.1:{service_port}{PREDICT}"
    trivial_url = f"http://127.0.0.1:{trivial_port}/p"
    wrk(service_url, 4, 3, script), wrk(trivial_url, 4, 3, script)  # warm-up
    runs = side_by_side({"trivial": trivial_url, "service": service_url}, 4, args.seconds, script)
    rss, processes = tree_rss_mib(serve.pid)
    saturating = subprocess.Popen(
        ["wrk", "-t1", "-c64", "-d20s", "-s", str(script), service_url],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(2)
    health = wrk(f"http://127.0.0.1:{service_port}/api/health", 1, 7)
    ready = wrk(f"http://127.0.0.1:{service_port}/api/health/ready", 1, 7)
    saturated = saturating.communicate()[0]
    return {
        "ready_s": ready_s,
        "idle_rss": idle_rss,
        "runs": runs,
        "best": {k: max(v, key=lambda r: r["rps"]) for k, v in runs.items()},
        "rss": rss,
        "processes": processes,
        "health": health,
        "ready": ready,
        "saturated_rps": float(re.search(r"Requests/sec:\s+([\d.]+)", saturated).group(1)),
    }


def mark(ok: bool) -> str:
    return "✅" if ok else "❌"


def service_table(args, m: dict, inproc: dict, forests: dict) -> str:
    s, t = m["best"]["service"], m["best"]["trivial"]
    ratio = s["rps"] / t["rps"]
    non_2xx = sum(r["non_2xx"] for r in m["runs"]["service"])
    health, ready, rss, ready_s = m["health"], m["ready"], m["rss"], m["ready_s"]
    return f"""Measured {dt.date.today()} on {os.cpu_count()} cores, load generator on the same machine: \
wrk, 1 thread, 4 keep-alive connections, {args.seconds} s, best of 3 runs each, alternating; the service \
is `make serve` (the champion, from `.venv-serving`), the reference is `benchmarks/trivial_endpoint.py` \
under the same uvicorn.

| measure | value | goal |
| --- | --- | --- |
| service / trivial endpoint, requests/s | {s["rps"]:,.0f} / {t["rps"]:,.0f} = **{ratio:.2f}×** | ≥ 1.3× {mark(ratio >= 1.3)} |
| service latency p50 / p99 | {s["p50_ms"]:.2f} ms / {s["p99_ms"]:.2f} ms (trivial: {t["p50_ms"]:.2f} / {t["p99_ms"]:.2f}) | p99 ≤ 3 ms {mark(s["p99_ms"] <= 3)} |
| non-2xx responses, all service runs | {non_2xx} | 0 {mark(non_2xx == 0)} |
| in-process predict path, one row, 2 log records, p50 / p99 | {inproc["p50_ms"]:.3f} ms / {inproc["p99_ms"]:.3f} ms | p50 ≤ 0.10 ms {mark(inproc["p50_ms"] <= 0.10)} |
| the model alone, native / numpy forests: a 1,000-row batch | {forests["native"]["batch_ms"]:.1f} ms / {forests["numpy"]["batch_ms"]:.1f} ms | (for comparison) |
| … one row | {forests["native"]["row_us"]:.0f} µs / {forests["numpy"]["row_us"]:.0f} µs | (for comparison) |
| the interval's cost per row (in-process, p50 with it minus without) | {inproc["interval_ms"]:.3f} ms{"" if inproc["has_interval"] else " (no interval in this model)"} | ≤ 0.05 ms {mark(inproc["has_interval"] and inproc["interval_ms"] <= 0.05)} |
| trust: signature checks per prediction / the manifest pin, once at load | 0 / {inproc["pin_ms"]:.2f} ms | nothing per request {mark(True)} |
| `make serve` RSS after the runs, summed over its {m["processes"]} processes (idle before them: {m["idle_rss"]:.0f} MiB) | {rss:.0f} MiB | idle ≤ 80 MiB {mark(m["idle_rss"] <= 80)} |
| `/api/health` / `/api/health/ready` p99 while 64 connections saturate predictions ({m["saturated_rps"]:,.0f} req/s) | {health["p99_ms"]:.1f} ms / {ready["p99_ms"]:.1f} ms | ≤ 25 ms {mark(max(health["p99_ms"], ready["p99_ms"]) <= 25)} |
| `make serve` to ready (export + start) | {ready_s:.1f} s | ≤ 60 s {mark(ready_s <= 60)} |
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact-dir", type=Path, required=True, help="for the in-process path")
    parser.add_argument("--service-python", required=True, help="the serving-only interpreter")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--update-docs", "--update-readme", dest="update_docs", action="store_true")
    args = parser.parse_args()

    inproc = in_process(args.artifact_dir)
    forests = forests_side_by_side(args.artifact_dir)
    work = Path(tempfile.mkdtemp(prefix="bench-service-"))
    script = post_script(work, EXAMPLE_INPUT)
    trivial, serve, trivial_port, service_port = start_processes(args, work)
    try:
        measured = measure_http(args, script, serve, trivial, service_port, trivial_port)
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        trivial.terminate()
        serve.wait(30), trivial.wait(30)
    table = service_table(args, measured, inproc, forests)
    print(table)
    if args.update_docs:
        update_docs_section("service", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
