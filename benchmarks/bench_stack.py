"""Stack benchmark: `make stack` to ready, and `make run` through the stack (cache in S3, MLflow
server, search on the Dask cluster) against the same run on local state, measured in the same
run. A stack of its own (temporary folder, ports and databases), destroyed at the end.

Prints a table; --update-docs writes it to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from _docs import update_docs_section  # noqa: E402
from bench_pipeline import parse, timed_run  # noqa: E402

from tooling import stack  # noqa: E402


def local_env(state: Path) -> dict[str, str]:
    home = state / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    return {**os.environ, "DAGSTER_HOME": str(home), "INSURANCE_STATE_DIR": str(state)}


def operator_policy(run_args: list[str]) -> dict[str, str]:
    """The stack is production, where run config may only tighten the gates: a benchmark's
    `--r2-floor` (a tiny budget's) is the operator's policy there."""
    if "--r2-floor" not in run_args:
        return {}
    return {"INSURANCE_GATE_R2_FLOOR": run_args[run_args.index("--r2-floor") + 1]}


def timed_up() -> float:
    started = time.perf_counter()
    stack.up()
    return time.perf_counter() - started


def checked(label: str, result: tuple[float, str, int]) -> tuple[float, dict[str, str], str]:
    seconds, stdout, code = result
    if code:
        print(stdout)
        raise SystemExit(f"{label} failed (exit code {code})")
    return seconds, parse(stdout), stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update-docs", "--update-readme", dest="update_docs", action="store_true")
    parser.add_argument("run_args", nargs="*", help="extra `cli run` arguments (budget)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="insurance-bench-stack-"))
    os.environ["INSURANCE_STACK_DIR"] = str(scratch / "stack")
    try:
        first_up = timed_up()
        stack.down()
        restart_up = timed_up()
        client = {
            **os.environ,
            **stack.Plan.load(stack.stack_dir()).client_env(),
            "INSURANCE_STATE_DIR": str(scratch / "client"),
            **operator_policy(args.run_args),
        }
        (scratch / "client").mkdir()
        local = local_env(scratch / "local")
        cold_local = checked("cold local run", timed_run(local, args.run_args))
        warm_local = checked("warm local run", timed_run(local, args.run_args))
        cold_stack = checked("cold stack run", timed_run(client, args.run_args))
        warm_stack = checked("warm stack run", timed_run(client, args.run_args))
    finally:
        stack.destroy()
        shutil.rmtree(scratch, ignore_errors=True)
    if "on tls://" not in cold_stack[2]:
        raise SystemExit("the stack run did not search on the stack's Dask cluster")
    ratio = warm_stack[0] / warm_local[0]
    table = f"""Measured {dt.date.today()} on {os.cpu_count()} cores, Python {platform.python_version()}\
{" with " + " ".join(args.run_args) if args.run_args else ", default budget"}; local = SQLite,
folders, TPOT's own Dask cluster; stack = `make stack` (S3 behind its keys in its own network
namespace, MLflow server with its login on PostgreSQL, a 2-worker Dask cluster over mutual TLS,
Dagster on PostgreSQL with its own role), client state dir empty:

| measure | local | stack | goal |
| --- | --- | --- | --- |
| `make stack` to ready: first start / restart | | {first_up:.1f} s / {restart_up:.1f} s | ≤ 60 s |
| cold `make run` (search included) | {cold_local[0]:.0f} s | {cold_stack[0]:.0f} s | |
| warm `make run`, nothing changed | {warm_local[0]:.1f} s | {warm_stack[0]:.1f} s ({ratio:.2f}×) | ≤ 2× local |
| holdout r² / MAE | {cold_local[1].get("r2")} / {cold_local[1].get("mae")} | {cold_stack[1].get("r2")} / {cold_stack[1].get("mae")} | |
| steps recomputed in the warm run | {warm_local[1]["misses"]} | {warm_stack[1]["misses"]} | 0 |
"""
    print(table)
    if args.update_docs:
        update_docs_section("stack", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
