"""The one Definitions of the code location: assets, checks, resources, jobs, schedules."""

from __future__ import annotations

import warnings

from dagster import (
    AssetSelection,
    BetaWarning,
    Definitions,
    define_asset_job,
    in_process_executor,
    load_asset_checks_from_modules,
    load_assets_from_modules,
)

from insurance_pipeline.assets import data, deployment, features, registry, training, validation
from insurance_pipeline.resources import (
    DeployRunnerResource,
    GatesResource,
    InsuranceDataResource,
    MlflowResource,
    StepCacheIOManager,
    StepCacheResource,
)
from insurance_pipeline.schedules import build_retraining_schedule
from insurance_pipeline.sensors import build_deploy_sensor
from insurance_pipeline.settings import get_settings

# Data versions and observable sources are the documented staleness tools, marked beta.
warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

# Each module's assets join one group, named here once. README and CI select `group:training`.
TRAINING_GROUP, DEPLOY_GROUP = "training", "deploy"
TRAINING_MODULES = (data, features, training, validation, registry)
training_assets = load_assets_from_modules(TRAINING_MODULES, group_name=TRAINING_GROUP)
deploy_assets = load_assets_from_modules([deployment], group_name=DEPLOY_GROUP)
asset_checks = load_asset_checks_from_modules(TRAINING_MODULES)
# With the CSV source: every training run observes the file first, so its version (and the
# UI's view of it) is always the one the run read.
training_selection = AssetSelection.groups(TRAINING_GROUP, include_sources=True)

training_job = define_asset_job(
    "training",
    selection=training_selection,
    description="CSV -> profile, split -> features -> TPOT -> model -> gates -> registry",
)

# Outside the training selection: only the sensor's run (or a person) deploys.
deploy_job = define_asset_job(
    "deploy",
    selection=AssetSelection.groups(DEPLOY_GROUP),
    description="Build, push and roll out one registered model version",
)

DEPLOYMENTS = ("local", "production")


def resources_for(deployment: str) -> dict:
    """Resources by deployment name (INSURANCE_DEPLOYMENT), as Dagster's
    project_fully_featured example does. The graph is the same in both; what differs is how
    a model ships: `local` records the build/push/rollout it would run (dry-run), `production`
    runs them. The Dagster instance (SQLite or PostgreSQL) comes from DAGSTER_HOME's
    dagster.yaml and MLflow from MLFLOW_TRACKING_URI: see README "Environments"."""
    if deployment not in DEPLOYMENTS:
        raise ValueError(
            f"INSURANCE_DEPLOYMENT={deployment!r} is not a deployment; use one of "
            + ", ".join(DEPLOYMENTS)
        )
    settings = get_settings()
    step_cache = StepCacheResource()
    deployer = DeployRunnerResource(
        mode="execute" if deployment == "production" else "dry-run",
        registry=settings.deploy_registry,
        builder=settings.deploy_builder,
        values_files=[settings.deploy_values_file] if settings.deploy_values_file else [],
        kube_context=settings.deploy_kube_context,
    )
    return {
        "data": InsuranceDataResource(),
        "mlflow": MlflowResource(),
        "step_cache": step_cache,
        # The step cache is also the store Dagster loads asset values from: one store.
        "io_manager": StepCacheIOManager(step_cache=step_cache),
        "gates": GatesResource(),
        "deployer": deployer,
    }


defs = Definitions(
    assets=[*training_assets, *deploy_assets],
    asset_checks=asset_checks,
    jobs=[training_job, deploy_job],
    schedules=[build_retraining_schedule(training_job, training_selection)],
    sensors=[build_deploy_sensor(deploy_job)],
    resources=resources_for(get_settings().deployment),
    # In-process: the training stack costs ~6 s of imports per step in a subprocess, and the
    # TPOT step parallelises itself through dask.
    executor=in_process_executor,
)
