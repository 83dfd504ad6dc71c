"""A gate is one entry: the registry declares it, the checks and registration's required
gates come from it, and a registry with one more gate refuses a model until that gate's
verdict exists."""

from dataclasses import dataclass

import pytest

from insurance_pipeline.core.gates.decision import approval_statement, decide, version_approval
from insurance_pipeline.core.gates.policy import ChampionRef, GatePolicy
from insurance_pipeline.core.gates.registry import GATES, DataEvidence, Gate, GateRegistry
from insurance_pipeline.core.gates.verdicts import Verdict
from insurance_pipeline.core.modeling.challenger import ChampionComparison
from insurance_pipeline.core.modeling.metrics import (
    HoldoutEvaluation,
    IntervalEvaluation,
    Judgement,
    regression_metrics,
)
from insurance_pipeline.core.trust.keys import Signer, Verifier
from insurance_pipeline_tests.helpers import SESSION_KEY

pytestmark = pytest.mark.pure

KEY, DATA = "model-1", "a" * 64


@dataclass(frozen=True)
class ReportEvidence:
    """Evidence registration never has at hand: only the extra gate's own check makes it."""

    model_key: str
    data_version: str
    pages: int


EXTRA = Gate(
    "report_has_pages",
    ReportEvidence,
    lambda e, p: Judgement(e.pages > 0, f"{e.pages} page(s)"),
    check="report_not_empty",
    asset="validation_report",
)


def evaluation(r2_error: float = 1.0) -> HoldoutEvaluation:
    y = [100.0, 200.0, 300.0, 400.0]
    p = [100.0 + r2_error, 200.0 - r2_error, 300.0 + r2_error, 400.0 - r2_error]
    interval = IntervalEvaluation(0.9, 0.9, 10.0, 10.0, {}, 0.9, 12.0)
    return HoldoutEvaluation(KEY, DATA, regression_metrics(y, p), [], 4, interval)


def evidence(holdout=None):
    holdout = holdout or evaluation()
    comparison = ChampionComparison(KEY, DATA, None, None, None, None, 0)
    return {
        DataEvidence: lambda: DataEvidence(KEY, DATA, 1337),
        HoldoutEvaluation: lambda: holdout,
        ChampionComparison: lambda: comparison,
    }


def test_the_registry_declares_every_gate_once_with_its_check():
    assert GATES.names == (
        "data_contract",
        "r2_floor",
        "finite_predictions",
        "test_row_count",
        "interval_coverage",
        "challenger_not_worse",
    )
    checks = {g.check: g.asset for g in GATES if g.check}
    assert checks == {
        "r2_above_floor": "validation_metrics",
        "predictions_finite": "validation_metrics",
        "test_rows_as_expected": "validation_metrics",
        "interval_coverage": "validation_metrics",
        "challenger_not_worse": "champion_comparison",
    }
    with pytest.raises(ValueError, match="unique"):
        GATES.with_gates(GATES["r2_floor"])


def test_registration_judges_what_is_missing_from_the_evidence_at_hand():
    decision = decide(
        model_key=KEY,
        data_version=DATA,
        policy=GatePolicy(),
        champion=None,
        recorded={},
        evidence=evidence(),
    )
    assert decision.approved, decision.approval.summary()
    assert {v.gate for v in decision.judged_now} == set(GATES.names)
    assert decision.required["r2_floor"] == {"r2_floor": 0.8}


def test_a_registry_with_one_more_gate_refuses_until_its_verdict_exists():
    registry = GATES.with_gates(EXTRA)
    policy = GatePolicy()
    first = decide(
        model_key=KEY,
        data_version=DATA,
        policy=policy,
        champion=None,
        recorded={},
        evidence=evidence(),
        registry=registry,
    )
    assert not first.approved
    assert first.approval.problems == (
        "report_has_pages: no verdict for this model under parameters {}",
    )
    recorded = {v.tag: v for v in first.judged_now}
    extra = Verdict.judged(EXTRA, ReportEvidence(KEY, DATA, 3), policy)
    recorded[extra.tag] = extra
    second = decide(
        model_key=KEY,
        data_version=DATA,
        policy=policy,
        champion=None,
        recorded=recorded,
        evidence=evidence(),
        registry=registry,
    )
    assert second.approved and second.judged_now == ()
    signer = Signer(SESSION_KEY)
    statement = approval_statement(
        second,
        model_name="m",
        version=2,
        run_id="r2",
        model_key=KEY,
        data_version=DATA,
        policy=policy,
        files={"model/model.pkl": "f" * 64},
        signer=signer,
    )
    check = dict(verifier=Verifier.of(signer), model_name="m", version=2, run_id="r2")
    found = version_approval(statement=statement, registry=registry, **check)
    assert found.approved and found.files == {"model/model.pkl": "f" * 64}
    # approved under the registry without the extra gate: not deployable under it
    older = approval_statement(
        first_without(EXTRA.name, second),
        model_name="m",
        version=2,
        run_id="r2",
        model_key=KEY,
        data_version=DATA,
        policy=policy,
        files={},
        signer=signer,
    )
    refused = version_approval(statement=older, registry=registry, **check)
    assert not refused.approved and "approved without report_has_pages" in refused.summary()
    # and the same approval is for version 2 of run r2 only
    elsewhere = version_approval(statement=statement, registry=registry, **{**check, "version": 3})
    assert not elsewhere.approved and "not for m version 3" in elsewhere.summary()


def first_without(gate: str, decision):
    from dataclasses import replace

    from insurance_pipeline.core.gates.verdicts import Approval

    verdicts = tuple(v for v in decision.approval.verdicts if v.gate != gate)
    required = {g: p for g, p in decision.required.items() if g != gate}
    return replace(decision, approval=Approval(verdicts, ()), required=required)


def test_a_verdict_under_other_parameters_or_for_another_model_never_counts():
    policy = GatePolicy(r2_floor=0.5)
    strict = GatePolicy(r2_floor=0.99)
    lenient = Verdict.judged(GATES["r2_floor"], evaluation(), policy)
    decision = decide(
        model_key=KEY,
        data_version=DATA,
        policy=strict,
        champion=None,
        recorded={lenient.tag: lenient},
        evidence={},
    )
    assert "r2_floor: no verdict for this model under parameters {'r2_floor': 0.99}" in (
        decision.approval.problems
    )
    other = Verdict.judged(GATES["r2_floor"], evaluation(), strict)
    other = Verdict(**{**other.__dict__, "model_key": "model-2"})
    decision = decide(
        model_key=KEY,
        data_version=DATA,
        policy=strict,
        champion=None,
        recorded={other.tag: other},
        evidence={},
    )
    assert any("judged for model model-2" in p for p in decision.approval.problems)


def test_the_challenger_gate_is_judged_against_the_named_champion():
    champion = ChampionRef(4, "model-0")
    required = GATES.required_parameters(GatePolicy(), champion)
    assert required["challenger_not_worse"]["champion_version"] == 4
    assert required["r2_floor"] == {"r2_floor": 0.8}


def test_the_checks_come_from_the_registry():
    from insurance_pipeline.defs.validation.checks import gate_checks

    specs = {
        (spec.asset_key.to_user_string(), spec.name)
        for checks in gate_checks(GATES.with_gates(EXTRA))
        for spec in checks.check_specs
    }
    assert ("validation_report", "report_not_empty") in specs
    assert ("validation_metrics", "r2_above_floor") in specs
    assert len(specs) == len([g for g in GATES if g.check]) + 1
    registry = GateRegistry(tuple(GATES))
    assert registry.names == GATES.names
