"""Stage `registry`: a new MLflow version per approved model; `champion` follows.

Registration decides with one pure function (`core.gates.decision.decide`) over the verdicts
recorded for the exact model it registers (only those a trusted key signed) and the evidence
at hand: for each gate, the verdict under *this* run's policy and the current champion, or one
judged now where none exists. Any failed or missing gate refuses the registration with a
message naming each one, and nothing in the registry changes. An approved version gets a
signed approval binding its name, number, run, model key, data, policy, verdicts and the
sha256 of every file that will be served or unpickled, and its serving folder is signed with
OpenSSF model signing.
"""

from dagster import AssetExecutionContext, DataVersion, Failure, MaterializeResult, MetadataValue

from insurance_pipeline.core.data.split import Split
from insurance_pipeline.core.export import ServingExport, UnsupportedForServing, export_pipeline
from insurance_pipeline.core.gates.decision import decide
from insurance_pipeline.core.gates.policy import ChampionRef
from insurance_pipeline.core.gates.registry import DataEvidence
from insurance_pipeline.core.gates.verdicts import VerdictLedger
from insurance_pipeline.core.modeling.challenger import CROSS_VALIDATED_MAX_ROWS, ChampionComparison
from insurance_pipeline.core.modeling.metrics import HoldoutEvaluation
from insurance_pipeline.core.modeling.model import TrainedModel
from insurance_pipeline.core.trust.keys import TrustError
from insurance_pipeline.defs._steps import versioned_asset
from insurance_pipeline.defs.jobs import REGISTRY_POOL
from insurance_pipeline.release import Candidate, Registered, Release
from insurance_pipeline.resources import (
    GatesResource,
    InsuranceDataResource,
    MlflowResource,
    TrustResource,
)
from insurance_pipeline.resources.mlflow import CHAMPION_ALIAS, MODEL_NAME


def servable(model: TrainedModel) -> ServingExport:
    """The model compiled for the service; a model the service cannot run is refused."""
    try:
        return export_pipeline(model.pipeline, model.interval)
    except UnsupportedForServing as error:
        raise Failure(
            description=f"model {model.model_key} was not registered: it cannot be "
            f"exported for serving: {error}"
        ) from error


def evidence_at_hand(
    model: TrainedModel,
    split: Split,
    evaluation: HoldoutEvaluation,
    comparison: ChampionComparison,
    champion: ChampionRef | None,
    release: Release,
) -> dict:
    """What registration may judge a missing verdict from, each computed only if needed: the
    comparison is measured again if the champion moved since it was made."""

    def current_comparison() -> ChampionComparison:
        wanted = (champion.version, champion.model_key) if champion else (None, None)
        if (comparison.champion_version, comparison.champion_model_key) == wanted:
            return comparison
        return release.compare_with_champion(model, split, champion, CROSS_VALIDATED_MAX_ROWS)

    rows = len(split.train) + len(split.test)
    return {
        DataEvidence: lambda: DataEvidence(model.model_key, model.data_version, rows),
        HoldoutEvaluation: lambda: evaluation,
        ChampionComparison: current_comparison,
    }


def believed_verdicts(context, mlflow: MlflowResource, trust: TrustResource, model_key: str):
    """The verdicts a trusted key signed for this model; the others are named, and count as
    missing (judged again where the evidence is at hand, never believed)."""
    ledger = VerdictLedger(mlflow, trust.signer(), trust.verifier())
    recorded = ledger.recorded(model_key)
    for refused in ledger.refused:
        context.log.warning(f"verdict not believed (judged again if it can be): {refused}")
    return recorded


def register(context, release: Release, candidate: Candidate) -> Registered:
    """Record the verdicts judged now; refuse, or register, approve and make champion."""
    decision, model = candidate.decision, candidate.model
    ledger = VerdictLedger(release.mlflow, release.trust.signer(), release.trust.verifier())
    for verdict in decision.judged_now:
        ledger.record(verdict)
        context.log.info(f"judged {verdict.gate} now: {verdict.message}")
    if not decision.approved:
        release.mlflow.mark_release(model.model_key, None)
        raise Failure(
            description=f"model {model.model_key} was not registered: "
            + decision.approval.summary(),
            metadata={"refused_by": MetadataValue.json(list(decision.approval.problems))},
        )
    try:
        registered = release.register(candidate)
    except TrustError as error:
        raise Failure(description=str(error)) from None
    record = registered.record
    context.log.info(f"champion record {record.sequence}: v{record.version} ({record.reason})")
    return registered


# One registration at a time, on any machine and whatever launched the run (the UI's
# "Materialize" included): the champion judged against is the one replaced.
@versioned_asset(deps=["validation_report"], pool=REGISTRY_POOL)
def registered_model(
    context: AssetExecutionContext,
    train_test_split: Split,
    trained_model: TrainedModel,
    validation_metrics: HoldoutEvaluation,
    champion_comparison: ChampionComparison,
    gates: GatesResource,
    data: InsuranceDataResource,
    mlflow: MlflowResource,
    trust: TrustResource,
) -> MaterializeResult:
    """Registers the model and moves `champion` to it only when every gate passed for this
    model (see the module docstring); a model registered before is found by its key. Each
    version carries its signed approval and its signed serving artifact."""
    export = servable(trained_model)  # before anything changes
    release = Release.of(mlflow, trust)
    try:
        champion = release.champion_to_beat(trained_model.model_key)
    except TrustError as error:
        raise Failure(
            description=f"model {trained_model.model_key} was not registered: {error}"
        ) from None
    recorded = believed_verdicts(context, mlflow, trust, trained_model.model_key)
    decision = decide(
        model_key=trained_model.model_key,
        data_version=trained_model.data_version,
        policy=gates.policy(),
        champion=champion,
        recorded=recorded,
        evidence=evidence_at_hand(
            trained_model,
            train_test_split,
            validation_metrics,
            champion_comparison,
            champion,
            release,
        ),
    )
    registered = register(
        context,
        release,
        Candidate(trained_model, decision, export, gates.policy(), data.workdir("serving")),
    )
    return MaterializeResult(
        metadata=registration_metadata(registered, trained_model, validation_metrics, decision),
        data_version=DataVersion(f"{trained_model.model_key}:v{registered.version}"),
    )


def registration_metadata(
    registered: Registered, model: TrainedModel, evaluation: HoldoutEvaluation, decision
) -> dict:
    metrics = evaluation.metrics
    verdicts = {
        v.gate: {"passed": v.passed, "message": v.message} for v in decision.approval.verdicts
    }
    return {
        "model_name": MODEL_NAME,
        "version": registered.version,
        "new_version": registered.created,
        "alias": CHAMPION_ALIAS,
        "champion_record": registered.record.sequence,
        "previous_champion": registered.previous_champion,
        "model_key": model.model_key,
        "serving_sha256": registered.served_sha256,  # MODEL_SHA256 for the service
        "r2": round(metrics.r2, 4),
        "mae": round(metrics.mae, 2),
        "verdicts": MetadataValue.json(verdicts),
    }
