"""Stage `registry`: a new MLflow version per approved model; `champion` follows.

Registration decides with one pure function (`core.gates.decision.decide`) over the verdicts
recorded for the exact model it registers and the evidence at hand: for each gate, the verdict
under *this* run's policy and the current champion, or one judged now where none exists. Any
failed or missing gate refuses the registration with a message naming each one, and nothing
in the registry changes.
"""

import json
from pathlib import Path

from dagster import AssetExecutionContext, DataVersion, Failure, MaterializeResult, MetadataValue

from insurance_pipeline.core.data.split import Split
from insurance_pipeline.core.export import ServingExport, UnsupportedForServing, export_pipeline
from insurance_pipeline.core.gates.decision import Decision, decide
from insurance_pipeline.core.gates.policy import ChampionRef
from insurance_pipeline.core.gates.registry import DataEvidence
from insurance_pipeline.core.gates.verdicts import VerdictLedger
from insurance_pipeline.core.modeling.challenger import ChampionComparison
from insurance_pipeline.core.modeling.metrics import HoldoutEvaluation
from insurance_pipeline.core.modeling.model import TrainedModel
from insurance_pipeline.defs._steps import versioned_asset
from insurance_pipeline.defs.validation.assets import compare_with_champion, current_champion
from insurance_pipeline.resources import GatesResource, InsuranceDataResource, MlflowResource
from insurance_pipeline.resources.locks import exclusive
from insurance_pipeline.resources.mlflow import (
    APPROVED_TAG,
    CHAMPION_ALIAS,
    DATA_SHA_TAG,
    PICKLE_SHA_TAG,
    SERVING_ARTIFACT_PATH,
    SERVING_SHA_TAG,
)
from insurance_pipeline.serving.artifact import ARTIFACT_FILES, write_artifact


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
    manifest = write_artifact(
        export.model,
        export.references,
        folder,
        model_name=mlflow.model_name,
        version=version,
        library_versions=model.library_versions,
        model_key=model.model_key,
    )
    for name in ARTIFACT_FILES:
        mlflow.log_artifact(run_id, folder / name, artifact_path=SERVING_ARTIFACT_PATH)
    mlflow.set_version_tag(version, SERVING_SHA_TAG, manifest.sha256)
    return manifest.sha256


def evidence_at_hand(
    model: TrainedModel,
    split: Split,
    evaluation: HoldoutEvaluation,
    comparison: ChampionComparison,
    champion: ChampionRef | None,
    mlflow: MlflowResource,
) -> dict:
    """What registration may judge a missing verdict from, each computed only if needed: the
    comparison is measured again if the champion moved since it was made."""

    def current_comparison() -> ChampionComparison:
        wanted = (champion.version, champion.model_key) if champion else (None, None)
        if (comparison.champion_version, comparison.champion_model_key) == wanted:
            return comparison
        return compare_with_champion(model, split, mlflow, champion)

    rows = len(split.train) + len(split.test)
    return {
        DataEvidence: lambda: DataEvidence(model.model_key, model.data_version, rows),
        HoldoutEvaluation: lambda: evaluation,
        ChampionComparison: current_comparison,
    }


def registry_lock_path(mlflow: MlflowResource, data: InsuranceDataResource) -> Path:
    """One registration at a time per registry: a lock beside a local store, else in the
    artifacts folder (a remote registry relies on one training run at a time)."""
    uri = mlflow.active_registry_uri
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).with_suffix(".registry.lock")
    return data.artifacts() / "registry.lock"


def register(
    context, model: TrainedModel, decision: Decision, export: ServingExport, data, mlflow
) -> tuple:
    """Record the verdicts judged now; refuse, or register, publish, approve and move
    `champion`. Returns (version, created, previous champion, serving sha256)."""
    ledger = VerdictLedger(mlflow)
    for verdict in decision.judged_now:
        ledger.record(verdict)
        context.log.info(f"judged {verdict.gate} now: {verdict.message}")
    if not decision.approved:
        raise Failure(
            description=f"model {model.model_key} was not registered: "
            + decision.approval.summary(),
            metadata={"refused_by": MetadataValue.json(list(decision.approval.problems))},
        )
    run_id = mlflow.run_for(model.model_key)
    pickle_sha = mlflow.client().get_run(run_id).data.tags[PICKLE_SHA_TAG]
    version, created = mlflow.register(
        run_id,
        model.model_key,
        tags={PICKLE_SHA_TAG: pickle_sha, DATA_SHA_TAG: model.data_version},
    )
    serving_sha = version.tags.get(SERVING_SHA_TAG) or publish_serving_artifact(
        export, model, int(version.version), run_id, data, mlflow
    )
    mlflow.set_version_tag(
        version.version, APPROVED_TAG, json.dumps(decision.required, sort_keys=True)
    )
    previous = mlflow.alias_version(CHAMPION_ALIAS)
    mlflow.set_alias(CHAMPION_ALIAS, version.version)
    return version, created, previous, serving_sha


@versioned_asset(deps=["validation_report"])
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
    export = servable(trained_model)  # before anything changes
    # One registration at a time: the champion judged against is the one replaced.
    with exclusive(registry_lock_path(mlflow, data)):
        champion = current_champion(mlflow, trained_model.model_key)
        decision = decide(
            model_key=trained_model.model_key,
            data_version=trained_model.data_version,
            policy=gates.policy(),
            champion=champion,
            recorded=VerdictLedger(mlflow).recorded(trained_model.model_key),
            evidence=evidence_at_hand(
                trained_model,
                train_test_split,
                validation_metrics,
                champion_comparison,
                champion,
                mlflow,
            ),
        )
        version, created, previous, serving_sha = register(
            context, trained_model, decision, export, data, mlflow
        )
    metrics = validation_metrics.metrics
    return MaterializeResult(
        metadata={
            "model_name": mlflow.model_name,
            "version": int(version.version),
            "new_version": created,
            "alias": CHAMPION_ALIAS,
            "previous_champion": int(previous.version) if previous else None,
            "model_key": trained_model.model_key,
            "serving_sha256": serving_sha,
            "r2": round(metrics.r2, 4),
            "mae": round(metrics.mae, 2),
            "verdicts": MetadataValue.json(
                {
                    v.gate: {"passed": v.passed, "message": v.message}
                    for v in decision.approval.verdicts
                }
            ),
        },
        data_version=DataVersion(f"{trained_model.model_key}:v{version.version}"),
    )
