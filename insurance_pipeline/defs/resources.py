"""The resources, chosen by environment (INSURANCE_DEPLOYMENT), as Dagster's
project_fully_featured example does: `local` (embedded; deploys are recorded, not run) or
`production` (real build, push and rollout). The graph is the same in both."""

import os

import dagster as dg

from insurance_pipeline.resources import (
    DaskResource,
    DeployRunnerResource,
    GatesResource,
    InsuranceDataResource,
    MlflowResource,
    StepCacheIOManager,
    StepCacheResource,
)
from insurance_pipeline.resources.mlflow import local_artifact_root
from insurance_pipeline.resources.trust import TrustResource
from insurance_pipeline.settings import (
    DeploySettings,
    MlflowSettings,
    SearchSettings,
    StateSettings,
)


def _from_env(name: str, resolved: str):
    """An EnvVar when the variable is set (resolved when a run starts, and kept out of the UI
    and the run config: a URI may hold a password), else the default resolved now."""
    return dg.EnvVar(name) if os.environ.get(name) else resolved


def resources_for(
    state: StateSettings, mlflow: MlflowSettings, deploy: DeploySettings
) -> dict[str, object]:
    trust = TrustResource.from_settings(deploy.environment, state.state_dir)
    step_cache = StepCacheResource(
        root_dir=_from_env("INSURANCE_CACHE_DIR", str(state.cache_dir)), trust=trust
    )
    return {
        "data": InsuranceDataResource(
            csv_path=_from_env("INSURANCE_DATA_PATH", str(state.data_path)),
            artifacts_dir=_from_env("INSURANCE_ARTIFACTS_DIR", str(state.artifacts_dir)),
        ),
        "mlflow": MlflowResource(
            tracking_uri=_from_env("MLFLOW_TRACKING_URI", mlflow.tracking_uri),
            registry_uri=_from_env("MLFLOW_REGISTRY_URI", mlflow.registry_uri),
            experiment_name=mlflow.experiment,
            artifact_root=local_artifact_root(mlflow.tracking_uri, state.artifacts_dir),
        ),
        "step_cache": step_cache,
        # The step cache is also the store Dagster loads asset values from: one store.
        "io_manager": StepCacheIOManager(step_cache=step_cache),
        "gates": GatesResource(),
        "trust": trust,
        "dask": DaskResource(
            scheduler_address=_from_env(
                "DASK_SCHEDULER_ADDRESS", SearchSettings().scheduler_address
            )
        ),
        "deployer": DeployRunnerResource(
            mode="execute" if deploy.environment == "production" else "dry-run",
            registry=deploy.registry,
            builder=deploy.builder,
            values_files=[deploy.values_file] if deploy.values_file else [],
            kube_context=deploy.kube_context,
        ),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources=resources_for(StateSettings(), MlflowSettings(), DeploySettings())
    )
