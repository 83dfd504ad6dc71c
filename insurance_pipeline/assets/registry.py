"""The registered model: a new MLflow version per new trained model; `champion` follows."""

from dagster import AssetExecutionContext, DataVersion, MetadataValue, Output, asset

from insurance_pipeline.assets._cached import source_version
from insurance_pipeline.modeling.model import TrainedModel
from insurance_pipeline.resources import InsuranceDataResource, MlflowResource
from insurance_pipeline.resources.mlflow import SERVING_ARTIFACT_PATH, SERVING_SHA_TAG

CHAMPION = "champion"


def export_for_serving(trained_model: TrainedModel, folder, model_name: str, version: int):
    """Plain scikit-learn/xgboost/lightgbm pipeline + manifest, as the service reads them."""
    from insurance_pipeline.serving.artifact import write_artifact
    from insurance_pipeline.serving.plain import to_serving_pipeline

    pipeline = to_serving_pipeline(trained_model.pipeline)
    dfs = pipeline.named_steps["features"].named_transformers_["dfs"].named_steps["dfs"]
    return write_artifact(
        pipeline,
        folder,
        model_name=model_name,
        version=version,
        feature_spec=[[p, list(i)] for p, i in dfs.feature_spec],
        library_versions=trained_model.library_versions,
        model_key=trained_model.model_key,
    )


@asset(
    group_name="training",
    code_version=source_version(
        "insurance_pipeline.serving.plain", "insurance_pipeline.serving.artifact"
    ),
)
def registered_model(
    context: AssetExecutionContext,
    trained_model: TrainedModel,
    validation_metrics: dict,
    validation_report: str,
    champion_comparison: dict,
    data: InsuranceDataResource,
    mlflow: MlflowResource,
) -> Output[dict]:
    """Runs only when every blocking check upstream passed (Dagster skips it otherwise), so
    moving `champion` here is moving it after the gates. A cache hit of a registered model
    finds its version by model key instead of creating another. Each version carries its
    serving artifact (plain objects + manifest), pinned by sha256 on the version."""
    version, created = mlflow.register(
        trained_model.mlflow_run_id,
        trained_model.model_key,
        tags={"model_file_sha256": trained_model.model_sha256},
    )
    serving_sha = version.tags.get(SERVING_SHA_TAG) if not created else None
    if not serving_sha:
        folder = data.artifacts("serving", f"v{version.version}")
        manifest = export_for_serving(
            trained_model, folder, mlflow.model_name, int(version.version)
        )
        for name in ("model.joblib", "manifest.json"):
            mlflow.log_artifact(
                trained_model.mlflow_run_id, folder / name, artifact_path=SERVING_ARTIFACT_PATH
            )
        serving_sha = manifest.sha256
        mlflow.set_version_tag(version.version, SERVING_SHA_TAG, serving_sha)
    previous = mlflow.alias_version(CHAMPION)
    mlflow.set_alias(CHAMPION, version.version)
    metrics = validation_metrics["metrics"]
    value = {
        "name": mlflow.model_name,
        "version": int(version.version),
        "model_key": trained_model.model_key,
        "model_sha256": trained_model.model_sha256,
        "serving_sha256": serving_sha,
        "run_id": trained_model.mlflow_run_id,
        "report": validation_report,
    }
    return Output(
        value,
        data_version=DataVersion(f"{trained_model.model_key}:v{version.version}"),
        metadata={
            "model_name": mlflow.model_name,
            "version": int(version.version),
            "new_version": created,
            "alias": CHAMPION,
            "previous_champion": int(previous.version) if previous else None,
            "serving_sha256": serving_sha,
            "r2": round(metrics.r2, 4),
            "mae": round(metrics.mae, 2),
            "challenger_verdict": champion_comparison["gate"].message,
            "report_file": MetadataValue.path(validation_report),
        },
    )
