"""Holdout metrics with blocking gates, and the validation report."""

import base64

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    Config,
    MetadataValue,
    Output,
    asset_check,
)
from pydantic import Field

from insurance_pipeline.assets._cached import (
    cache_metadata,
    data_version,
    run_cached,
    versioned_asset,
)
from insurance_pipeline.data.contract import FEATURE_COLUMNS, TARGET_COLUMN
from insurance_pipeline.data.split import Split, expected_test_rows
from insurance_pipeline.modeling.metrics import (
    RegressionMetrics,
    finite_predictions_gate,
    r2_gate,
    regression_metrics,
    row_count_gate,
)
from insurance_pipeline.modeling.model import TrainedModel
from insurance_pipeline.resources import (
    InsuranceDataResource,
    MlflowResource,
    StepCacheResource,
)


class ValidationConfig(Config):
    r2_floor: float = Field(default=0.80, description="Blocking gate: holdout r2 must reach this")


@versioned_asset("insurance_pipeline.modeling.metrics", group_name="training")
def validation_metrics(
    context: AssetExecutionContext,
    config: ValidationConfig,
    train_test_split: Split,
    trained_model: TrainedModel,
    mlflow: MlflowResource,
    step_cache: StepCacheResource,
) -> Output[dict]:
    """r2, MSE, RMSE, MAE on the held-out rows; gated by blocking checks."""
    test = train_test_split.test

    def score() -> dict:
        from insurance_pipeline.modeling.segments import segment_metrics

        predictions = trained_model.pipeline.predict(test[list(FEATURE_COLUMNS)])
        n_rows = len(train_test_split.train) + len(test)
        return {
            "metrics": regression_metrics(test[TARGET_COLUMN], predictions),
            "segments": segment_metrics(test, test[TARGET_COLUMN], predictions),
            "r2_floor": config.r2_floor,
            "expected_test_rows": expected_test_rows(n_rows, train_test_split.test_fraction),
        }

    result = run_cached(
        context,
        step_cache.store(),
        score,
        config=config.model_dump(),
        libraries=["scikit-learn"],
    )
    metrics: RegressionMetrics = result.value["metrics"]
    scores = {k: getattr(metrics, k) for k in ("r2", "mse", "rmse", "mae")}
    # Idempotent (latest value wins), so a cache hit re-logging is harmless.
    mlflow.log_metrics(trained_model.mlflow_run_id, {f"holdout_{k}": v for k, v in scores.items()})
    return Output(
        result.value,
        data_version=data_version(result),
        metadata={
            **{k: round(v, 4) for k, v in scores.items()},
            "test_rows": metrics.n_rows,
            "nonfinite_predictions": metrics.n_nonfinite_predictions,
            "r2_floor": config.r2_floor,
            "mlflow_run_id": trained_model.mlflow_run_id,
            "segments": MetadataValue.md(_segments_markdown(result.value["segments"])),
            **cache_metadata(result),
        },
    )


def _segments_markdown(segments: list[dict]) -> str:
    lines = ["| segment | rows | r² [95% CI] | MAE [95% CI] |", "| --- | --- | --- | --- |"]
    for s in segments:
        r2, mae = s["r2"], s["mae"]
        lines.append(
            f"| {s['segment']}={s['value']} | {s['n']} | {r2['value']:.3f} "
            f"[{r2['ci_low']:.3f}, {r2['ci_high']:.3f}] | {mae['value']:,.0f} "
            f"[{mae['ci_low']:,.0f}, {mae['ci_high']:,.0f}] |"
        )
    return "\n".join(lines)


def _check(gate) -> AssetCheckResult:
    return AssetCheckResult(passed=gate.passed, description=gate.message)


@asset_check(
    asset=validation_metrics,
    blocking=True,
    description="Holdout r2 >= the configured floor",
)
def r2_above_floor(validation_metrics: dict) -> AssetCheckResult:
    return _check(r2_gate(validation_metrics["metrics"], validation_metrics["r2_floor"]))


@asset_check(
    asset=validation_metrics,
    blocking=True,
    description="No NaN or infinite predictions",
)
def predictions_finite(validation_metrics: dict) -> AssetCheckResult:
    return _check(finite_predictions_gate(validation_metrics["metrics"]))


@asset_check(
    asset=validation_metrics,
    blocking=True,
    description="Scored exactly the held-out rows",
)
def test_rows_as_expected(validation_metrics: dict) -> AssetCheckResult:
    metrics: RegressionMetrics = validation_metrics["metrics"]
    return _check(row_count_gate(metrics.n_rows, validation_metrics["expected_test_rows"]))


