"""A real serving artifact and a real service process on 127.0.0.1, run by the serving-only
install (`.venv-serving`, as `make serve` and the image run it) when `make install` made it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sklearn.ensemble import GradientBoostingRegressor

from insurance_pipeline.data.contract import FEATURE_COLUMNS, TARGET_COLUMN
from insurance_pipeline.features.transformer import fit_feature_transformer
from insurance_pipeline.modeling.export import export_pipeline
from insurance_pipeline.modeling.model import assemble_model
from insurance_pipeline.serving.artifact import write_artifact
from insurance_pipeline.settings import DEFAULT_ROOT

SERVING_VENV_PYTHON = DEFAULT_ROOT / ".venv-serving" / "bin" / "python"
SERVICE_PYTHON = str(SERVING_VENV_PYTHON) if SERVING_VENV_PYTHON.exists() else sys.executable


@pytest.fixture(scope="session")
def trained_pipeline(insurance_frame):
    """The training pipeline shape: fitted featuretools transformer + a fitted regressor."""
    features = fit_feature_transformer(insurance_frame[list(FEATURE_COLUMNS)])
    regressor = GradientBoostingRegressor(n_estimators=60, max_depth=3, random_state=0)
    regressor.fit(
        features.transform(insurance_frame[list(FEATURE_COLUMNS)]), insurance_frame[TARGET_COLUMN]
    )
    return assemble_model(features, regressor)


@pytest.fixture(scope="session")
def trained_interval(insurance_frame, trained_pipeline):
    """A real conformal interval for the fixture's model (3 folds: quick)."""
    from insurance_pipeline.modeling.intervals import IntervalConfig, fit_conformal_interval

    X = trained_pipeline.named_steps["features"].transform(insurance_frame[list(FEATURE_COLUMNS)])
    spec = trained_pipeline.named_steps["regressor"]
    return fit_conformal_interval(insurance_frame, X, spec, IntervalConfig(folds=3))


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory, trained_pipeline, trained_interval) -> Path:
    folder = tmp_path_factory.mktemp("artifact")
    export_artifact(trained_pipeline, folder, version=3, interval=trained_interval)
    return folder


def export_artifact(pipeline, folder: Path, version: int = 1, interval=None) -> Path:
    export = export_pipeline(pipeline, interval)
    bounds = None if interval is None else (export.reference_lower, export.reference_upper)
    write_artifact(
        export.model,
        export.reference_inputs,
        export.reference_charges,
        folder,
        reference_bounds=bounds,
        model_name="insurance_charges_model",
        version=version,
    )
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Service:
    url: str
    process: subprocess.Popen
    log_path: Path

    def logs(self) -> list[dict]:
        lines = self.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def logs_until(self, found, timeout: float = 5.0) -> list[dict]:
        """The records once `found(records)` holds (records are written in batches)."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.logs()
            if found(records) or time.monotonic() > deadline:
                return records
            time.sleep(0.05)


def start_service(
    artifact: Path, log_path: Path, env: dict | None = None, wait_ready: bool = True
) -> Service:
    port = free_port()
    handle = open(log_path, "w")
    process = subprocess.Popen(
        [
            SERVICE_PYTHON,
            "-m",
            "insurance_pipeline.serving",
            "--artifact-dir",
            str(artifact),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=DEFAULT_ROOT,
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url + "/api/health/startup", timeout=1)
            if response.status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError(f"service did not start: {log_path.read_text()}")
    if wait_ready:
        assert httpx.get(url + "/api/health/ready").status_code == 200, log_path.read_text()
    return Service(url=url, process=process, log_path=log_path)


def stop(service: Service) -> None:
    service.process.terminate()
    try:
        service.process.wait(30)
    except subprocess.TimeoutExpired:
        service.process.kill()


@pytest.fixture(scope="module")
def service(artifact_dir, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("logs") / "service.log"
    running = start_service(
        artifact_dir,
        log_path,
        env={
            "NODE_IP": "10.0.0.7",
            "POD_NAME": "pod-a",
            "NODE_NAME": "node-1",
            "APP_NAME": "insurance-charges-model",
        },
    )
    yield running
    stop(running)
