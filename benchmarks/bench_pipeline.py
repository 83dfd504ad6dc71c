"""Pipeline benchmark: cold and warm `make run` on a fresh state dir, and holdout metrics.

Cold = empty instance, MLflow store and cache (the venv is already installed); warm = the
same command again with nothing changed. Prints a table; --update-docs writes it to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _docs import update_docs_section  # noqa: E402


def timed_run(env: dict[str, str], extra: list[str]) -> tuple[float, str, int]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "insurance_pipeline.cli", "run", "--log-level", "WARNING", *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - started, proc.stdout, proc.returncode


def parse(stdout: str) -> dict[str, str]:
    found = dict(re.findall(r"(r2|mae|rmse)=([\d.]+)", stdout))
    found["misses"] = str(len(re.findall(r"cache: miss", stdout)))
    found["hits"] = str(len(re.findall(r"cache: hit", stdout)))
    version = re.search(r"registered model: \S+ version (\d+)", stdout)
    found["version"] = version.group(1) if version else "-"
    trust = re.search(r"trust: (\d+) signed, (\d+) verified, (\d+) ms", stdout)
    found["trust"] = trust.groups() if trust else ("-", "-", "-")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update-docs", "--update-readme", dest="update_docs", action="store_true")
    parser.add_argument("run_args", nargs="*", help="extra `cli run` arguments (budget)")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="insurance-bench-"))
    home = state / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "INSURANCE_STATE_DIR": str(state)}
    try:
        cold_s, cold_out, cold_rc = timed_run(env, args.run_args)
        warm_s, warm_out, warm_rc = timed_run(env, args.run_args)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    if cold_rc or warm_rc:
        print(cold_out, warm_out, sep="\n")
        raise SystemExit(f"benchmark run failed (exit codes {cold_rc}, {warm_rc})")
    cold, warm = parse(cold_out), parse(warm_out)
    table = f"""Measured {dt.date.today()} on {os.cpu_count()} cores, Python {platform.python_version()}\
{" with " + " ".join(args.run_args) if args.run_args else ", default budget"}:

| measure | value | goal |
| --- | --- | --- |
| cold `make run` (empty state, venv installed) | {cold_s:.0f} s ({cold["misses"]} steps computed) | ≤ 600 s |
| warm re-run, nothing changed | {warm_s:.1f} s ({warm["misses"]} steps recomputed, {warm["hits"]} cache hits) | ≤ 30 s, 0 recomputed |
| holdout r² / MAE / RMSE (seed 42, 268 rows) | {cold.get("r2")} / {cold.get("mae")} / {cold.get("rmse")} | |
| registered version after warm run | {warm["version"]} (cold: {cold["version"]}) | unchanged |
| signing and verifying in the warm run | {warm["trust"][2]} ms ({warm["trust"][0]} signatures, {warm["trust"][1]} verifications) | ≤ 1,000 ms |
| … in the cold run | {cold["trust"][2]} ms ({cold["trust"][0]} signatures, {cold["trust"][1]} verifications) | |
"""
    print(table)
    if args.update_docs:
        update_docs_section("pipeline", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
