"""The gates' blocking checks, made from the registry: for each asset whose value is a gate's
evidence, one multi-check judging every gate declared on it, recording each verdict, signed
with the pipeline's key, against the model's key (on its MLflow run) under the policy of the
`gates` resource."""

import dagster as dg

from insurance_pipeline.core.gates.registry import (
    GATES,
    Gate,
    GateRegistry,
    champion_of,
    evidence_figures,
)
from insurance_pipeline.core.gates.verdicts import Verdict, VerdictLedger
from insurance_pipeline.resources import GatesResource, MlflowResource, TrustResource


def _result(gate: Gate, asset: str, verdict: Verdict, evidence) -> dg.AssetCheckResult:
    """The verdict, with the evidence's figures as numeric metadata (plotted across runs)."""
    figures = {
        name: dg.MetadataValue.float(v) if isinstance(v, float) else dg.MetadataValue.int(v)
        for name, v in evidence_figures(evidence).items()
    }
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=gate.check,
        passed=verdict.passed,
        description=verdict.message,
        metadata={
            "model_key": verdict.model_key,
            "parameters": dg.MetadataValue.json(verdict.parameters),
            "verdict_tag": verdict.tag,
            **figures,
        },
    )


def _checks_on(asset: str, judged: tuple[Gate, ...]) -> dg.AssetChecksDefinition:
    @dg.multi_asset_check(
        name=f"{asset}_gates",
        specs=[
            dg.AssetCheckSpec(g.check, asset=asset, blocking=True, description=g.description)
            for g in judged
        ],
        ins={"evidence": dg.AssetIn(key=asset)},
    )
    def judge_gates(evidence, gates: GatesResource, mlflow: MlflowResource, trust: TrustResource):
        policy = gates.policy()
        ledger = VerdictLedger(mlflow, trust.signer(), trust.verifier())
        for gate in judged:
            verdict = Verdict.judged(gate, evidence, policy, champion_of(evidence))
            ledger.record(verdict)
            yield _result(gate, asset, verdict, evidence)

    return judge_gates


def gate_checks(registry: GateRegistry = GATES) -> list[dg.AssetChecksDefinition]:
    return [_checks_on(asset, judged) for asset, judged in registry.checked_by_asset().items()]


@dg.definitions
def gate_check_definitions() -> dg.Definitions:
    return dg.Definitions(asset_checks=gate_checks())
