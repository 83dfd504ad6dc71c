"""The service of several commits, measured one after another in one run on this machine,
each beside the trivial endpoint (`trivial_endpoint.py`) under the same uvicorn: how a
regression is found (docs/benchmarks.md, "Which commit cost what").

    python benchmarks/bench_commits.py --artifact-dir .artifacts/serving/champion \\
        133d072 8ba6e84 93cb826 HEAD [--tree]

Each commit's own source runs (a git worktree, first on PYTHONPATH) on the serving install's
dependencies (`.venv-serving`), on the same artifact; `--tree` adds the working tree. Per
commit: single-row requests/s at 4 connections (best of 3, alternating with the trivial
endpoint), the ratio, p99, and `/api/health` p99 while 64 connections saturate predictions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]

from insurance_pipeline.serving.schemas import EXAMPLE_INPUT  # noqa: E402
from tooling.load import (  # noqa: E402
    parse_wrk,
    post_script,
    side_by_side,
    tree_rss_mib,
    wrk,
    wrk_started,
)
from tooling.stack import free_port  # noqa: E402

PREDICT = "/api/models/insurance_charges_model/prediction"
SERVING_PYTHON = ROOT / ".venv-serving" / "bin" / "python"


def wait_ready(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} never answered")


def source_tree(commit: str, work: Path) -> Path:
    if commit == "tree":
        return ROOT
    folder = work / commit
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "-f", "--detach", str(folder), commit],
        check=True,
        capture_output=True,
    )
    return folder


def start(source: Path, artifact: Path, port: int, work: Path, env: dict) -> subprocess.Popen:
    """The commit's service as `make serve` runs it: INFO records (two a prediction, with the
    inputs) written to a file."""
    log = open(work / f"{source.name}.log", "w")  # noqa: SIM115 - lives with the process
    return subprocess.Popen(
        [str(SERVING_PYTHON), "-m", "insurance_pipeline.serving", "--artifact-dir", str(artifact)]
        + ["--host", "127.0.0.1", "--port", str(port)],
        cwd=work,
        env={
            **env,
            "PYTHONPATH": str(source),
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "INFO"),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def measure(commit: str, args, work: Path, script: Path, trivial_url: str) -> dict:
    source = source_tree(commit, work)
    port = free_port()
    service = start(source, args.artifact_dir, port, work, dict(os.environ))
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base + "/api/health/ready")
        url = base + PREDICT
        wrk(url, 4, 2, script), wrk(trivial_url, 4, 2, script)  # warm-up
        runs = side_by_side({"trivial": trivial_url, "service": url}, 4, args.seconds, script)
        rss, _ = tree_rss_mib(service.pid)
        flood = wrk_started(url, 64, args.seconds + 3, script)
        time.sleep(1.5)
        probes = wrk(base + "/api/health", 1, args.seconds)
        flood_result = parse_wrk(flood.communicate()[0])
    finally:
        service.terminate()
        service.wait(30)
    best = {k: max(v, key=lambda r: r["rps"]) for k, v in runs.items()}
    return {
        "commit": commit,
        "service_rps": round(best["service"]["rps"]),
        "trivial_rps": round(best["trivial"]["rps"]),
        "ratio": round(best["service"]["rps"] / best["trivial"]["rps"], 2),
        "p99_ms": best["service"]["p99_ms"],
        "probe_p99_ms": probes["p99_ms"],
        "flood_rps": round(flood_result["rps"]),
        "rss_mib": round(rss),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commits", nargs="*")
    parser.add_argument("--tree", action="store_true", help="the working tree too, last")
    parser.add_argument("--artifact-dir", type=Path, required=True)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    args.artifact_dir = args.artifact_dir.resolve()
    commits = list(args.commits) + (["tree"] if args.tree else [])
    work = Path(tempfile.mkdtemp(prefix="bench-commits-"))
    script = post_script(work, EXAMPLE_INPUT)
    trivial_port = free_port()
    trivial = subprocess.Popen(
        [str(SERVING_PYTHON), "-m", "uvicorn", "trivial_endpoint:app"]
        + ["--app-dir", str(ROOT / "benchmarks"), "--port", str(trivial_port)]
        + ["--no-access-log", "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = []
    try:
        wait_ready(f"http://127.0.0.1:{trivial_port}/docs")
        for commit in commits:
            found = measure(commit, args, work, script, f"http://127.0.0.1:{trivial_port}/p")
            print(json.dumps(found), flush=True)
            results.append(found)
    finally:
        trivial.terminate()
        trivial.wait(30)
        for commit in commits:
            if commit != "tree":
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work / commit)],
                    capture_output=True,
                )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
