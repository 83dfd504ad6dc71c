"""Gate verdicts: what each gate decided, for which model, on which data, under which settings.

A verdict belongs to the model, not to the run that happened to judge it. It records the
model key, the data version the model was trained on and the exact settings the gate judged
under (the r2 floor; the tolerances and the champion compared against). Registration and
deployment accept a model only when every gate in `REQUIRED_GATES` has a passing verdict for
that model under the settings in force; a verdict judged under other settings never counts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from insurance_pipeline.modeling.challenger import ChampionComparison, Tolerance, challenger_gate
from insurance_pipeline.modeling.metrics import (
    GateResult,
    HoldoutEvaluation,
    finite_predictions_gate,
    r2_gate,
    row_count_gate,
)

DATA_CONTRACT = "data_contract"
R2_FLOOR = "r2_floor"
FINITE_PREDICTIONS = "finite_predictions"
TEST_ROW_COUNT = "test_row_count"
CHALLENGER = "challenger_not_worse"
INTERVAL_COVERAGE = "interval_coverage"
REQUIRED_GATES = (
    DATA_CONTRACT,
    R2_FLOOR,
    FINITE_PREDICTIONS,
    TEST_ROW_COUNT,
    INTERVAL_COVERAGE,
    CHALLENGER,
)


@dataclass(frozen=True)
class GateSettings:
    """Thresholds are configuration, never data: one owner, read by every gate and by
    registration (Dagster resource `gates`)."""

    r2_floor: float = 0.80  # holdout r2 must reach this
    r2_tolerance: float = 0.005  # challenger r2 >= champion r2 - r2_tolerance
    mae_tolerance: float = 0.02  # challenger MAE <= champion MAE * (1 + mae_tolerance)
    # Holdout coverage of the prediction interval must fall in [low, high]. Wide on purpose:
    # on 268 rows the coverage of a 90 % interval has a standard deviation of about 0.018.
    coverage_low: float = 0.80
    coverage_high: float = 0.97


@dataclass(frozen=True)
class ChampionRef:
    """The champion a challenger was (or must be) compared against."""

    version: int
    model_key: str


def gate_settings(
    gate: str, settings: GateSettings | None = None, champion: ChampionRef | None = None
) -> dict[str, Any]:
    """What `gate`'s verdict depends on besides the model and its data."""
    settings = settings or GateSettings()
    if gate == R2_FLOOR:
        return {"r2_floor": settings.r2_floor}
    if gate == INTERVAL_COVERAGE:
        return {"coverage_low": settings.coverage_low, "coverage_high": settings.coverage_high}
    if gate == CHALLENGER:
        return {
            "r2_tolerance": settings.r2_tolerance,
            "mae_tolerance": settings.mae_tolerance,
            "champion_version": champion.version if champion else None,
            "champion_model_key": champion.model_key if champion else None,
        }
    if gate in REQUIRED_GATES:
        return {}
    raise KeyError(f"unknown gate {gate!r}; known: {', '.join(REQUIRED_GATES)}")


def settings_id(settings: Mapping[str, Any]) -> str:
    canonical = json.dumps(dict(settings), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def judge_evaluation(gate: str, evaluation: HoldoutEvaluation, settings: GateSettings):
    """The holdout gates, judged from what `validation_metrics` measured."""
    metrics = evaluation.metrics
    if gate == R2_FLOOR:
        return r2_gate(metrics, settings.r2_floor)
    if gate == FINITE_PREDICTIONS:
        return finite_predictions_gate(metrics)
    if gate == TEST_ROW_COUNT:
        return row_count_gate(metrics.n_rows, evaluation.expected_test_rows)
    if gate == INTERVAL_COVERAGE:
        return interval_gate(evaluation, settings.coverage_low, settings.coverage_high)
    raise KeyError(f"{gate!r} is not judged from the holdout evaluation")


def judge_comparison(comparison: ChampionComparison, settings: GateSettings) -> GateResult:
    tolerance = Tolerance(r2_drop=settings.r2_tolerance, mae_rise=settings.mae_tolerance)
    return challenger_gate(
        comparison.challenger,
        comparison.champion,
        tolerance,
        comparison.champion_version,
        comparison.differences,
    )


def contract_passed(rows: int) -> GateResult:
    """The contract's verdict for a model: its split exists only because `to_typed_frame`
    accepted the data (it raises on any violation), so reaching a model means it passed."""
    return GateResult(
        DATA_CONTRACT, True, f"the {rows} rows it was built from satisfy the contract"
    )


HOLDOUT_GATES = (R2_FLOOR, FINITE_PREDICTIONS, TEST_ROW_COUNT, INTERVAL_COVERAGE)


def interval_gate(evaluation: HoldoutEvaluation, low: float, high: float) -> GateResult:
    interval = evaluation.interval
    if interval is None:
        return GateResult(INTERVAL_COVERAGE, False, "the model has no prediction interval")
    inside = low <= interval.coverage <= high
    return GateResult(
        INTERVAL_COVERAGE,
        inside,
        f"{interval.level:.0%} interval covers {interval.coverage:.3f} of the holdout rows "
        f"({'within' if inside else 'outside'} [{low}, {high}]); mean width "
        f"{interval.mean_width:,.0f}, median {interval.median_width:,.0f}",
    )


def contract_verdict(model_key: str, data_version: str, rows: int) -> Verdict:
    return Verdict.of(
        contract_passed(rows),
        model_key=model_key,
        data_version=data_version,
        settings=gate_settings(DATA_CONTRACT),
    )


@dataclass(frozen=True)
class Verdict:
    gate: str
    passed: bool
    message: str
    model_key: str
    data_version: str
    settings: str  # canonical JSON of `gate_settings(...)` at judgement time

    @classmethod
    def of(
        cls, result: GateResult, *, model_key: str, data_version: str, settings: Mapping
    ) -> Verdict:
        return cls(
            gate=result.name,
            passed=result.passed,
            message=result.message,
            model_key=model_key,
            data_version=data_version,
            settings=json.dumps(dict(settings), sort_keys=True, separators=(",", ":")),
        )

    @property
    def settings_id(self) -> str:
        return settings_id(json.loads(self.settings))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Verdict:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Approval:
    """The decision over all required gates for one model."""

    verdicts: tuple[Verdict, ...]
    problems: tuple[str, ...]  # one line per failed or missing gate

    @property
    def approved(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.approved:
            return "every gate passed: " + ", ".join(v.gate for v in self.verdicts)
        return "refused: " + "; ".join(self.problems)


def approval(
    found: Mapping[str, Verdict | None],
    *,
    model_key: str,
    data_version: str,
    required: Mapping[str, Mapping[str, Any]],
) -> Approval:
    """Every gate in `required` (gate -> its settings) must have a passing verdict for this
    model key and data version under exactly those settings."""
    verdicts, problems = [], []
    for gate, wanted in required.items():
        verdict = found.get(gate)
        if verdict is None or verdict.settings_id != settings_id(wanted):
            problems.append(f"{gate}: no verdict for this model under settings {dict(wanted)}")
        elif verdict.model_key != model_key or verdict.data_version != data_version:
            problems.append(
                f"{gate}: the verdict found was judged for model {verdict.model_key} on data "
                f"{verdict.data_version[:12]}, not this model ({model_key}, {data_version[:12]})"
            )
        elif not verdict.passed:
            problems.append(f"{gate} failed: {verdict.message}")
        else:
            verdicts.append(verdict)
    return Approval(verdicts=tuple(verdicts), problems=tuple(problems))
