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

import json

from dagster import AssetExecutionContext, DataVersion, Failure, MaterializeResult, MetadataValue

from insurance_pipeline.core.data.split import Split
from insurance_pipeline.core.export import ServingExport, UnsupportedForServing, export_pipeline
from insurance_pipeline.core.gates.decision import approval_statement, decide
from insurance_pipeline.core.gates.policy import ChampionRef
from insurance_pipeline.core.gates.registry import DataEvidence
from insurance_pipeline.core.gates.verdicts import VerdictLedger
from insurance_pipeline.core.modeling.challenger import ChampionComparison
from insurance_pipeline.core.modeling.metrics import HoldoutEvaluation
from insurance_pipeline.core.modeling.model import TrainedModel
from insurance_pipeline.core.trust.files import sha256_of, sign_folder, signed_sha256
from insurance_pipeline.core.trust.keys import TrustError
from insurance_pipeline.defs._steps import versioned_asset
from insurance_pipeline.defs.deploy.approval import (
    PICKLE_PATH,
    SERVED_PATHS,
    served_digest,
    verified_approval,
)
from insurance_pipeline.defs.jobs import REGISTRY_POOL
from insurance_pipeline.defs.validation.assets import compare_with_champion, current_champion
from insurance_pipeline.resources import (
    GatesResource,
    InsuranceDataResource,
    MlflowResource,
    TrustResource,
)
from insurance_pipeline.resources.mlflow import (
    APPROVAL_TAG,
    APPROVED_PARAMETERS,
    CHAMPION_ALIAS,
    DATA_SHA_TAG,
    PICKLE_TAG,
    SERVING_ARTIFACT_PATH,
    SERVING_SHA_TAG,
    pickle_subject,
)
from insurance_pipeline.serving.artifact import (
    ARTIFACT_FILES,
    MANIFEST_FILE,
    SIGNATURE_FILE,
    write_artifact,
)


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
    trust: TrustResource,
) -> dict[str, str]:
    """Write the version's serving artifact, sign the folder (OpenSSF model signing) and log
    it to the model's run; returns the sha256 of each file the service reads, by run path."""
    folder = data.workdir("serving", f"v{version}")
    write_artifact(
        export.model,
        export.references,
        folder,
        model_name=mlflow.model_name,
        version=version,
        library_versions=model.library_versions,
        model_key=model.model_key,
    )
    sign_folder(folder, trust.signer())
    for name in (*ARTIFACT_FILES, SIGNATURE_FILE):
        mlflow.log_artifact(run_id, folder / name, artifact_path=SERVING_ARTIFACT_PATH)
    return {path: sha256_of(folder / name) for name, path in SERVED_PATHS.items()}


def evidence_at_hand(
    model: TrainedModel,
    split: Split,
    evaluation: HoldoutEvaluation,
    comparison: ChampionComparison,
    champion: ChampionRef | None,
    mlflow: MlflowResource,
    trust: TrustResource,
) -> dict:
    """What registration may judge a missing verdict from, each computed only if needed: the
    comparison is measured again if the champion moved since it was made."""

    def current_comparison() -> ChampionComparison:
        wanted = (champion.version, champion.model_key) if champion else (None, None)
        if (comparison.champion_version, comparison.champion_model_key) == wanted:
            return comparison
        return compare_with_champion(model, split, mlflow, trust, champion)

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


def signed_pickle(mlflow: MlflowResource, trust: TrustResource, model_key: str, run_id: str):
    """The sha256 of the model's pickle, as the statement signed when it was logged says."""
    statement = mlflow.run_tag(run_id, PICKLE_TAG)
    try:
        return signed_sha256(statement, pickle_subject(model_key, run_id), trust.verifier())
    except TrustError as error:
        raise Failure(
            description=f"model {model_key} was not registered: its logged pickle has no "
            f"trusted statement of its sha256 ({error})"
        ) from None


def publish(context, model, decision, export, version, run_id, data, mlflow, trust, policy):
    """The version's approval: kept when a trusted one for these parameters is there, else
    the serving folder published again and a new approval signed. Returns the pin."""
    found = verified_approval(mlflow, version, trust)
    if found.approved and found.parameters == decision.required:
        return served_digest(found)
    files = {PICKLE_PATH: signed_pickle(mlflow, trust, model.model_key, run_id)}
    files |= publish_serving_artifact(
        export, model, int(version.version), run_id, data, mlflow, trust
    )
    statement = approval_statement(
        decision,
        model_name=mlflow.model_name,
        version=int(version.version),
        run_id=run_id,
        model_key=model.model_key,
        data_version=model.data_version,
        policy=policy,
        files=files,
        signer=trust.signer(),
    )
    mlflow.set_version_tag(version.version, APPROVAL_TAG, statement)
    mlflow.set_version_tag(
        version.version, APPROVED_PARAMETERS, json.dumps(decision.required, sort_keys=True)
    )
    digest = files[SERVED_PATHS[MANIFEST_FILE]]
    mlflow.set_version_tag(version.version, SERVING_SHA_TAG, digest)
    context.log.info(f"signed the approval of version {version.version}")
    return digest


def register(context, model, decision, export, data, mlflow, trust, policy) -> tuple:
    """Record the verdicts judged now; refuse, or register, publish, approve and move
    `champion`. Returns (version, created, previous champion, the served pin)."""
    ledger = VerdictLedger(mlflow, trust.signer(), trust.verifier())
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
    signed_pickle(mlflow, trust, model.model_key, run_id)  # before the registry changes
    version, created = mlflow.register(
        run_id, model.model_key, tags={DATA_SHA_TAG: model.data_version}
    )
    digest = publish(context, model, decision, export, version, run_id, data, mlflow, trust, policy)
    previous = mlflow.alias_version(CHAMPION_ALIAS)
    mlflow.set_alias(CHAMPION_ALIAS, version.version)
    return version, created, previous, digest


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
    champion = current_champion(mlflow, trained_model.model_key)
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
            mlflow,
            trust,
        ),
    )
    version, created, previous, serving_sha = register(
        context, trained_model, decision, export, data, mlflow, trust, gates.policy()
    )
    metrics = validation_metrics.metrics
    verdicts = {
        v.gate: {"passed": v.passed, "message": v.message} for v in decision.approval.verdicts
    }
    return MaterializeResult(
        metadata={
            "model_name": mlflow.model_name,
            "version": int(version.version),
            "new_version": created,
            "alias": CHAMPION_ALIAS,
            "previous_champion": int(previous.version) if previous else None,
            "model_key": trained_model.model_key,
            "serving_sha256": serving_sha,  # the manifest's: MODEL_SHA256 for the service
            "r2": round(metrics.r2, 4),
            "mae": round(metrics.mae, 2),
            "verdicts": MetadataValue.json(verdicts),
        },
        data_version=DataVersion(f"{trained_model.model_key}:v{version.version}"),
    )
