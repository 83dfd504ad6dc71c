"""The registered model: a new MLflow version per new trained model; `champion` follows."""

from dagster import AssetExecutionContext, DataVersion, MetadataValue, Output, asset

from insurance_pipeline.modeling.model import TrainedModel
from insurance_pipeline.resources import MlflowResource

CHAMPION = "champion"


@asset(group_name="training", code_version="1")
def registered_model(
    context: AssetExecutionContext,
    trained_model: TrainedModel,
    validation_metrics: dict,
    validation_report: str,
    mlflow: MlflowResource,
) -> Output[dict]:
    """Runs only when every blocking check upstream passed (Dagster skips it otherwise), so
    moving `champion` here is moving it after the gates. A cache hit of a registered model
    finds its version by model key instead of creating another."""
    version, created = mlflow.register(
        trained_model.mlflow_run_id,
        trained_model.model_key,
        tags={"model_file_sha256": trained_model.model_sha256},
    )
    previous = mlflow.alias_version(CHAMPION)
    mlflow.set_alias(CHAMPION, version.version)
    metrics = validation_metrics["metrics"]
    value = {
        "name": mlflow.model_name,
        "version": int(version.version),
        "model_key": trained_model.model_key,
        "model_sha256": trained_model.model_sha256,
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
            "r2": round(metrics.r2, 4),
            "mae": round(metrics.mae, 2),
            "report_file": MetadataValue.path(validation_report),
        },
    )
