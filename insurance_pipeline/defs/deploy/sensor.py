"""The deploy sensor: `champion` differs from what this environment last deployed -> one
deploy run, if the champion's verdicts allow it.

- Deployable: the champion version carries an approval signed by a trusted key for this very
  version and run, with a passing verdict of every gate (in production, under a policy no
  weaker than this deployment's `gates`); the `deployment` asset repeats the check and also
  verifies every byte it ships. Check results recorded by other Dagster runs, and tags anyone
  could write, count for nothing.
- Last deployed in this environment: the latest successful `deployment` materialization in
  this Dagster instance (a real rollout, or a dry-run in the local environment). A rollback
  of `champion` to an earlier version therefore redeploys that version.
- Retries: a version whose sensor-launched deploys failed `max_attempts` times in a row
  (resource `deployer`, default 3) is reported and left alone until a new version becomes
  champion or someone runs the deploy job by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster import (
    AssetKey,
    DagsterRunStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from insurance_pipeline.defs.deploy.approval import verified_approval
from insurance_pipeline.defs.jobs import DEPLOY_JOB
from insurance_pipeline.resources import (
    DeployRunnerResource,
    GatesResource,
    MlflowResource,
    TrustResource,
)
from insurance_pipeline.resources.mlflow import CHAMPION_ALIAS

SENSOR_NAME = "deploy_validated_model"
DEPLOYMENT = AssetKey("deployment")
SENSOR_TAG = "dagster/sensor_name"
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


@dataclass(frozen=True)
class DeployHistory:
    """What this environment's instance says about deploying one version."""

    runs: int  # deploy runs of this version, any status
    failed_in_a_row: int  # sensor-launched failures since its last success or manual run
    in_flight: bool


def deployed_version(instance) -> int | None:
    """The version of the latest successful deployment materialization (rollout or dry-run)."""
    event = instance.get_latest_materialization_event(DEPLOYMENT)
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get("model_version")
    return int(value.value) if value is not None else None


def _version_of(run) -> int | None:
    config = (run.run_config or {}).get("ops", {}).get("deployment", {}).get("config", {})
    version = config.get("model_version")
    return int(version) if version is not None else None


def deploy_history(instance, version: int, limit: int = 200) -> DeployHistory:
    records = instance.get_run_records(RunsFilter(job_name=DEPLOY_JOB), limit=limit)
    runs = [r.dagster_run for r in records if _version_of(r.dagster_run) == version]  # newest first
    failed = 0
    for run in runs:
        if run.status != DagsterRunStatus.FAILURE or run.tags.get(SENSOR_TAG) != SENSOR_NAME:
            break
        failed += 1
    return DeployHistory(
        runs=len(runs),
        failed_in_a_row=failed,
        in_flight=any(run.status in IN_FLIGHT for run in runs),
    )


@sensor(
    job_name=DEPLOY_JOB,
    name=SENSOR_NAME,
    minimum_interval_seconds=30,
    description="When `champion` differs from what this environment last deployed, deploy "
    "it once its verdicts are checked; failed deploys are retried a bounded number of times.",
)
def deploy_validated_model(
    context: SensorEvaluationContext,
    mlflow: MlflowResource,
    deployer: DeployRunnerResource,
    gates: GatesResource,
    trust: TrustResource,
):
    champion = mlflow.alias_version(CHAMPION_ALIAS)  # a registry error fails the tick
    if champion is None:
        return SkipReason("no champion yet")
    version = int(champion.version)
    deployed = deployed_version(context.instance)
    if deployed == version:
        return SkipReason(f"champion v{version} is what this environment last deployed")
    policy = gates.policy() if deployer.enforces_policy else None
    decision = verified_approval(mlflow, champion, trust, required_policy=policy)
    if not decision.approved:
        return SkipReason(f"champion v{version} is not deployable: {decision.summary()}")
    history = deploy_history(context.instance, version)
    if history.in_flight:
        return SkipReason(f"a deploy run of v{version} is already queued or running")
    if history.failed_in_a_row >= deployer.max_attempts:
        return SkipReason(
            f"v{version} failed to deploy {history.failed_in_a_row} times in a row "
            f"(max_attempts {deployer.max_attempts}); not retrying until a new version "
            "becomes champion or the deploy job is run by hand"
        )
    return RunRequest(
        run_key=f"deploy-{mlflow.model_name}-v{version}-run{history.runs + 1}",
        run_config={"ops": {"deployment": {"config": {"model_version": version}}}},
        tags={"model_version": str(version), "previous_deployed": str(deployed)},
    )
