"""Scale benchmark: the graph cold on synthetic tables of 10,000, 100,000 and 1,000,000 rows.

The tables are made here, seeded, by resampling the real rows with small jitter (bmi ± 0.5,
charges × (1 ± 5 %), clipped to the contract's bounds), written under the state directory and
never committed. Each size runs `cli run` cold on a fresh state (default budget, or the
`run_args` given), sampling the run's memory (summed over its processes) as it goes. Per size:
seconds per step (from the run's events) and in all, peak RSS, the holdout r² and MAE and the
interval's holdout coverage. Prints a table; --update-docs writes it to docs/benchmarks.md; the last
line is one JSON object keyed by size.

`SIZES=100000 make bench-scale` runs one size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from _docs import update_docs_section  # noqa: E402

from tooling.load import tree_rss_mib  # noqa: E402

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)


def synthetic_table(rows: int, seed: int = 0) -> pd.DataFrame:
    """`rows` rows resampled from the shipped table, jittered, inside the contract."""
    from insurance_pipeline.domain.schema import SERVICE_RULES

    real = pd.read_csv(ROOT / "data" / "insurance.csv")
    rng = np.random.default_rng(seed)
    table = real.iloc[rng.integers(0, len(real), rows)].reset_index(drop=True)
    low, high = SERVICE_RULES["bmi"].low, SERVICE_RULES["bmi"].high
    table["bmi"] = np.clip(table["bmi"] + rng.uniform(-0.5, 0.5, rows), low, high).round(3)
    table["charges"] = (table["charges"] * rng.uniform(0.95, 1.05, rows)).round(5)
    return table


def step_seconds(dagster_home: Path) -> dict[str, float]:
    """Seconds from each step's start to its end, in the latest run of that instance."""
    from dagster import DagsterEventType, DagsterInstance

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    with DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        started, seconds = {}, {}
        for entry in instance.all_logs(run.run_id):
            if not entry.is_dagster_event:
                continue
            kind, step = entry.dagster_event.event_type, entry.step_key
            if kind == DagsterEventType.STEP_START:
                started[step] = entry.timestamp
            elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
                seconds[step] = round(entry.timestamp - started.get(step, entry.timestamp), 1)
    return seconds


def run_size(rows: int, root: Path, run_args: list[str]) -> dict:
    state = root / f"rows-{rows}"
    shutil.rmtree(state, ignore_errors=True)
    (state / "dagster_home").mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", state / "dagster_home" / "dagster.yaml")
    csv = state / "insurance.csv"
    synthetic_table(rows).to_csv(csv, index=False)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(state / "dagster_home"),
        "INSURANCE_STATE_DIR": str(state),
        "INSURANCE_DATA_PATH": str(csv),
    }
    command = [sys.executable, "-m", "insurance_pipeline.cli", "run", "--log-level", "WARNING"]
    started = time.perf_counter()
    process = subprocess.Popen(
        command + run_args, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    peak, done = [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_mib(process.pid)[0])
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.communicate()[0]
    done.set()
    total = time.perf_counter() - started
    metrics = dict(
        (k, float(v)) for k, v in (part.split("=") for part in _holdout_line(output).split(", "))
    )
    coverage = _coverage(output)
    return {
        "total_s": round(total, 1),
        "peak_rss_mib": round(peak[0]),
        "r2": metrics.get("r2"),
        "mae": metrics.get("mae"),
        "coverage": coverage,
        "exit": process.returncode,
        "steps": step_seconds(state / "dagster_home"),
    }


def _holdout_line(output: str) -> str:
    for line in output.splitlines():
        if line.startswith("holdout metrics: "):
            return line.removeprefix("holdout metrics: ")
    return ""


def _coverage(output: str) -> float | None:
    for line in output.splitlines():
        if line.startswith("interval: "):
            return float(line.split("covers ")[1].split()[0])
    return None


def table(found: dict[int, dict], run_args: list[str]) -> str:
    sizes = sorted(found)
    steps = list(dict.fromkeys(s for f in found.values() for s in f["steps"]))  # run order
    head = "| step (seconds) | " + " | ".join(f"{s:,}" for s in sizes) + " |"
    lines = [head, "|" + " --- |" * (len(sizes) + 1)]
    for step in steps:
        cells = " | ".join(str(found[s]["steps"].get(step, "-")) for s in sizes)
        lines.append(f"| {step} | {cells} |")
    for label, key in (
        ("**whole run**", "total_s"),
        ("peak RSS, MiB", "peak_rss_mib"),
        ("holdout r²", "r2"),
        ("holdout MAE", "mae"),
        ("interval coverage (holdout)", "coverage"),
        ("exit status", "exit"),
    ):
        lines.append(f"| {label} | " + " | ".join(str(found[s][key]) for s in sizes) + " |")
    budget = " ".join(run_args) or "the default budget"
    dates = sorted({found[s].get("date", str(dt.date.today())) for s in sizes})
    return (
        f"Measured {', '.join(dates)} on {os.cpu_count()} cores, cold, {budget}:\n\n"
        + "\n".join(lines)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update-docs", "--update-readme", dest="update_docs", action="store_true")
    parser.add_argument("run_args", nargs="*", help="extra `cli run` arguments (budget)")
    args = parser.parse_args()
    sizes = [int(s) for s in os.environ.get("SIZES", "").split(",") if s] or DEFAULT_SIZES
    from insurance_pipeline.settings import StateSettings

    root = Path(StateSettings().state_dir) / ".bench-scale"
    root.mkdir(exist_ok=True)
    # Sizes measured one at a time (`SIZES=…`) accumulate: docs/benchmarks.md holds each size's
    # latest run with the same budget.
    saved = root / f"results{'-' + '-'.join(args.run_args) if args.run_args else ''}.json"
    found = {int(k): v for k, v in json.loads(saved.read_text()).items()} if saved.exists() else {}
    for rows in sizes:
        print(f"{rows:,} rows ...", file=sys.stderr, flush=True)
        found[rows] = run_size(rows, root, args.run_args) | {"date": str(dt.date.today())}
        saved.write_text(json.dumps({str(k): v for k, v in sorted(found.items())}, indent=1))
        print(json.dumps({str(rows): found[rows]}), file=sys.stderr, flush=True)
    text = table(found, args.run_args)
    print(text)
    if args.update_docs:
        update_docs_section("scale", text)
    print(json.dumps({str(k): v for k, v in found.items() if k in sizes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
