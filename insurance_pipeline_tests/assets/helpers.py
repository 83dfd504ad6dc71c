"""Run the real training job against the real instance in DAGSTER_HOME and read results."""

from __future__ import annotations

from typing import Any

from dagster import DagsterInstance

from insurance_pipeline.definitions import defs
from insurance_pipeline.resources import MlflowResource

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


def materialize(run_config: dict[str, Any]):
    job = defs.resolve_job_def("training")
    with DagsterInstance.get() as instance:
        return job.execute_in_process(
            run_config=run_config, instance=instance, raise_on_error=False
        )


def metadata_by_asset(result) -> dict[str, dict[str, Any]]:
    found = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            found[mat.asset_key.to_user_string()] = {
                k: getattr(v, "value", v) for k, v in mat.metadata.items()
            }
    return found


def registry_state() -> tuple[list[int], int | None]:
    """(all version numbers, champion version) of the registered model."""
    mlflow = MlflowResource()
    client = mlflow.client()
    versions = sorted(
        int(v.version) for v in client.search_model_versions(f"name = '{mlflow.model_name}'")
    )
    champion = mlflow.alias_version("champion")
    return versions, int(champion.version) if champion else None


def deploy(version: int, deployer, tags: dict | None = None):
    """The deploy job for one version, with this deployer, in the instance in DAGSTER_HOME."""
    job = defs.resolve_job_def("deploy")
    with DagsterInstance.get() as instance:
        return job.execute_in_process(
            run_config={"ops": {"deployment": {"config": {"model_version": version}}}},
            instance=instance,
            resources={"deployer": deployer},
            tags=tags,
            raise_on_error=False,
        )


def step_failures(result) -> list:
    return [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]


def failure_messages(result) -> str:
    return "\n".join(e.event_specific_data.error.message for e in step_failures(result))
