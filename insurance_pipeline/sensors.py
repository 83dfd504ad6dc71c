"""The deploy sensor: one deploy run per validated model version, never twice."""

import json

from dagster import (
    AssetCheckKey,
    AssetKey,
    DagsterEventType,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

REGISTERED = AssetKey("registered_model")
GATES = [
    AssetCheckKey(AssetKey("raw_insurance_data"), "raw_insurance_data_contract"),
    AssetCheckKey(AssetKey("validation_metrics"), "r2_above_floor"),
    AssetCheckKey(AssetKey("validation_metrics"), "predictions_finite"),
    AssetCheckKey(AssetKey("validation_metrics"), "test_rows_as_expected"),
    AssetCheckKey(AssetKey("champion_comparison"), "challenger_not_worse"),
]


def failed_gates(instance, run_id: str) -> list[str]:
    """Blocking checks that did not pass for the model registered by `run_id`: the
    evaluations of that run, or for a gate that run did not evaluate, its latest one."""
    in_run = {}
    for record in instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
    ).records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        in_run[AssetCheckKey(evaluation.asset_key, evaluation.check_name)] = evaluation.passed
    missing = [key for key in GATES if key not in in_run]
    if missing:
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(missing)
        for key in missing:
            record = latest.get(key)
            event = record.event if record else None
            evaluation = event.dagster_event.event_specific_data if event else None
            in_run[key] = bool(evaluation and evaluation.passed)
    return [key.name for key in GATES if not in_run[key]]


def build_deploy_sensor(deploy_job):
    @sensor(
        job=deploy_job,
        name="deploy_validated_model",
        minimum_interval_seconds=30,
        description="When a validated model version is registered, build and roll it out once.",
    )
    def deploy_validated_model(context: SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {"versions": []}
        event = context.instance.get_latest_materialization_event(REGISTERED)
        if event is None or event.asset_materialization is None:
            return SkipReason("no registered model yet")
        version = int(event.asset_materialization.metadata["version"].value)
        if version in cursor["versions"]:
            return SkipReason(f"version {version} was already sent to deploy")
        failed = failed_gates(context.instance, event.run_id)
        if failed:
            return SkipReason(f"version {version}: blocking checks not passed: {failed}")
        cursor["versions"].append(version)
        context.update_cursor(json.dumps(cursor))
        return RunRequest(
            run_key=f"deploy-insurance_charges_model-v{version}",
            run_config={"ops": {"deployment": {"config": {"model_version": version}}}},
            tags={"model_version": str(version)},
        )

    return deploy_validated_model
