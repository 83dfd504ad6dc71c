"""MLFLOW_REGISTRY_URI is honoured: models are registered there, runs stay in tracking. The
resource never touches MLflow's process-global URIs."""

import mlflow as mlflow_api
import pytest

from insurance_pipeline.resources import MlflowResource
from insurance_pipeline_tests.helpers import patched_environ

pytestmark = pytest.mark.dagster


def test_the_registry_uri_from_the_environment_is_the_one_used(tmp_path):
    tracking = f"sqlite:///{tmp_path / 'tracking.db'}"
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    before = mlflow_api.get_tracking_uri()
    with patched_environ({"MLFLOW_TRACKING_URI": tracking, "MLFLOW_REGISTRY_URI": registry}):
        resource = MlflowResource.from_settings()
        assert resource.active_registry_uri == registry
        resource.client().create_registered_model("registry_probe")
    from mlflow.tracking import MlflowClient

    in_registry = MlflowClient(tracking_uri=tracking, registry_uri=registry)
    in_tracking = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    assert [m.name for m in in_registry.search_registered_models()] == ["registry_probe"]
    assert in_tracking.search_registered_models() == []
    assert mlflow_api.get_tracking_uri() == before


def test_an_explicit_tracking_uri_keeps_its_own_registry(tmp_path):
    tracking = f"sqlite:///{tmp_path / 'explicit.db'}"
    assert MlflowResource(tracking_uri=tracking).active_registry_uri == tracking


def _first_use(uri: str, barrier, results) -> None:
    from insurance_pipeline.resources.mlflow import MlflowResource

    barrier.wait()
    try:
        MlflowResource(tracking_uri=uri).client().search_experiments()
        results.put("ok")
    except Exception as error:  # noqa: BLE001 - reported to the test
        results.put(f"{type(error).__name__}: {error}")


def test_processes_creating_one_sqlite_store_at_once_all_succeed(tmp_path):
    """Entry points started together each create the store on first use: one creates it
    (tables, migrations), the others wait for it, and none fails."""
    import multiprocessing

    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(6), ctx.Queue()
    workers = [ctx.Process(target=_first_use, args=(uri, barrier, results)) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert sorted(results.get(timeout=5) for _ in workers) == ["ok"] * 6
