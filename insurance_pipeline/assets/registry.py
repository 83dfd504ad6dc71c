"""The registered model: a new MLflow version per approved model; `champion` follows.

Registration decides from the verdicts recorded for the exact model it registers, never from
whichever run happened to execute the checks. For each required gate it looks up the verdict
under the settings of *this* run (the `gates` resource and the current champion); where none
exists it judges the gate now and records that verdict. Any failed or missing gate refuses
the registration with a message naming each one, and nothing in the registry changes.
"""

import json

from dagster import AssetExecutionContext, DataVersion, Failure, MaterializeResult, MetadataValue

from insurance_pipeline.assets._cached import versioned_asset
from insurance_pipeline.assets.validation import (
    CHAMPION,
    compare_with_champion,
    comparison_verdict,
    current_champion,
    holdout_verdict,
    validation_report,
)
from insurance_pipeline.data.split import Split
from insurance_pipeline.modeling.challenger import ChampionComparison
from insurance_pipeline.modeling.export import ServingExport, UnsupportedForServing, export_pipeline
from insurance_pipeline.modeling.gates import (
    CHALLENGER,
    DATA_CONTRACT,
    HOLDOUT_GATES,
    REQUIRED_GATES,
    Approval,
    Verdict,
    approval,
    contract_verdict,
    gate_settings,
    settings_id,
)
from insurance_pipeline.modeling.metrics import HoldoutEvaluation
from insurance_pipeline.modeling.model import TrainedModel
from insurance_pipeline.resources import GatesResource, InsuranceDataResource, MlflowResource
from insurance_pipeline.resources.mlflow import (
    APPROVED_TAG,
    DATA_VERSION_TAG,
    MODEL_SHA_TAG,
    SERVING_ARTIFACT_PATH,
    SERVING_SHA_TAG,
    verdict_tag,
)
from insurance_pipeline.serving.artifact import ARTIFACT_FILES, write_artifact


def export_for_serving(export: ServingExport, model: TrainedModel, folder, name: str, version: int):
    """The compiled model, its reference rows and the manifest, as the service reads them."""
    bounds = None
    if export.reference_lower is not None:
        bounds = (export.reference_lower, export.reference_upper)
    return write_artifact(
        export.model,
        export.reference_inputs,
        export.reference_charges,
        folder,
        reference_bounds=bounds,
        model_name=name,
        version=version,
        library_versions=model.library_versions,
        model_key=model.model_key,
    )


def registration_metadata(
    model_name: str,
    version,
    created: bool,
    previous,
    model: TrainedModel,
    serving_sha: str,
    evaluation: HoldoutEvaluation,
    decided: Approval,
) -> dict:
    metrics = evaluation.metrics
    return {
        "model_name": model_name,
        "version": int(version.version),
        "new_version": created,
        "alias": CHAMPION,
        "previous_champion": int(previous.version) if previous else None,
        "model_key": model.model_key,
        "serving_sha256": serving_sha,
        "r2": round(metrics.r2, 4),
        "mae": round(metrics.mae, 2),
        "verdicts": MetadataValue.json(
            {v.gate: {"passed": v.passed, "message": v.message} for v in decided.verdicts}
        ),
    }


def servable(model: TrainedModel) -> ServingExport:
    """The model compiled for the service; a model the service cannot run is refused."""
    try:
        return export_pipeline(model.pipeline, model.interval)
    except UnsupportedForServing as error:
        raise Failure(
            description=f"model {model.model_key} was not registered: it cannot be "
            f"exported for serving: {error}"
        ) from error


def publish_serving_artifact(
    export: ServingExport,
    model: TrainedModel,
    version: int,
    run_id: str,
    data: InsuranceDataResource,
    mlflow: MlflowResource,
) -> str:
    """Write the version's serving artifact, log it to the model's run and pin its sha256 on
    the version; returns the sha256."""
    folder = data.artifacts("serving", f"v{version}")
    manifest = export_for_serving(export, model, folder, mlflow.model_name, version)
    for name in ARTIFACT_FILES:
        mlflow.log_artifact(run_id, folder / name, artifact_path=SERVING_ARTIFACT_PATH)
    mlflow.set_version_tag(version, SERVING_SHA_TAG, manifest.sha256)
    return manifest.sha256


