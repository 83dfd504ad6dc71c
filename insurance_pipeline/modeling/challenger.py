"""Champion/challenger gate: both models scored on the same rows, none of which the champion
trained on; the challenger may not be worse than the tolerance allows."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from insurance_pipeline.data.contract import FEATURE_COLUMNS, TARGET_COLUMN
from insurance_pipeline.modeling.metrics import GateResult, RegressionMetrics, regression_metrics


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


def eligible_rows(test_row_ids: list[int], champion_train_row_ids: list[int]) -> list[int]:
    """The challenger's held-out rows that the champion never saw either."""
    seen = set(champion_train_row_ids)
    return [i for i in test_row_ids if i not in seen]


def score_both(
    challenger_model, champion_model, champion_train_rows, test: pd.DataFrame
) -> tuple[RegressionMetrics | None, RegressionMetrics | None, int]:
    """Both models on the held-out rows neither trained on: (challenger, champion, rows)."""
    rows = eligible_rows([int(i) for i in test.index], champion_train_rows)
    if len(rows) < 2:
        return None, None, len(rows)
    scored = test.loc[rows]
    features, truth = scored[list(FEATURE_COLUMNS)], scored[TARGET_COLUMN]
    return (
        regression_metrics(truth, challenger_model.predict(features)),
        regression_metrics(truth, champion_model.predict(features)),
        len(rows),
    )


def challenger_gate(
    challenger: RegressionMetrics | None,
    champion: RegressionMetrics | None,
    tolerance: Tolerance,
    champion_version: int | None,
) -> GateResult:
    if champion_version is None:
        return GateResult(
            "challenger_not_worse", True, "no other champion to compare with: the gate passes"
        )
    if champion is None or challenger is None or challenger.n_rows < 2:
        return GateResult(
            "challenger_not_worse",
            False,
            f"cannot compare with champion v{champion_version}: fewer than 2 rows that neither "
            "model trained on",
        )
    r2_floor = champion.r2 - tolerance.r2_drop
    mae_ceiling = champion.mae * (1 + tolerance.mae_rise)
    problems = []
    if challenger.r2 < r2_floor:
        problems.append(
            f"r2 {challenger.r2:.4f} < champion's {champion.r2:.4f} - {tolerance.r2_drop}"
        )
    if challenger.mae > mae_ceiling:
        problems.append(
            f"MAE {challenger.mae:,.1f} > champion's {champion.mae:,.1f} x {1 + tolerance.mae_rise}"
        )
    summary = (
        f"on {challenger.n_rows} rows neither model trained on: challenger r2 "
        f"{challenger.r2:.4f} / MAE {challenger.mae:,.1f} vs champion v{champion_version} r2 "
        f"{champion.r2:.4f} / MAE {champion.mae:,.1f}"
    )
    if problems:
        return GateResult(
            "challenger_not_worse",
            False,
            "challenger is worse: " + "; ".join(problems) + " (" + summary + ")",
        )
    return GateResult("challenger_not_worse", True, summary)
