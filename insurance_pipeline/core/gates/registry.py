"""Every gate, declared once: its name, the evidence it judges, the parameters of the policy
its verdict depends on, its judge, and the blocking check that runs it.

The checks (`defs.validation.checks`), the verdicts recorded for a model, and registration's
list of required gates all come from `GATES`. Adding a gate is adding one `Gate` here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from insurance_pipeline.core.gates.policy import ChampionRef, GatePolicy
from insurance_pipeline.core.modeling.challenger import (
    ChampionComparison,
    Tolerance,
    challenger_judgement,
)
from insurance_pipeline.core.modeling.metrics import (
    HoldoutEvaluation,
    Judgement,
    finite_predictions_judgement,
    r2_judgement,
    row_count_judgement,
)


@dataclass(frozen=True)
class DataEvidence:
    """What the data contract's gate knows of a model: the rows it was built from. Its split
    exists only because the contract accepted the data (`to_typed_frame` raises on any
    violation), so reaching a model means the contract passed."""

    model_key: str
    data_version: str
    rows: int


def champion_of(evidence) -> ChampionRef | None:
    """The champion a piece of evidence was measured against (a comparison's), if any."""
    version = getattr(evidence, "champion_version", None)
    if version is None:
        return None
    return ChampionRef(version, getattr(evidence, "champion_model_key", None) or "")


def _no_parameters(policy: GatePolicy, champion: ChampionRef | None) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Gate:
    name: str  # the verdict's name
    evidence: type  # the typed value it judges (it carries model_key and data_version)
    judge: Callable[[Any, GatePolicy], Judgement]  # pure
    parameters: Callable[[GatePolicy, ChampionRef | None], dict[str, Any]] = _no_parameters
    check: str | None = None  # the blocking asset check that judges it (None: recorded by
    asset: str | None = None  #   the asset producing the evidence)
    description: str = ""


class GateRegistry:
    def __init__(self, gates: tuple[Gate, ...]):
        names = [g.name for g in gates]
        if len(set(names)) != len(names):
            raise ValueError(f"gate names must be unique: {names}")
        self._gates = {g.name: g for g in gates}

    def __iter__(self) -> Iterator[Gate]:
        return iter(self._gates.values())

    def __getitem__(self, name: str) -> Gate:
        try:
            return self._gates[name]
        except KeyError:
            raise KeyError(f"unknown gate {name!r}; known: {', '.join(self._gates)}") from None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._gates)

    def with_gates(self, *extra: Gate) -> GateRegistry:
        return GateRegistry((*self, *extra))

    def required_parameters(
        self, policy: GatePolicy, champion: ChampionRef | None
    ) -> dict[str, dict[str, Any]]:
        """gate -> the parameters its verdict must have been judged under."""
        return {g.name: g.parameters(policy, champion) for g in self}

    def checked_by_asset(self) -> Mapping[str, tuple[Gate, ...]]:
        """asset -> the gates its blocking checks judge."""
        found: dict[str, list[Gate]] = {}
        for gate in self:
            if gate.check is not None:
                found.setdefault(gate.asset, []).append(gate)
        return {asset: tuple(gates) for asset, gates in found.items()}


def _interval(evaluation: HoldoutEvaluation, policy: GatePolicy) -> Judgement:
    interval, low, high = evaluation.interval, policy.coverage_low, policy.coverage_high
    if interval is None:
        return Judgement(False, "the model has no prediction interval")
    inside = low <= interval.coverage <= high
    return Judgement(
        inside,
        f"{interval.level:.0%} interval covers {interval.coverage:.3f} of the holdout rows "
        f"({'within' if inside else 'outside'} [{low}, {high}]); mean width "
        f"{interval.mean_width:,.0f}, median {interval.median_width:,.0f}",
    )