@versioned_asset("insurance_pipeline.modeling.report", group_name="training")
def validation_report(
    context: AssetExecutionContext,
    train_test_split: Split,
    trained_model: TrainedModel,
    validation_metrics: dict,
    data: InsuranceDataResource,
    mlflow: MlflowResource,
    step_cache: StepCacheResource,
):
    """One self-contained HTML file: residuals and prediction-error plots, metrics, pipeline."""
    from insurance_pipeline.modeling.report import render_validation_report
    from insurance_pipeline.modeling.segments import segment_table_html

    train, test = train_test_split.train, train_test_split.test
    metrics: RegressionMetrics = validation_metrics["metrics"]

    def render():
        return render_validation_report(
            trained_model.pipeline,
            train[list(FEATURE_COLUMNS)],
            train[TARGET_COLUMN],
            test[list(FEATURE_COLUMNS)],
            test[TARGET_COLUMN],
            metrics=metrics.as_dict(),
            pipeline_description=trained_model.description,
            extra_sections={
                "Metrics per segment": segment_table_html(validation_metrics["segments"])
            },
        )

    result = run_cached(
        context,
        step_cache.store(),
        render,
        libraries=["yellowbrick", "matplotlib", "scikit-learn"],
    )
    path = data.artifacts("reports") / f"validation-{result.key}.html"
    if not path.exists():
        path.write_text(result.value.html, encoding="utf-8")
    mlflow.log_artifact(trained_model.mlflow_run_id, path, artifact_path="validation_report")
    preview = "\n\n".join(
        f"**{name.replace('_', ' ')}**\n\n"
        f"![{name}](data:image/png;base64,{base64.b64encode(png).decode()})"
        for name, png in result.value.plots_png.items()
    )
    return Output(
        str(path),
        data_version=data_version(result),
        metadata={
            "file": MetadataValue.path(str(path)),
            "plots": MetadataValue.md(preview),
            "r2": round(metrics.r2, 4),
            "mae": round(metrics.mae, 2),
            **cache_metadata(result),
        },
    )


class ChallengerConfig(Config):
    r2_tolerance: float = Field(default=0.005, ge=0, description="allowed r2 drop vs champion")
    mae_tolerance: float = Field(default=0.02, ge=0, description="allowed relative MAE rise")


@versioned_asset("insurance_pipeline.modeling.challenger", group_name="training")
def champion_comparison(
    context: AssetExecutionContext,
    config: ChallengerConfig,
    train_test_split: Split,
    trained_model: TrainedModel,
    mlflow: MlflowResource,
    step_cache: StepCacheResource,
):
    """The new model (challenger) and the current `champion`, scored on the same held-out rows
    that the champion never trained on either."""
    from insurance_pipeline.modeling.challenger import Tolerance, challenger_gate, eligible_rows

    champion = mlflow.alias_version("champion")
    if champion is not None and champion.tags.get("model_key") == trained_model.model_key:
        champion = None  # this model already is the champion: nothing else to compare with
    tolerance = Tolerance(r2_drop=config.r2_tolerance, mae_rise=config.mae_tolerance)

    def compare() -> dict:
        if champion is None:
            gate = challenger_gate(None, None, tolerance, None)
            return {"champion_version": None, "gate": gate, "challenger": None, "champion": None}
        champion_model, champion_rows = mlflow.load_version_model(champion)
        test = train_test_split.test
        rows = eligible_rows([int(i) for i in test.index], champion_rows)
        scored = test.loc[rows]
        mine = (
            regression_metrics(
                scored[TARGET_COLUMN], trained_model.pipeline.predict(scored[list(FEATURE_COLUMNS)])
            )
            if len(rows) > 1
            else None
        )
        theirs = (
            regression_metrics(
                scored[TARGET_COLUMN], champion_model.predict(scored[list(FEATURE_COLUMNS)])
            )
            if len(rows) > 1
            else None
        )
        gate = challenger_gate(mine, theirs, tolerance, int(champion.version))
        return {
            "champion_version": int(champion.version),
            "gate": gate,
            "challenger": mine,
            "champion": theirs,
            "rows": len(rows),
        }

    result = run_cached(
        context,
        step_cache.store(),
        compare,
        # The champion is outside state: which one we compare with is part of the key.
        config={**config.model_dump(), "champion_version": champion and champion.version},
        libraries=["scikit-learn"],
    )
    value = result.value
    metadata = {
        "champion_version": value["champion_version"],
        "verdict": value["gate"].message,
        **cache_metadata(result),
    }
    for side in ("challenger", "champion"):
        if value.get(side) is not None:
            metadata[f"{side}_r2"] = round(value[side].r2, 4)
            metadata[f"{side}_mae"] = round(value[side].mae, 2)
    if "rows" in value:
        metadata["rows_compared"] = value["rows"]
    return Output(value, data_version=data_version(result), metadata=metadata)


@asset_check(
    asset=champion_comparison,
    blocking=True,
    description="The challenger is not worse than the champion beyond the tolerance",
)
def challenger_not_worse(champion_comparison: dict) -> AssetCheckResult:
    return _check(champion_comparison["gate"])
