"""The deploy sensor: the champion differs from what this environment last deployed -> one
deploy run, if the champion's approval allows it.

- The champion: the version the latest valid signed champion record names
  (`release.Release.champion`). An alias that disagrees with it (moved or deleted), or a
  record older than the one this environment last deployed (replayed), is tampering: the
  tick skips, naming both, and nothing is launched.
- Deployable: the champion version carries an approval signed by a trusted key for this very
  version and run, with a passing verdict of every gate (in production, under a policy no
  weaker than the environment's INSURANCE_GATE_*); the `deployment` asset repeats the checks
  and also verifies every byte it ships. Check results recorded by other Dagster runs, and
  tags anyone could write, count for nothing.
- Last deployed in this environment: the latest successful `deployment` materialization in
  this Dagster instance (a real rollout, or a dry-run in the local environment). A rollback
  (`cli promote` of an earlier version: a new signed record) therefore redeploys it.
- Retries: a version whose sensor-launched deploys failed `max_attempts` times in a row
  (DEPLOY_MAX_ATTEMPTS, default 3) is reported and left alone until a new version becomes
  champion or someone runs the deploy job by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster import (
    DagsterRunStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from insurance_pipeline.core.gates.champion import ChampionError, check_not_replayed
from insurance_pipeline.defs.deploy.assets import deployed
from insurance_pipeline.defs.jobs import DEPLOY_JOB
from insurance_pipeline.release import Release
from insurance_pipeline.resources import DeployRunnerResource, MlflowResource, TrustResource

SENSOR_NAME = "deploy_validated_model"
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
    trust: TrustResource,
):
    release = Release.of(mlflow, trust)
    deployed_version, acted_on = deployed(context.instance)
    try:
        champion = release.champion()  # a registry error fails the tick
        check_not_replayed(champion and champion.record, acted_on, "this environment's deploys")
    except ChampionError as error:
        context.log.error(f"not deploying: {error}")
        return SkipReason(f"champion refused: {error}")
    if champion is None:
        return SkipReason("no champion yet")
    version = champion.record.version
    if deployed_version == version:
        return SkipReason(f"champion v{version} is what this environment last deployed")
    decision = release.approval(champion.version)
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
        tags={
            "model_version": str(version),
            "champion_record": str(champion.record.sequence),
            "previous_deployed": str(deployed_version),
        },
    )
