"""Champion/challenger gate, paired and aware of its own noise.

Both specs (the champion's and the challenger's) are refitted on the same folds of every row
the data holds and predict the fold they did not see, so each row has a prediction from each
model: the comparison set is as large as the data allows. The differences in MAE and r2
(challenger minus champion) get a paired bootstrap 95 % interval, and the challenger is
rejected only when it is worse beyond the tolerance with 95 % confidence: its MAE difference
interval lies wholly above the allowed rise, or its r2 difference interval wholly below the
allowed drop.

When the rows are many (more than `CROSS_VALIDATED_MAX_ROWS`), the ten refits on every row
would dominate the run (measured: 52 s at 10,000 rows, about 9.5 minutes at 100,000), and a
holdout is large enough by then: both specs are fitted on the training rows (the challenger
already is) and judged on the same held-out rows, with the same paired 95 % rule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from insurance_pipeline.core.data.contract import TARGET_COLUMN
from insurance_pipeline.core.modeling.bootstrap import paired_percentile_interval
from insurance_pipeline.core.modeling.metrics import (
    Estimate,
    Judgement,
    RegressionMetrics,
    regression_metrics,
)


@dataclass(frozen=True)
class PairedDifferences:
    """Challenger minus champion on the same rows, with paired bootstrap intervals."""

    mae: Estimate
    r2: Estimate
    rows: int
    level: float = 0.95


@dataclass(frozen=True)
class Tolerance:
    r2_drop: float = 0.005  # challenger r2 >= champion r2 - r2_drop
    mae_rise: float = 0.02  # challenger MAE <= champion MAE * (1 + mae_rise)


@dataclass(frozen=True)
class ChampionComparison:
    """Both models measured on the same rows. `champion_version` None: there was no other
    champion (none at all, or this model already is it)."""

    model_key: str
    data_version: str
    champion_version: int | None
    champion_model_key: str | None
    challenger: RegressionMetrics | None
    champion: RegressionMetrics | None
    rows: int
    differences: PairedDifferences | None = None
    method: str = "cross-validated"  # or "holdout"


# Above this many rows the comparison is made on the holdout instead of on every row's folds.
CROSS_VALIDATED_MAX_ROWS = 20_000


def _differences(y, a, b, axis: int = -1) -> np.ndarray:
    """[MAE, r2] of the challenger's predictions `a` minus the champion's `b`."""

    def mae(p):
        return np.abs(y - p).mean(axis=axis)

    def r2(p):
        sst = ((y - y.mean(axis=axis, keepdims=True)) ** 2).sum(axis=axis)
        return 1 - ((y - p) ** 2).sum(axis=axis) / sst

    return np.stack([mae(a) - mae(b), r2(a) - r2(b)])


def paired_differences(
    y, challenger_pred, champion_pred, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> PairedDifferences:
    """MAE and r2 differences (challenger - champion), each row resampled with both of its
    predictions, so what the rows share cancels out (paired percentile bootstrap)."""
    data = tuple(np.asarray(v, dtype=float) for v in (y, challenger_pred, champion_pred))
    point = _differences(*data)
    low, high = paired_percentile_interval(
        data, _differences, n_resamples=n_boot, seed=seed, level=level
    )
    mae, r2 = (Estimate(float(point[k]), float(low[k]), float(high[k])) for k in (0, 1))
    return PairedDifferences(mae=mae, r2=r2, rows=len(data[0]), level=level)


def cross_validated_comparison(
    frame: pd.DataFrame, challenger_spec, champion_spec, *, folds: int = 5, seed: int = 0
) -> tuple[RegressionMetrics, RegressionMetrics, PairedDifferences]:
    """Both specs refitted on the same folds of `frame`; every row scored by both."""
    from insurance_pipeline.core.modeling.intervals import out_of_fold_predictions

    truth = frame[TARGET_COLUMN].to_numpy(dtype=float)
    mine = out_of_fold_predictions(frame, challenger_spec, folds, seed)
    theirs = out_of_fold_predictions(frame, champion_spec, folds, seed)
    return (
        regression_metrics(truth, mine),
        regression_metrics(truth, theirs),
        paired_differences(truth, mine, theirs, seed=seed),
    )


def holdout_comparison(
    split, challenger_pipeline, champion_spec
) -> tuple[RegressionMetrics, RegressionMetrics, PairedDifferences]:
    """The challenger as trained and the champion's spec fitted on the same training rows,
    both scored on the held-out rows."""
    from insurance_pipeline.core.modeling.pipeline import unfitted_pipeline
    from insurance_pipeline.domain.schema import FEATURE_COLUMNS

    features = list(FEATURE_COLUMNS)
    truth = split.test[TARGET_COLUMN].to_numpy(dtype=float)
    champion = unfitted_pipeline(champion_spec).fit(
        split.train[features], split.train[TARGET_COLUMN].to_numpy(dtype=float)
    )
    mine = challenger_pipeline.predict(split.test[features])
    theirs = champion.predict(split.test[features])
    return (
        regression_metrics(truth, mine),
        regression_metrics(truth, theirs),
        paired_differences(truth, mine, theirs),
    )


def challenger_judgement(
    challenger: RegressionMetrics | None,
    champion: RegressionMetrics | None,
    tolerance: Tolerance,
    champion_version: int | None,
    differences: PairedDifferences | None = None,
) -> Judgement:
    """Without `differences` (no bootstrap), the intervals are the point differences."""
    if champion_version is None:
        return Judgement(True, "no other champion to compare with: the gate passes")
    if champion is None or challenger is None or challenger.n_rows < 2:
        return Judgement(
            False,
            f"cannot compare with champion v{champion_version}: fewer than 2 rows to compare on",
        )
    if differences is None:
        mae_diff = challenger.mae - champion.mae
        r2_diff = challenger.r2 - champion.r2
        differences = PairedDifferences(
            Estimate(mae_diff, mae_diff, mae_diff),
            Estimate(r2_diff, r2_diff, r2_diff),
            challenger.n_rows,
        )
    allowed_rise = champion.mae * tolerance.mae_rise
    confident = (
        f"with {differences.level:.0%} confidence"
        if differences.mae.ci_low < differences.mae.ci_high
        else ""
    )
    problems = []
    if differences.r2.ci_high < -tolerance.r2_drop:
        problems.append(
            f"r2 {challenger.r2:.4f} < champion's {champion.r2:.4f} - {tolerance.r2_drop} "
            f"{confident}".rstrip()
        )
    if differences.mae.ci_low > allowed_rise:
        problems.append(
            f"MAE {challenger.mae:,.1f} > champion's {champion.mae:,.1f} x "
            f"{1 + tolerance.mae_rise} {confident}".rstrip()
        )
    summary = (
        f"on {differences.rows} rows: challenger r2 {challenger.r2:.4f} / MAE "
        f"{challenger.mae:,.1f} vs champion v{champion_version} r2 {champion.r2:.4f} / MAE "
        f"{champion.mae:,.1f}; difference MAE {differences.mae.value:+,.1f} "
        f"[{differences.mae.ci_low:+,.1f}, {differences.mae.ci_high:+,.1f}], r2 "
        f"{differences.r2.value:+.4f} [{differences.r2.ci_low:+.4f}, {differences.r2.ci_high:+.4f}]"
    )
    if problems:
        return Judgement(
            False, "challenger is worse: " + "; ".join(problems) + " (" + summary + ")"
        )
    return Judgement(True, summary)


def compare(
    model,
    split,
    champion_ref,
    champion_pipeline,
    cross_validated_max_rows: int = CROSS_VALIDATED_MAX_ROWS,
) -> ChampionComparison:
    """A `TrainedModel` against the champion (`champion_ref`, whose fitted pipeline is
    `champion_pipeline`; both None when there is no other champion): both regressor specs
    refitted on the same folds of every row of `split`, every row scored by both; above
    `cross_validated_max_rows` rows, both judged on the holdout instead."""
    from insurance_pipeline.core.modeling.pipeline import REGRESSOR_STEP

    mine = theirs = differences = None
    rows, method = 0, "cross-validated"
    if champion_ref is not None:
        champion_spec = champion_pipeline.named_steps[REGRESSOR_STEP]
        if len(split.train) + len(split.test) > cross_validated_max_rows:
            method = "holdout"
            mine, theirs, differences = holdout_comparison(split, model.pipeline, champion_spec)
        else:
            mine, theirs, differences = cross_validated_comparison(
                pd.concat([split.train, split.test]),
                model.pipeline.named_steps[REGRESSOR_STEP],
                champion_spec,
            )
        rows = differences.rows
    return ChampionComparison(
        model_key=model.model_key,
        data_version=model.data_version,
        champion_version=champion_ref.version if champion_ref else None,
        champion_model_key=champion_ref.model_key if champion_ref else None,
        challenger=mine,
        champion=theirs,
        rows=rows,
        differences=differences,
        method=method,
    )
