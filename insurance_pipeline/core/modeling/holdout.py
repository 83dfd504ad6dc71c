"""The trained model measured on its held-out rows: what `validation_metrics` records and the
holdout gates judge."""

from __future__ import annotations

from insurance_pipeline.core.data.split import Split, expected_test_rows
from insurance_pipeline.core.modeling.intervals import evaluate_interval
from insurance_pipeline.core.modeling.metrics import HoldoutEvaluation, regression_metrics
from insurance_pipeline.core.modeling.model import TrainedModel
from insurance_pipeline.core.modeling.pipeline import FEATURES_STEP
from insurance_pipeline.core.modeling.segments import segment_metrics
from insurance_pipeline.domain.schema import FEATURE_COLUMNS, TARGET_COLUMN


def evaluate_holdout(model: TrainedModel, split: Split) -> HoldoutEvaluation:
    """r2, MSE, RMSE, MAE, per-segment metrics and the interval's coverage on the test rows."""
    test = split.test
    features = test[list(FEATURE_COLUMNS)]
    predictions = model.pipeline.predict(features)
    interval = None
    if model.interval is not None:
        X = model.pipeline.named_steps[FEATURES_STEP].transform(features)
        interval = evaluate_interval(model.interval, test, X, predictions)
    return HoldoutEvaluation(
        model_key=model.model_key,
        data_version=model.data_version,
        metrics=regression_metrics(test[TARGET_COLUMN], predictions),
        segments=segment_metrics(test, test[TARGET_COLUMN], predictions),
        expected_test_rows=expected_test_rows(len(split.train) + len(test), split.test_fraction),
        interval=interval,
    )
