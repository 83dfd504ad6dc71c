"""Shared fixtures: an isolated state dir (Dagster home, MLflow store, cache, artifacts) per
test module, the shipped data, and the tiny TPOT budget that keeps the suite fast."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from insurance_pipeline.data.contract import read_insurance_csv, to_typed_frame
from insurance_pipeline.settings import DEFAULT_ROOT, get_settings

SHIPPED_CSV = DEFAULT_ROOT / "data" / "insurance.csv"

# Seconds, not minutes: one generation of four pipelines on 2-fold CV.
TINY_SEARCH = {"generations": 1, "population_size": 4, "cv": 2, "n_jobs": 1}


def tiny_run_config(gates: dict | None = None, **ops_config) -> dict:
    """Run config with the tiny search; `gates` configures the gates resource (r2_floor, …)."""
    ops = {"tpot_pipeline": {"config": dict(TINY_SEARCH)}}
    for op, config in ops_config.items():
        ops.setdefault(op, {"config": {}})["config"].update(config)
    config = {"ops": ops, "loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    if gates:
        config["resources"] = {"gates": {"config": dict(gates)}}
    return config


@dataclass
class Workspace:
    root: Path
    dagster_home: Path
    csv: Path
    cache_dir: Path | None = None  # None: the state dir's own cache

    def env(self) -> dict[str, str]:
        env = {
            "DAGSTER_HOME": str(self.dagster_home),
            "INSURANCE_STATE_DIR": str(self.root),
            "INSURANCE_DATA_PATH": str(self.csv),
            # Explicit: mlflow.set_tracking_uri() exports this variable process-wide.
            "MLFLOW_TRACKING_URI": f"sqlite:///{self.root / '.mlflow' / 'mlflow.db'}",
            "MLFLOW_REGISTRY_URI": f"sqlite:///{self.root / '.mlflow' / 'mlflow.db'}",
        }
        if self.cache_dir is not None:
            env["INSURANCE_CACHE_DIR"] = str(self.cache_dir)
        return env


@contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables (and re-read the settings object) for a block."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`python -m insurance_pipeline.cli ARGS` as `make run` runs it, with a tiny budget."""
    tiny = ["--generations", "1", "--population-size", "4", "--cv", "2"]
    return subprocess.run(
        [sys.executable, "-m", "insurance_pipeline.cli", *args[:1], *tiny, *args[1:]],
        env={**os.environ, **env},
        cwd=DEFAULT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="session")
def shared_step_cache(tmp_path_factory) -> Path:
    """One step cache for the session. It is content-keyed, so sharing it changes nothing a
    test asserts about registries, gates or deploys, and spares each module a cold TPOT
    search and profile. A module that asserts cold misses sets ISOLATED_CACHE = True."""
    return tmp_path_factory.mktemp("shared_cache")


@pytest.fixture(scope="module")
def workspace(request, tmp_path_factory, shared_step_cache) -> Iterator[Workspace]:
    """A fresh state dir with its own Dagster home, MLflow store and a copy of the CSV, set in
    os.environ for the module (the settings object is re-read)."""
    root = tmp_path_factory.mktemp("state")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(DEFAULT_ROOT / "dagster.yaml", home / "dagster.yaml")
    csv = root / "insurance.csv"
    shutil.copy(SHIPPED_CSV, csv)
    isolated = getattr(request.module, "ISOLATED_CACHE", False)
    ws = Workspace(
        root=root, dagster_home=home, csv=csv, cache_dir=None if isolated else shared_step_cache
    )
    with patched_environ(ws.env()):
        yield ws


@pytest.fixture(scope="session")
def insurance_frame() -> pd.DataFrame:
    return to_typed_frame(read_insurance_csv(SHIPPED_CSV))
