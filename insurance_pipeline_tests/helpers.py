"""The shared test helpers, in one place: workspaces (an isolated state per test module),
runs of the real training and deploy jobs against the real instance in DAGSTER_HOME, what
they produced, the CLI as `make run` starts it, and the model service as a real process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from insurance_pipeline.core.trust.keys import generate_key
from insurance_pipeline.domain.layout import CHECKOUT
from tooling.environ import patched_environ  # noqa: F401 - the tests' one helper

SHIPPED_CSV = CHECKOUT / "data" / "insurance.csv"
DAGSTER = os.path.join(os.path.dirname(sys.executable), "dagster")
# Seconds, not minutes: one generation of four pipelines on 2-fold CV.
TINY_SEARCH = {"generations": 1, "population_size": 4, "cv": 2, "n_jobs": 1}
TINY_CLI = ["--generations", "1", "--population-size", "4", "--cv", "2"]
# The training assets in the order the job materializes them.
TRAINING_ASSETS = [
    "raw_insurance_data",
    "insurance_data_profile",
    "train_test_split",
    "feature_transformer",
    "tpot_pipeline",
    "prediction_interval",
    "trained_model",
    "champion_comparison",
    "validation_metrics",
    "validation_report",
    "registered_model",
]
# Training libraries: none of them in the service's process, install or image.
TRAINING_LIBRARIES = (
    "dagster",
    "tpot",
    "featuretools",
    "woodwork",
    "mlflow",
    "sklearn",
    "lightgbm",
    "xgboost",
    "scipy",
    "pandas",
    "pyarrow",
    "joblib",
)


# What no file of the serving image may import (issue: the image ships only the service).
TRAINING_STACK = ("dagster", "mlflow", "tpot", "featuretools", "sklearn")


def imported_top_modules(source: str) -> set[str]:
    """The top-level module of every import statement in `source` (absolute imports)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


# One pipeline key for the whole session, as one pipeline has one key: the step cache that
# test modules share stays trusted across their workspaces.
# Child processes (spawned workers, the CLI) inherit it through the environment.
SESSION_KEY = Path(
    os.environ.get("INSURANCE_TEST_SESSION_KEY")
    or generate_key(Path(tempfile.mkdtemp(prefix="insurance-test-keys-")) / "key.pem")
)
os.environ["INSURANCE_TEST_SESSION_KEY"] = str(SESSION_KEY)


# -- state -----------------------------------------------------------------------------------


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
        db = f"sqlite:///{self.root / '.mlflow' / 'mlflow.db'}"
        env = {
            "DAGSTER_HOME": str(self.dagster_home),
            "INSURANCE_STATE_DIR": str(self.root),
            "INSURANCE_DATA_PATH": str(self.csv),
            "MLFLOW_TRACKING_URI": db,
            "MLFLOW_REGISTRY_URI": db,
            "INSURANCE_SIGNING_KEY": str(SESSION_KEY),
        }
        if self.cache_dir is not None:
            env["INSURANCE_CACHE_DIR"] = str(self.cache_dir)
        return env


def new_workspace(root: Path, cache_dir: Path | None = None, *, home: bool = True) -> Workspace:
    """A state dir with a copy of the CSV; with `home`, a Dagster home holding the local
    instance's dagster.yaml (else it does not exist yet: `make` creates it)."""
    root.mkdir(parents=True, exist_ok=True)
    dagster_home = root / "dagster_home"
    if home:
        dagster_home.mkdir(exist_ok=True)
        shutil.copy(CHECKOUT / "dagster.yaml", dagster_home / "dagster.yaml")
    csv = root / "insurance.csv"
    shutil.copy(SHIPPED_CSV, csv)
    return Workspace(root=root, dagster_home=dagster_home, csv=csv, cache_dir=cache_dir)


# -- runs ------------------------------------------------------------------------------------


def definitions():
    """The code location as it loads now (its resources follow the current environment).
    Loaded in a fresh context: Dagster keeps the state storage of the instance last entered
    in a context variable, which a test's earlier, closed instance may still occupy."""
    import contextvars

    from insurance_pipeline.definitions import build_definitions

    def load():
        defs = build_definitions()
        defs.get_repository_def()  # resolved (and cached) in the same context
        return defs

    return contextvars.Context().run(load)


def materialize(run_config: dict[str, Any]):
    """The training job, in process, against the instance in DAGSTER_HOME."""
    from dagster import DagsterInstance

    job = definitions().resolve_job_def("training")
    with DagsterInstance.get() as instance:
        return job.execute_in_process(
            run_config=run_config, instance=instance, raise_on_error=False
        )


