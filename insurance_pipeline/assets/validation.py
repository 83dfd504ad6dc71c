"""Holdout metrics, the champion comparison and the validation report, with the blocking
checks that judge them. Every check records its verdict against the model's key (on its
MLflow run), under the settings of the `gates` resource: see `modeling.gates`."""

import base64

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    Failure,
    MetadataValue,
    Output,
    asset_check,
)

from insurance_pipeline.assets._cached import (
    cache_metadata,
    data_version,
    run_cached,
    versioned_asset,
)
from insurance_pipeline.data.contract import FEATURE_COLUMNS, TARGET_COLUMN
from insurance_pipeline.data.split import Split, expected_test_rows
from insurance_pipeline.modeling.challenger import ChampionComparison
from insurance_pipeline.modeling.gates import (
    CHALLENGER,
    FINITE_PREDICTIONS,
    INTERVAL_COVERAGE,
    R2_FLOOR,
    TEST_ROW_COUNT,
    ChampionRef,
    Verdict,
    gate_settings,
    judge_comparison,
    judge_evaluation,
)
from insurance_pipeline.modeling.metrics import (
    HoldoutEvaluation,
    SegmentMetrics,
    regression_metrics,
)
from insurance_pipeline.modeling.model import FEATURES_STEP, REGRESSOR_STEP, TrainedModel
from insurance_pipeline.resources import (
    GatesResource,
    InsuranceDataResource,
    MlflowResource,
    StepCacheResource,
)
from insurance_pipeline.resources.mlflow import MODEL_KEY_TAG

CHAMPION = "champion"


@versioned_asset()
def validation_metrics(
    context: AssetExecutionContext,
    train_test_split: Split,
    trained_model: TrainedModel,
    mlflow: MlflowResource,
    step_cache: StepCacheResource,
) -> Output[HoldoutEvaluation]:
    """r2, MSE, RMSE, MAE and per-segment metrics on the held-out rows."""
    test = train_test_split.test

    def score() -> HoldoutEvaluation:
        from insurance_pipeline.modeling.intervals import evaluate_interval
        from insurance_pipeline.modeling.segments import segment_metrics

        predictions = trained_model.pipeline.predict(test[list(FEATURE_COLUMNS)])
        n_rows = len(train_test_split.train) + len(test)
        interval = None
        if trained_model.interval is not None:
            features = trained_model.pipeline.named_steps[FEATURES_STEP]
            X = features.transform(test[list(FEATURE_COLUMNS)])
            interval = evaluate_interval(trained_model.interval, test, X, predictions)
        return HoldoutEvaluation(
            model_key=trained_model.model_key,
            data_version=trained_model.data_version,
            metrics=regression_metrics(test[TARGET_COLUMN], predictions),
            segments=segment_metrics(test, test[TARGET_COLUMN], predictions),
            expected_test_rows=expected_test_rows(n_rows, train_test_split.test_fraction),
            interval=interval,
        )

    result = run_cached(context, step_cache.store(), score, libraries=["scikit-learn"])
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


def _interval_section(model: TrainedModel, test, evaluation: HoldoutEvaluation) -> str:
    from insurance_pipeline.modeling.report import interval_plot_png, interval_section_html

    point = model.pipeline.predict(test[list(FEATURE_COLUMNS)])
    X = model.pipeline.named_steps[FEATURES_STEP].transform(test[list(FEATURE_COLUMNS)])
    lower, upper = model.interval.bounds(point, X)
    y = test[TARGET_COLUMN].to_numpy(dtype=float)
    png = interval_plot_png(y, point, lower, upper)
    return interval_section_html(png, evaluation.interval.coverage_by_segment)


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


def record(mlflow: MlflowResource, verdict: Verdict) -> AssetCheckResult:
    """Store the verdict on the model's run, then report it as the check's result."""
    mlflow.record_verdict(verdict)
    return AssetCheckResult(
        passed=verdict.passed,
        description=verdict.message,
        metadata={
            "model_key": verdict.model_key,
            "settings": MetadataValue.json(verdict.settings),
            "verdict_tag": f"verdict.{verdict.gate}.{verdict.settings_id}",
        },
    )


def holdout_verdict(gate: str, evaluation: HoldoutEvaluation, gates: GatesResource) -> Verdict:
    settings = gates.settings()
    return Verdict.of(
        judge_evaluation(gate, evaluation, settings),
        model_key=evaluation.model_key,
        data_version=evaluation.data_version,
        settings=gate_settings(gate, settings),
    )


@asset_check(asset=validation_metrics, blocking=True, description="Holdout r2 >= the r2 floor")
def r2_above_floor(
    validation_metrics: HoldoutEvaluation, gates: GatesResource, mlflow: MlflowResource
) -> AssetCheckResult:
    return record(mlflow, holdout_verdict(R2_FLOOR, validation_metrics, gates))


@asset_check(asset=validation_metrics, blocking=True, description="No NaN or infinite predictions")
def predictions_finite(
    validation_metrics: HoldoutEvaluation, gates: GatesResource, mlflow: MlflowResource
) -> AssetCheckResult:
    return record(mlflow, holdout_verdict(FINITE_PREDICTIONS, validation_metrics, gates))


@asset_check(
    asset=validation_metrics, blocking=True, description="Scored exactly the held-out rows"
)
def test_rows_as_expected(
    validation_metrics: HoldoutEvaluation, gates: GatesResource, mlflow: MlflowResource
) -> AssetCheckResult:
    return record(mlflow, holdout_verdict(TEST_ROW_COUNT, validation_metrics, gates))


