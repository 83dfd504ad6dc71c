"""The production instance config (deploy/dagster/dagster.yaml) against a real PostgreSQL:
Dagster storage and the MLflow backend store on PostgreSQL, a tiny training run, the sensor."""

import shutil
import uuid

import pytest

from insurance_pipeline.deploy.plan import PROJECT
from insurance_pipeline_tests.helpers import definitions, mlflow, patched_environ, run_cli, trust

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def connect(dbname="postgres"):
    import psycopg2

    return psycopg2.connect(dbname=dbname, connect_timeout=3, **PG)


def postgres_available() -> str | None:
    try:
        connect().close()
        return None
    except Exception as error:  # noqa: BLE001
        return f"no PostgreSQL at 127.0.0.1:5432 ({error.__class__.__name__}: {error})"


pytestmark = pytest.mark.skipif(postgres_available() is not None, reason=str(postgres_available()))


@pytest.fixture(scope="module")
def databases():
    names = {k: f"ip_{k}_{uuid.uuid4().hex[:8]}" for k in ("dagster", "mlflow")}
    conn = connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in names.values():
            cur.execute(f"CREATE DATABASE {name}")
    yield names
    with conn.cursor() as cur:
        for name in names.values():
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


@pytest.fixture(scope="module")
def production_env(databases, workspace, tmp_path_factory):
    home = tmp_path_factory.mktemp("prod_home")
    shutil.copy(PROJECT / "deploy" / "dagster" / "dagster.yaml", home / "dagster.yaml")
    mlflow_uri = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{databases['mlflow']}"
    env = {
        **workspace.env(),
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": "5432",
        "DAGSTER_PG_USER": "postgres",
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": databases["dagster"],
        "MLFLOW_TRACKING_URI": mlflow_uri,
        "MLFLOW_REGISTRY_URI": mlflow_uri,
    }
    with patched_environ(env):
        yield env


def test_training_on_postgres_then_the_sensor_fires(production_env, databases):
    from dagster import DagsterInstance, RunRequest, build_sensor_context

    from insurance_pipeline.resources import DeployRunnerResource, GatesResource

    defs = definitions()
    proc = run_cli(production_env, "run", "--r2-floor", "0.5", "--log-level", "ERROR")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "registered model: insurance_charges_model version 1" in proc.stdout

    with DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        coordinator = instance.run_coordinator
        assert type(coordinator).__name__ == "QueuedRunCoordinator"
        limits = {
            (t["key"], t["value"]): t["limit"]
            for t in coordinator.get_run_queue_config().tag_concurrency_limits
        }
        assert limits[("dagster/job_name", "training")] == 1
        # a dead or stuck run cannot hold the training slot
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_runtime_seconds == 10800
        context = build_sensor_context(
            instance=instance,
            repository_def=defs.get_repository_def(),
            resources={
                "mlflow": mlflow(),
                "deployer": DeployRunnerResource(),
                "gates": GatesResource(),
                "trust": trust(),
            },
        )
        request = defs.get_sensor_def("deploy_validated_model")(context)
    assert isinstance(request, RunRequest)
    assert request.run_config["ops"]["deployment"]["config"]["model_version"] == 1

    # the registry lives in PostgreSQL
    with connect(databases["mlflow"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT name, version FROM model_versions")
        assert cur.fetchall() == [("insurance_charges_model", 1)]
    assert int(mlflow().alias_version("champion").version) == 1