def ensure_verdicts(
    context: AssetExecutionContext,
    model: TrainedModel,
    split: Split,
    evaluation: HoldoutEvaluation,
    comparison: ChampionComparison,
    gates: GatesResource,
    mlflow: MlflowResource,
) -> tuple[Approval, dict[str, dict]]:
    """Every required gate's verdict for `model` under this run's settings: the recorded one,
    or, where none exists under these settings, one judged now (and recorded)."""
    settings = gates.settings()
    champion = current_champion(mlflow, model.model_key)
    required = {
        gate: gate_settings(gate, settings, champion if gate == CHALLENGER else None)
        for gate in REQUIRED_GATES
    }
    recorded = mlflow.verdicts(model.model_key)
    found: dict[str, Verdict | None] = {}
    for gate, wanted in required.items():
        verdict = recorded.get(verdict_tag(gate, settings_id(wanted)))
        if verdict is None:
            verdict = _judge_now(
                gate, model, split, evaluation, comparison, champion, gates, mlflow
            )
            mlflow.record_verdict(verdict)
            context.log.info(f"judged {gate} now (no verdict under {wanted}): {verdict.message}")
        found[gate] = verdict
    decided = approval(
        found, model_key=model.model_key, data_version=model.data_version, required=required
    )
    return decided, required


def _judge_now(gate, model, split, evaluation, comparison, champion, gates, mlflow) -> Verdict:
    if gate in HOLDOUT_GATES:
        return holdout_verdict(gate, evaluation, gates)
    if gate == DATA_CONTRACT:
        return contract_verdict(
            model.model_key, model.data_version, len(split.train) + len(split.test)
        )
    measured_against = (comparison.champion_version, comparison.champion_model_key)
    wanted = (champion.version, champion.model_key) if champion else (None, None)
    if measured_against != wanted:  # the champion moved since the comparison: measure again
        comparison = compare_with_champion(model, split, mlflow, champion)
    return comparison_verdict(comparison, gates)


@versioned_asset(deps=[validation_report])
def registered_model(
    context: AssetExecutionContext,
    train_test_split: Split,
    trained_model: TrainedModel,
    validation_metrics: HoldoutEvaluation,
    champion_comparison: ChampionComparison,
    gates: GatesResource,
    data: InsuranceDataResource,
    mlflow: MlflowResource,
) -> MaterializeResult:
    """Registers the model and moves `champion` to it only when every gate passed for this
    model (see the module docstring). A model registered before is found by its key instead
    of being registered again. Each version carries its serving artifact (the compiled model,
    its reference rows and a manifest), pinned by sha256 on the version."""
    run_id = mlflow.run_for(trained_model.model_key)
    export = servable(trained_model)  # before anything changes
    # One registration at a time: the champion judged against is the one replaced.
    with mlflow.registry_lock():
        decided, required = ensure_verdicts(
            context,
            trained_model,
            train_test_split,
            validation_metrics,
            champion_comparison,
            gates,
            mlflow,
        )
        if not decided.approved:
            raise Failure(
                description=f"model {trained_model.model_key} was not registered: "
                + decided.summary(),
                metadata={"refused_by": MetadataValue.json(list(decided.problems))},
            )
        version, created = mlflow.register(
            run_id,
            trained_model.model_key,
            tags={
                MODEL_SHA_TAG: mlflow.client().get_run(run_id).data.tags[MODEL_SHA_TAG],
                DATA_VERSION_TAG: trained_model.data_version,
            },
        )
        serving_sha = version.tags.get(SERVING_SHA_TAG) or publish_serving_artifact(
            export, trained_model, int(version.version), run_id, data, mlflow
        )
        mlflow.set_version_tag(version.version, APPROVED_TAG, json.dumps(required, sort_keys=True))
        previous = mlflow.alias_version(CHAMPION)
        mlflow.set_alias(CHAMPION, version.version)
    return MaterializeResult(
        metadata=registration_metadata(
            mlflow.model_name,
            version,
            created,
            previous,
            trained_model,
            serving_sha,
            validation_metrics,
            decided,
        ),
        data_version=DataVersion(f"{trained_model.model_key}:v{version.version}"),
    )
