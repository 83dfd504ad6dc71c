"""Stage `validation`: holdout metrics, the validation report and the champion comparison.
Their blocking checks (one per gate of `core.gates.registry.GATES`) are in `checks`."""

import base64

from dagster import AssetExecutionContext, Config, Failure, MetadataValue, Output
from pydantic import Field

from insurance_pipeline.core.data.split import Split
from insurance_pipeline.core.modeling.challenger import (
    CROSS_VALIDATED_MAX_ROWS,
    ChampionComparison,
)
from insurance_pipeline.core.modeling.holdout import evaluate_holdout
from insurance_pipeline.core.modeling.metrics import HoldoutEvaluation, SegmentMetrics
from insurance_pipeline.core.modeling.model import TrainedModel
from insurance_pipeline.core.modeling.report import validation_report as render_report
from insurance_pipeline.core.trust.keys import TrustError
from insurance_pipeline.defs._steps import (
    cache_metadata,
    data_version,
    run_cached,
    versioned_asset,
)
from insurance_pipeline.release import Release
from insurance_pipeline.resources import (
    InsuranceDataResource,
    MlflowResource,
    StepCacheResource,
    TrustResource,
)


@versioned_asset()
def validation_metrics(
    context: AssetExecutionContext,
    train_test_split: Split,
    trained_model: TrainedModel,
    mlflow: MlflowResource,
    step_cache: StepCacheResource,
) -> Output[HoldoutEvaluation]:
    """r2, MSE, RMSE, MAE, per-segment metrics and interval coverage on the held-out rows."""
    result = run_cached(
        context,
        step_cache.store(),
        lambda: evaluate_holdout(trained_model, train_test_split),
        libraries=["scikit-learn", "scipy"],
    )
    evaluation: HoldoutEvaluation = result.value
    metrics = evaluation.metrics
    scores = {k: getattr(metrics, k) for k in ("r2", "mse", "rmse", "mae")}
    # Idempotent (latest value wins), so a cache hit re-logging is harmless.
    run_id = mlflow.run_for(trained_model.model_key)
    mlflow.log_metrics(run_id, {f"holdout_{k}": v for k, v in scores.items()})
    return Output(
        evaluation,
        data_version=data_version(result),
        metadata={
            **{k: round(v, 4) for k, v in scores.items()},
            "test_rows": metrics.n_rows,
            "nonfinite_predictions": metrics.n_nonfinite_predictions,
            "model_key": trained_model.model_key,
            "mlflow_run_id": run_id,
            "segments": MetadataValue.md(_segments_markdown(evaluation.segments)),
            **_interval_metadata(evaluation),
            **cache_metadata(result),
        },
    )


def _interval_metadata(evaluation: HoldoutEvaluation) -> dict:
    interval = evaluation.interval
    if interval is None:
        return {}
    return {
        "interval_coverage": round(interval.coverage, 4),
        "interval_mean_width": round(interval.mean_width, 1),
        "interval_baseline_width": round(interval.baseline_mean_width, 1),
        "interval_coverage_by_segment": MetadataValue.json(
            {k: round(v, 4) for k, v in interval.coverage_by_segment.items()}
        ),
    }


def _segments_markdown(segments: list[SegmentMetrics]) -> str:
    lines = ["| segment | rows | r² [95% CI] | MAE [95% CI] |", "| --- | --- | --- | --- |"]
    for s in segments:
        r2, mae = s.r2, s.mae
        lines.append(
            f"| {s.segment}={s.value} | {s.n} | {r2.value:.3f} "
            f"[{r2.ci_low:.3f}, {r2.ci_high:.3f}] | {mae.value:,.0f} "
            f"[{mae.ci_low:,.0f}, {mae.ci_high:,.0f}] |"
        )
    return "\n".join(lines)


@versioned_asset()
def validation_report(
    context: AssetExecutionContext,
    train_test_split: Split,
    trained_model: TrainedModel,
    validation_metrics: HoldoutEvaluation,
    data: InsuranceDataResource,
    mlflow: MlflowResource,
    step_cache: StepCacheResource,
):
    """One self-contained HTML file: residuals and prediction-error plots, metrics per
    segment, the interval, the pipeline."""
    result = run_cached(
        context,
        step_cache.store(),
        lambda: render_report(trained_model, train_test_split, validation_metrics),
        libraries=["yellowbrick", "matplotlib", "scikit-learn"],
    )
    name = f"validation-{result.key}.html"
    location = data.publish(f"reports/{name}", result.value.html.encode())
    path = data.workdir("reports") / name
    if not path.exists():
        path.write_text(result.value.html, encoding="utf-8")
    mlflow.log_artifact(
        mlflow.run_for(trained_model.model_key), path, artifact_path="validation_report"
    )
    preview = "\n\n".join(
        f"**{name.replace('_', ' ')}**\n\n"
        f"![{name}](data:image/png;base64,{base64.b64encode(png).decode()})"
        for name, png in result.value.plots_png.items()
    )
    metrics = validation_metrics.metrics
    return Output(
        result.value,
        data_version=data_version(result),
        metadata={
            "file": MetadataValue.path(location),
            "plots": MetadataValue.md(preview),
            "r2": round(metrics.r2, 4),
            "mae": round(metrics.mae, 2),
            **cache_metadata(result),
        },
    )


class ComparisonConfig(Config):
    cross_validated_max_rows: int = Field(
        default=CROSS_VALIDATED_MAX_ROWS,
        ge=10,
        description="above this many rows, both models are judged on the holdout instead of "
        "refitted on every row's folds",
    )


@versioned_asset()
def champion_comparison(
    context: AssetExecutionContext,
    config: ComparisonConfig,
    train_test_split: Split,
    trained_model: TrainedModel,
    mlflow: MlflowResource,
    trust: TrustResource,
    step_cache: StepCacheResource,
) -> Output[ChampionComparison]:
    """The new model (challenger) and the current `champion`: both specs cross-validated on
    the same folds of every row (on the holdout when the rows are many), with the paired
    differences' 95 % intervals."""
    release = Release.of(mlflow, trust)
    try:
        champion = release.champion_to_beat(trained_model.model_key)
    except TrustError as error:
        raise Failure(description=str(error)) from None

    def compared() -> ChampionComparison:
        try:
            return release.compare_with_champion(
                trained_model, train_test_split, champion, config.cross_validated_max_rows
            )
        except TrustError as error:
            raise Failure(description=str(error)) from None

    result = run_cached(
        context,
        step_cache.store(),
        compared,
        # The champion is outside state: which one we compare with is part of the key.
        config={
            "champion": champion and (champion.version, champion.model_key),
            **config.model_dump(),
        },
        libraries=["scikit-learn", "scipy"],
    )
    comparison: ChampionComparison = result.value
    metadata = {
        "champion_version": comparison.champion_version,
        "rows_compared": comparison.rows,
        "method": comparison.method,
        **cache_metadata(result),
    }
    for side in ("challenger", "champion"):
        measured = getattr(comparison, side)
        if measured is not None:
            metadata[f"{side}_r2"] = round(measured.r2, 4)
            metadata[f"{side}_mae"] = round(measured.mae, 2)
    if comparison.differences is not None:
        d = comparison.differences
        metadata["mae_difference_95"] = [round(d.mae.ci_low, 1), round(d.mae.ci_high, 1)]
        metadata["r2_difference_95"] = [round(d.r2.ci_low, 4), round(d.r2.ci_high, 4)]
    return Output(comparison, data_version=data_version(result), metadata=metadata)