def run_selection(keys, **resource_config):
    """The training job with only `keys` selected; `resource_config` configures resources."""
    from dagster import DagsterInstance

    job = definitions().resolve_job_def("training")
    resources = {name: {"config": config} for name, config in resource_config.items()}
    with DagsterInstance.get() as instance:
        return job.execute_in_process(
            instance=instance,
            asset_selection=list(keys),
            run_config={"resources": resources} if resources else None,
            raise_on_error=False,
        )


def deploy(version: int, deployer, tags: dict | None = None):
    """The deploy job for one version, with this deployer."""
    from dagster import DagsterInstance

    job = definitions().resolve_job_def("deploy")
    with DagsterInstance.get() as instance:
        return job.execute_in_process(
            run_config={"ops": {"deployment": {"config": {"model_version": version}}}},
            instance=instance,
            resources={"deployer": deployer},
            tags=tags,
            raise_on_error=False,
        )


def evaluate_sensor(deployer=None):
    """One tick of the deploy sensor, with the code location's resources (and `deployer`)."""
    from dagster import DagsterInstance, build_sensor_context

    from insurance_pipeline.defs.deploy.sensor import SENSOR_NAME
    from insurance_pipeline.resources import DeployRunnerResource

    defs = definitions()
    with DagsterInstance.get() as instance:
        context = build_sensor_context(
            instance=instance,
            repository_def=defs.get_repository_def(),
            resources={
                "mlflow": mlflow(),
                "deployer": deployer or DeployRunnerResource(),
                "trust": trust(),
            },
        )
        return defs.get_sensor_def(SENSOR_NAME)(context)


def evaluate_schedule(defs=None):
    from dagster import DagsterInstance, build_schedule_context

    defs = defs or definitions()
    with DagsterInstance.get() as instance:
        context = build_schedule_context(
            instance=instance, repository_def=defs.get_repository_def()
        )
        return defs.get_schedule_def("weekly_retraining")(context)