@asset_check(
    asset=validation_metrics,
    blocking=True,
    description="Holdout coverage of the prediction interval within the configured bounds",
)
def interval_coverage(
    validation_metrics: HoldoutEvaluation, gates: GatesResource, mlflow: MlflowResource
) -> AssetCheckResult:
    return record(mlflow, holdout_verdict(INTERVAL_COVERAGE, validation_metrics, gates))


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
    """One self-contained HTML file: residuals and prediction-error plots, metrics, pipeline."""
    from insurance_pipeline.modeling.report import render_validation_report
    from insurance_pipeline.modeling.segments import segment_table_html

    train, test = train_test_split.train, train_test_split.test
    metrics = validation_metrics.metrics

    def render():
        sections = {"Metrics per segment": segment_table_html(validation_metrics.segments)}
        if trained_model.interval is not None and validation_metrics.interval is not None:
            sections["Prediction interval"] = _interval_section(
                trained_model, test, validation_metrics
            )
        return render_validation_report(
            trained_model.pipeline,
            train[list(FEATURE_COLUMNS)],
            train[TARGET_COLUMN],
            test[list(FEATURE_COLUMNS)],
            test[TARGET_COLUMN],
            metrics=metrics.as_dict(),
            pipeline_description=trained_model.description,
            extra_sections=sections,
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
    mlflow.log_artifact(
        mlflow.run_for(trained_model.model_key), path, artifact_path="validation_report"
    )
    preview = "\n\n".join(
        f"**{name.replace('_', ' ')}**\n\n"
        f"![{name}](data:image/png;base64,{base64.b64encode(png).decode()})"
        for name, png in result.value.plots_png.items()
    )
    return Output(
        result.value,
        data_version=data_version(result),
        metadata={
            "file": MetadataValue.path(str(path)),
            "plots": MetadataValue.md(preview),
            "r2": round(metrics.r2, 4),
            "mae": round(metrics.mae, 2),
            **cache_metadata(result),
        },
    )


def current_champion(mlflow: MlflowResource, model_key: str) -> ChampionRef | None:
    """The champion a model must be compared with: None when there is none, or when this
    model already is the champion. A registry error propagates (it is not "no champion")."""
    try:
        found = mlflow.alias_version(CHAMPION)
    except Exception as error:
        raise Failure(
            description=f"cannot tell which model is {CHAMPION}: the registry "
            f"{mlflow.active_registry_uri()} failed with {type(error).__name__}: {error}"
        ) from error
    if found is None or found.tags.get(MODEL_KEY_TAG) == model_key:
        return None
    return ChampionRef(version=int(found.version), model_key=found.tags.get(MODEL_KEY_TAG, ""))


def compare_with_champion(
    trained_model: TrainedModel,
    split: Split,
    mlflow: MlflowResource,
    champion: ChampionRef | None,
) -> ChampionComparison:
    """Both specs refitted on the same folds of every row of the data, each row scored by
    both, with paired bootstrap intervals of the differences (modeling.challenger). The
    champion's file is checked against its recorded sha256 before it is loaded."""
    import pandas as pd

    from insurance_pipeline.modeling.challenger import cross_validated_comparison

    mine = theirs = differences = None
    rows = 0
    if champion is not None:
        champion_model, _ = mlflow.load_version_model(mlflow.get_version(champion.version))
        mine, theirs, differences = cross_validated_comparison(
            pd.concat([split.train, split.test]),
            trained_model.pipeline.named_steps[REGRESSOR_STEP],
            champion_model.named_steps[REGRESSOR_STEP],
        )
        rows = differences.rows
    return ChampionComparison(
        model_key=trained_model.model_key,
        data_version=trained_model.data_version,
        champion_version=champion.version if champion else None,
        champion_model_key=champion.model_key if champion else None,
        challenger=mine,
        champion=theirs,
        rows=rows,
        differences=differences,
    )


@versioned_asset()
def champion_comparison(
    context: AssetExecutionContext,
    train_test_split: Split,
    trained_model: TrainedModel,
    mlflow: MlflowResource,
    step_cache: StepCacheResource,
) -> Output[ChampionComparison]:
    """The new model (challenger) and the current `champion`: both specs cross-validated on
    the same folds of every row, with the paired differences' 95 % intervals."""
    champion = current_champion(mlflow, trained_model.model_key)
    result = run_cached(
        context,
        step_cache.store(),
        lambda: compare_with_champion(trained_model, train_test_split, mlflow, champion),
        # The champion is outside state: which one we compare with is part of the key.
        config={"champion": champion and (champion.version, champion.model_key)},
        libraries=["scikit-learn"],
    )
    comparison: ChampionComparison = result.value
    metadata = {
        "champion_version": comparison.champion_version,
        "rows_compared": comparison.rows,
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


def comparison_verdict(comparison: ChampionComparison, gates: GatesResource) -> Verdict:
    settings = gates.settings()
    champion = (
        ChampionRef(comparison.champion_version, comparison.champion_model_key or "")
        if comparison.champion_version is not None
        else None
    )
    return Verdict.of(
        judge_comparison(comparison, settings),
        model_key=comparison.model_key,
        data_version=comparison.data_version,
        settings=gate_settings(CHALLENGER, settings, champion),
    )


@asset_check(
    asset=champion_comparison,
    blocking=True,
    description="The challenger is not worse than the champion beyond the tolerance",
)
def challenger_not_worse(
    champion_comparison: ChampionComparison, gates: GatesResource, mlflow: MlflowResource
) -> AssetCheckResult:
    return record(mlflow, comparison_verdict(champion_comparison, gates))
