"""Stage `training`: the TPOT search, the prediction interval and the trained model."""

from dagster import AssetExecutionContext, Config, MetadataValue, Output
from pydantic import Field

from insurance_pipeline.cache.store import library_versions
from insurance_pipeline.core.data.split import Split
from insurance_pipeline.core.gates.policy import GatePolicy
from insurance_pipeline.core.gates.registry import GATES, DataEvidence
from insurance_pipeline.core.gates.verdicts import Verdict, VerdictLedger
from insurance_pipeline.core.modeling.intervals import (
    ConformalInterval,
    IntervalConfig,
    fit_conformal_interval,
)
from insurance_pipeline.core.modeling.model import TrainedModel, build_trained_model
from insurance_pipeline.core.modeling.pipeline import hyperparameters
from insurance_pipeline.core.modeling.search import MAX_SEARCH_ROWS, SearchBudget, SearchResult
from insurance_pipeline.core.trust.files import file_statement
from insurance_pipeline.defs._steps import (
    cache_metadata,
    data_version,
    run_cached,
    versioned_asset,
)
from insurance_pipeline.defs.training.features import FEATURE_LIBRARIES
from insurance_pipeline.domain.schema import FEATURE_COLUMNS, TARGET_COLUMN
from insurance_pipeline.resources import (
    DaskResource,
    InsuranceDataResource,
    MlflowResource,
    StepCacheResource,
    TrustResource,
)
from insurance_pipeline.resources.mlflow import (
    DATA_SHA_TAG,
    PICKLE_TAG,
    TEST_DATASET,
    TRAIN_DATASET,
    pickle_subject,
)

SEARCH_LIBRARIES = [
    "tpot",
    "scikit-learn",
    "xgboost",
    "lightgbm",
    "numpy",
    "dask",
    "distributed",
]
_DEFAULT_BUDGET = SearchBudget()


class SearchConfig(Config):
    """TPOT's budget. Defaults keep a cold `make run` within 10 minutes on 2 cores."""

    generations: int = Field(default=_DEFAULT_BUDGET.generations, ge=1)
    population_size: int = Field(default=_DEFAULT_BUDGET.population_size, ge=2)
    cv: int = Field(default=_DEFAULT_BUDGET.cv, ge=2)
    max_time_mins: float | None = Field(
        default=_DEFAULT_BUDGET.max_time_mins,
        description="None: bounded by generations only",
    )
    max_eval_time_mins: float = Field(default=_DEFAULT_BUDGET.max_eval_time_mins, gt=0)
    n_jobs: int = Field(default=_DEFAULT_BUDGET.n_jobs, ge=1)
    random_state: int = Field(default=_DEFAULT_BUDGET.random_state)
    search_space: str = Field(default=_DEFAULT_BUDGET.search_space)
    scorer: str = Field(
        default=_DEFAULT_BUDGET.scorer, description="r2_mae: r2 - MAE/100000 (default)"
    )
    max_search_rows: int = Field(
        default=MAX_SEARCH_ROWS,
        ge=100,
        description="above this many training rows, TPOT searches a stratified sample of "
        "this size; the chosen pipeline is refitted on every row",
    )

    def budget(self, scheduler_address: str) -> SearchBudget:
        """The budget, run on `scheduler_address` (the operator's DASK_SCHEDULER_ADDRESS:
        never run config, which could send the training rows anywhere); empty: local."""
        values = self.model_dump(exclude={"max_search_rows"})
        return SearchBudget(**values, scheduler_address=scheduler_address or None)

    def cache_config(self) -> dict:
        # Where the search runs does not change what it finds.
        return self.model_dump()


@versioned_asset()
def tpot_pipeline(
    context: AssetExecutionContext,
    config: SearchConfig,
    train_test_split: Split,
    feature_transformer,
    dask: DaskResource,
    step_cache: StepCacheResource,
):
    """The pipeline TPOT chose, fitted on the transformed training rows: on the Dask cluster
    at DASK_SCHEDULER_ADDRESS (the operator's environment), else on a local one."""
    budget = config.budget(dask.scheduler_address)

    def search() -> SearchResult:
        from insurance_pipeline.core.modeling.search import search_training_rows

        train = train_test_split.train
        X = feature_transformer.transform(train[list(FEATURE_COLUMNS)])
        return search_training_rows(
            train, X, budget, config.max_search_rows, progress=context.log.info
        )

    result = run_cached(
        context,
        step_cache.store(),
        search,
        config=config.cache_config(),
        libraries=SEARCH_LIBRARIES,
    )
    found: SearchResult = result.value
    return Output(
        found,
        data_version=data_version(result),
        metadata={
            "pipeline": found.description,
            "cv_score": found.cv_score,
            "scorer": config.scorer,
            "pipelines_evaluated": found.evaluated,
            "search_seconds": round(found.seconds, 1),
            "searched_on": found.searched_on,
            "rows_searched": found.rows_searched,
            "rows_fitted": found.rows_fitted,
            "search_method": "every training row"
            if found.rows_searched == found.rows_fitted
            else "stratified sample (smoker x region), chosen pipeline refitted on every row",
            "candidates_timed_out": found.timed_out,
            "candidates_invalid": found.invalid,
            "budget": MetadataValue.json(config.model_dump()),
            **cache_metadata(result),
        },
    )