def dagster_cli(workspace: Workspace, *args: str, env: dict | None = None, timeout: int = 600):
    """The `dagster` CLI against the workspace's instance, as CI and README run it."""
    return subprocess.run(
        [DAGSTER, *args],
        env={**os.environ, **workspace.env(), **(env or {})},
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`python -m insurance_pipeline.cli ARGS` as `make run` runs it, with a tiny budget."""
    return subprocess.run(
        [sys.executable, "-m", "insurance_pipeline.cli", *args[:1], *TINY_CLI, *args[1:]],
        env={**os.environ, **env},
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=900,
    )


def export_champion(dest: Path, *extra: str) -> subprocess.CompletedProcess:
    """`python -m insurance_pipeline.cli export-champion --dest DEST` (what `make serve` runs)."""
    return subprocess.run(
        [sys.executable, "-m", "insurance_pipeline.cli", "export-champion", "--dest", str(dest)]
        + list(extra),
        env=dict(os.environ),
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def cache_states(instance, run_id: str) -> dict[str, str]:
    """asset -> "hit"/"miss", from the cached steps' materializations in that run."""
    from dagster import AssetKey

    found = {}
    for name in TRAINING_ASSETS:
        records = instance.fetch_materializations(AssetKey(name), limit=20).records
        mine = [r for r in records if r.run_id == run_id]
        metadata = mine[0].asset_materialization.metadata if mine else {}
        if "cache" in metadata:
            found[name] = metadata["cache"].value
    return found


def latest_run_cache_states() -> dict[str, str]:
    """The cache states of the newest training run in DAGSTER_HOME's instance."""
    from dagster import DagsterInstance, RunsFilter

    with DagsterInstance.get() as instance:
        run = instance.get_run_records(RunsFilter(job_name="training"), limit=1)[0]
        return cache_states(instance, run.dagster_run.run_id)


# -- what runs produced ------------------------------------------------------------------------


def metadata_by_asset(result) -> dict[str, dict[str, Any]]:
    return {
        e.asset_key.to_user_string(): {
            k: getattr(v, "value", v) for k, v in e.materialization.metadata.items()
        }
        for e in result.get_asset_materialization_events()
    }


def step_failures(result) -> list:
    return result.get_step_failure_events()


def failure_messages(result) -> str:
    return "\n".join(e.step_failure_data.error.message for e in step_failures(result))


def mlflow(**overrides):
    """The MLflow resource for the current environment."""
    from insurance_pipeline.resources import MlflowResource

    return MlflowResource.from_settings(**overrides)


def trust():
    """The trust resource for the current environment (the session's key)."""
    from insurance_pipeline.resources import TrustResource

    return TrustResource.from_settings()


def release():
    """The release (approvals, the champion record, verified fetches) for the current
    environment."""
    from insurance_pipeline.release import Release

    return Release.of(mlflow(), trust())


def registry_state() -> tuple[list[int], int | None]:
    """(all version numbers, champion version) of the registered model."""
    resource = mlflow()
    versions = sorted(
        int(v.version)
        for v in resource.client().search_model_versions(f"name = '{resource.model_name}'")
    )
    champion = resource.alias_version("champion")
    return versions, int(champion.version) if champion else None


# -- a registry that fails ------------------------------------------------------------------


@contextmanager
def serve_failing_registry(userinfo: str = ""):
    """A real HTTP endpoint on 127.0.0.1 that answers every MLflow call with 403; its URL
    (with `userinfo`, e.g. "mlflow:PASSWORD@", inside it)."""
    import http.server
    import threading

    class FailingRegistry(http.server.BaseHTTPRequestHandler):
        def _fail(self):
            body = json.dumps(
                {"error_code": "PERMISSION_DENIED", "message": "token may not read the registry"}
            ).encode()
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = do_DELETE = _fail

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FailingRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{userinfo}127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


# -- the service as a process ----------------------------------------------------------------

SERVING_VENV_PYTHON = CHECKOUT / ".venv-serving" / "bin" / "python"
SERVICE_PYTHON = str(SERVING_VENV_PYTHON) if SERVING_VENV_PYTHON.exists() else sys.executable


def export_artifact(pipeline, folder: Path, version: int = 1, interval=None) -> Path:
    from insurance_pipeline.compiled.artifact import write_artifact
    from insurance_pipeline.core.export import export_pipeline

    export = export_pipeline(pipeline, interval)
    write_artifact(
        export.model,
        export.references,
        folder,
        model_name="insurance_charges_model",
        version=version,
    )
    return folder


def require_image_tools(*extra: str) -> None:
    """Skip (fail, in CI) unless buildah, podman and debootstrap (and `extra`) are installed."""
    import pytest

    from tooling import images

    missing = images.missing_tools((*images.TOOLS, *extra))
    if missing:
        message = f"image tools missing: {', '.join(missing)} (`make install` as root adds them)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # CI never skips the image tests silently
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float, status: int = 200) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if httpx.get(url, timeout=1).status_code == status:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer {status} within {timeout} s")


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
        [SERVICE_PYTHON, "-m", "insurance_pipeline.serving", "--artifact-dir", str(artifact)]
        + ["--host", "127.0.0.1", "--port", str(port)],
        cwd=log_path.parent,  # not the checkout: the install's own copy of the service runs
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/api/health/startup", timeout=60)
    except TimeoutError:
        process.kill()
        raise RuntimeError(f"service did not start: {log_path.read_text()}") from None
    if wait_ready:
        assert httpx.get(url + "/api/health/ready").status_code == 200, log_path.read_text()
    return Service(url=url, process=process, log_path=log_path)


def stop(service: Service) -> None:
    service.process.terminate()
    try:
        service.process.wait(30)
    except subprocess.TimeoutExpired:
        service.process.kill()


# -- random trees (the compiled forests' conformance tests) ---------------------------------


def random_trees(rng, trees: int, depth: int, X, width: int, **summing):
    """Trees grown at random (each node a split with probability 0.8 above `depth`), split
    values drawn from the data (ties with row values included): a `compiled.model.Forest`
    over `width` features (and their float32 views)."""
    import numpy as np

    from insurance_pipeline.compiled.model import Forest

    feature, threshold, children, value, roots = [], [], [], [], []

    def node(level: int) -> int:
        index = len(feature)
        feature.append(0), threshold.append(np.inf), children.extend([index, index])
        value.append(float(rng.normal()))
        if level < depth and (level == 0 or rng.random() < 0.8):
            column = int(rng.integers(0, 2 * width))  # >= width: the float32 view
            wide = np.hstack([X, X.astype(np.float32)])
            feature[index], threshold[index], value[index] = (
                column,
                float(rng.choice(wide[:, column])),
                0.0,
            )
            left, right = node(level + 1), node(level + 1)
            children[2 * index : 2 * index + 2] = [left, right]
        return index

    for _ in range(trees):
        roots.append(node(0))
    return Forest(
        feature=np.array(feature),
        threshold=np.array(threshold),
        children=np.array(children),
        value=np.array(value),
        roots=np.array(roots),
        depth=depth,
        **summing,
    )