def _challenger(comparison: ChampionComparison, policy: GatePolicy) -> Judgement:
    return challenger_judgement(
        comparison.challenger,
        comparison.champion,
        Tolerance(r2_drop=policy.r2_tolerance, mae_rise=policy.mae_tolerance),
        comparison.champion_version,
        comparison.differences,
    )


def _challenger_parameters(policy: GatePolicy, champion: ChampionRef | None) -> dict[str, Any]:
    return {
        "r2_tolerance": policy.r2_tolerance,
        "mae_tolerance": policy.mae_tolerance,
        "champion_version": champion.version if champion else None,
        "champion_model_key": champion.model_key if champion else None,
    }


def evidence_figures(evidence) -> dict[str, float | int]:
    """The numbers a gate's evidence holds, for a check's numeric metadata (so Dagster plots
    each across runs): the holdout's metrics, rows and interval, or the comparison's metrics,
    differences and their bounds. Missing figures are left out, never zero-filled."""
    found: dict[str, float | int] = {}
    if isinstance(evidence, HoldoutEvaluation):
        m = evidence.metrics
        found |= {"r2": m.r2, "mae": m.mae, "rmse": m.rmse, "rows": m.n_rows}
        found |= {"expected_rows": evidence.expected_test_rows}
        found |= {"nonfinite_predictions": m.n_nonfinite_predictions}
        if evidence.interval is not None:
            i = evidence.interval
            found |= {"coverage": i.coverage, "level": i.level}
            found |= {"mean_width": i.mean_width, "median_width": i.median_width}
    elif isinstance(evidence, ChampionComparison):
        found["rows"] = evidence.rows
        for side, m in (("challenger", evidence.challenger), ("champion", evidence.champion)):
            if m is not None:
                found |= {f"{side}_r2": m.r2, f"{side}_mae": m.mae}
        d = evidence.differences
        if d is not None:
            for name, estimate in (("r2", d.r2), ("mae", d.mae)):
                found |= {f"{name}_difference": estimate.value}
                found |= {f"{name}_difference_low": estimate.ci_low}
                found |= {f"{name}_difference_high": estimate.ci_high}
    elif isinstance(evidence, DataEvidence):
        found["rows"] = evidence.rows
    return {k: float(v) if isinstance(v, float) else int(v) for k, v in found.items()}


METRICS = "validation_metrics"
GATES = GateRegistry(
    (
        Gate(
            "data_contract",
            DataEvidence,
            lambda e, p: Judgement(
                True, f"the {e.rows} rows it was built from satisfy the contract"
            ),
        ),
        Gate(
            "r2_floor",
            HoldoutEvaluation,
            lambda e, p: r2_judgement(e.metrics, p.r2_floor),
            lambda p, c: {"r2_floor": p.r2_floor},
            check="r2_above_floor",
            asset=METRICS,
            description="Holdout r2 >= the r2 floor",
        ),
        Gate(
            "finite_predictions",
            HoldoutEvaluation,
            lambda e, p: finite_predictions_judgement(e.metrics),
            check="predictions_finite",
            asset=METRICS,
            description="No NaN or infinite predictions",
        ),
        Gate(
            "test_row_count",
            HoldoutEvaluation,
            lambda e, p: row_count_judgement(e.metrics.n_rows, e.expected_test_rows),
            check="test_rows_as_expected",
            asset=METRICS,
            description="Scored exactly the held-out rows",
        ),
        Gate(
            "interval_coverage",
            HoldoutEvaluation,
            _interval,
            lambda p, c: {"coverage_low": p.coverage_low, "coverage_high": p.coverage_high},
            check="interval_coverage",
            asset=METRICS,
            description="Holdout coverage of the prediction interval within the configured bounds",
        ),
        Gate(
            "challenger_not_worse",
            ChampionComparison,
            _challenger,
            _challenger_parameters,
            check="challenger_not_worse",
            asset="champion_comparison",
            description="The challenger is not worse than the champion beyond the tolerance",
        ),
    )
)