def log_to_mlflow(
    context: AssetExecutionContext,
    mlflow: MlflowResource,
    trust: TrustResource,
    model: TrainedModel,
    split: Split,
    search: SearchResult,
    source: str,
    cache_key: str,
) -> tuple[str, bool]:
    """The model's MLflow run (created once per model key): the model, params, library
    versions, and a signed statement of the pickle's sha256 as it was written."""
    versions = model.library_versions
    run_id, pickle_sha = mlflow.log_model_run(
        model_key=model.model_key,
        model=model.pipeline,
        params={
            "pipeline": model.description,
            **hyperparameters(model.pipeline),
            "train_rows": len(split.train),
            "split_seed": split.seed,
            "test_fraction": split.test_fraction,
            **search.budget_params(),
            **{f"lib.{k}": v for k, v in versions.items()},
        },
        tags={
            DATA_SHA_TAG: model.data_version,
            "code_version": context.assets_def.code_versions_by_key[context.asset_key] or "",
            "cache_key": cache_key,
        },
        input_example=split.train[list(FEATURE_COLUMNS)].head(5),
        pip_requirements=[f"{k}=={v}" for k, v in versions.items() if v != "absent"],
        train_row_ids=list(model.train_row_ids),
        datasets={
            TRAIN_DATASET: (split.train, "training"),
            TEST_DATASET: (split.test, "test"),
        },
        source=source,
        target=TARGET_COLUMN,
    )
    if pickle_sha is not None:
        subject = pickle_subject(model.model_key, run_id)
        mlflow.set_model_tag(
            model.model_key, PICKLE_TAG, file_statement(subject, pickle_sha, trust.signer())
        )
    return run_id, pickle_sha is not None


class PredictionIntervalConfig(Config):
    level: float = Field(default=0.9, ge=0.5, lt=1, description="Prediction interval level")
    folds: int = Field(default=5, ge=2, description="Folds of the out-of-fold residuals")
    seed: int = Field(default=0, description="Seed of the calibration folds")
    cross_conformal_max_rows: int = Field(
        default=IntervalConfig.cross_conformal_max_rows,
        ge=10,
        description="above this many training rows: split conformal on a held-out calibration "
        "set instead of cross-conformal",
    )

    def interval_config(self) -> IntervalConfig:
        return IntervalConfig(
            level=self.level,
            folds=self.folds,
            seed=self.seed,
            cross_conformal_max_rows=self.cross_conformal_max_rows,
        )


@versioned_asset()
def prediction_interval(
    context: AssetExecutionContext,
    config: PredictionIntervalConfig,
    train_test_split: Split,
    feature_transformer,
    tpot_pipeline: SearchResult,
    step_cache: StepCacheResource,
) -> Output[ConformalInterval]:
    """Conformal interval with normalized residuals (modeling.intervals): calibrated on
    out-of-fold residuals of the chosen spec (cross-conformal), or on a held-out calibration
    set when the rows are many (split conformal); the point model keeps every training row."""
    train = train_test_split.train

    def fit() -> ConformalInterval:
        X = feature_transformer.transform(train[list(FEATURE_COLUMNS)])
        return fit_conformal_interval(train, X, tpot_pipeline.pipeline, config.interval_config())

    result = run_cached(
        context,
        step_cache.store(),
        fit,
        config=config.model_dump(),
        libraries=sorted(set(FEATURE_LIBRARIES + SEARCH_LIBRARIES + ["mapie"])),
    )
    interval: ConformalInterval = result.value
    return Output(
        interval,
        data_version=data_version(result),
        metadata={
            "level": interval.level,
            "quantile": round(interval.quantile, 4),
            "calibration_rows": interval.calibration_rows,
            "training_rows": interval.training_rows,
            "method": interval.method,
            "baseline_width": round(2 * interval.baseline_half_width, 1),
            **cache_metadata(result),
        },
    )


MODEL_LIBRARIES = sorted(set(FEATURE_LIBRARIES + SEARCH_LIBRARIES + ["joblib", "mapie", "mlflow"]))


@versioned_asset()
def trained_model(
    context: AssetExecutionContext,
    train_test_split: Split,
    feature_transformer,
    tpot_pipeline: SearchResult,
    prediction_interval: ConformalInterval,
    mlflow: MlflowResource,
    trust: TrustResource,
    step_cache: StepCacheResource,
    data: InsuranceDataResource,
):
    """Pipeline(feature transformer, TPOT's pipeline) with its interval, logged to MLflow
    once, with the data contract's verdict recorded (signed) against its model key."""
    train = train_test_split.train
    result = run_cached(
        context,
        step_cache.store(),
        lambda: build_trained_model(
            feature_transformer,
            tpot_pipeline.pipeline,
            train_row_ids=train.index,
            description=tpot_pipeline.description,
            data_version=train_test_split.data_version,
            library_versions=library_versions(MODEL_LIBRARIES),
            interval=prediction_interval,
        ),
        libraries=MODEL_LIBRARIES,
    )
    model: TrainedModel = result.value
    run_id, created = log_to_mlflow(
        context, mlflow, trust, model, train_test_split, tpot_pipeline, data.csv_path, result.key
    )
    rows = len(train) + len(train_test_split.test)
    evidence = DataEvidence(model.model_key, model.data_version, rows)
    # The contract's judgement does not depend on the policy (the gate has no parameters).
    ledger = VerdictLedger(mlflow, trust.signer(), trust.verifier())
    ledger.record(Verdict.judged(GATES["data_contract"], evidence, GatePolicy()))
    return Output(
        model,
        data_version=data_version(result),
        metadata={
            "model_key": model.model_key,
            "mlflow_run_id": run_id,
            "mlflow_run_created": created,
            "pipeline": model.description,
            **cache_metadata(result),
        },
    )
