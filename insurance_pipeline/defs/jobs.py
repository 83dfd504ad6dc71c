"""The two jobs: `training` (every training asset, the CSV observed first) and `deploy`."""

from dagster import AssetSelection, define_asset_job

# The asset groups (given by stage folder, `_steps.stage_group`): the docs and CI select
# `group:training`; the deploy group is outside it.
TRAINING_GROUP, DEPLOY_GROUP = "training", "deploy"
TRAINING_JOB, DEPLOY_JOB = "training", "deploy"
# Dagster concurrency pools (one slot each: `concurrency.pools.default_limit` in the instance's
# dagster.yaml): steps that must never overlap, on any machine, whatever launched the run.
REGISTRY_POOL, DEPLOY_POOL = "insurance_registry", "insurance_deploy"

# With the CSV source: every training run observes the file first, so its version (and the
# UI's view of it) is always the one the run read.
training_selection = AssetSelection.groups(TRAINING_GROUP, include_sources=True)

training_job = define_asset_job(
    TRAINING_JOB,
    selection=training_selection,
    description="CSV -> profile, split -> features -> TPOT -> model -> gates -> registry",
)

# Outside the training selection: only the sensor's run (or a person) deploys.
deploy_job = define_asset_job(
    DEPLOY_JOB,
    selection=AssetSelection.groups(DEPLOY_GROUP),
    description="Build, push and roll out one registered model version",
)
