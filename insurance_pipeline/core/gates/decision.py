"""Registration's decision and the deployers' re-check, as pure functions over evidence.

- `decide`: for each gate of the registry, the verdict recorded for this model under this
  run's parameters, or, where none exists and the gate's evidence is at hand, one judged now
  (returned to be recorded). One failed or missing gate refuses the model.
- `version_approval`: a registered version is deployable only when registration approved
  it (its approval names every gate's parameters) and every verdict it names is recorded and
  passed for its model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from insurance_pipeline.core.gates.policy import ChampionRef, GatePolicy
from insurance_pipeline.core.gates.registry import GATES, GateRegistry
from insurance_pipeline.core.gates.verdicts import Approval, Verdict, approval, verdict_tag


@dataclass(frozen=True)
class Decision:
    approval: Approval
    judged_now: tuple[Verdict, ...]  # verdicts that were missing and were judged: record them
    required: dict[str, dict[str, Any]]  # gate -> the parameters it was decided under

    @property
    def approved(self) -> bool:
        return self.approval.approved


def decide(
    *,
    model_key: str,
    data_version: str,
    policy: GatePolicy,
    champion: ChampionRef | None,
    recorded: Mapping[str, Verdict],
    evidence: Mapping[type, Callable[[], Any]],
    registry: GateRegistry = GATES,
) -> Decision:
    """`evidence` maps an evidence type to a function returning it; it is called only for a
    gate whose verdict is missing. A gate whose evidence is not given stays missing."""
    required = registry.required_parameters(policy, champion)
    found: dict[str, Verdict | None] = {}
    judged = []
    for gate in registry:
        verdict = recorded.get(verdict_tag(gate.name, required[gate.name]))
        if verdict is None and gate.evidence in evidence:
            verdict = Verdict.judged(gate, evidence[gate.evidence](), policy, champion)
            judged.append(verdict)
        found[gate.name] = verdict
    decided = approval(found, model_key=model_key, data_version=data_version, required=required)
    return Decision(approval=decided, judged_now=tuple(judged), required=required)


def version_approval(
    *,
    version: str,
    model_key: str,
    data_version: str,
    approved_parameters: str | None,
    recorded: Mapping[str, Verdict],
    registry: GateRegistry = GATES,
) -> Approval:
    """Re-check a registered version: `approved_parameters` is what registration recorded on
    it (gate -> parameters, JSON); None means it was registered by another path."""
    approved = json.loads(approved_parameters or "{}")
    unapproved = [gate for gate in registry.names if gate not in approved]
    if unapproved or not model_key:
        return Approval(
            verdicts=(),
            problems=(
                f"version {version} was not approved by registration for "
                f"{', '.join(unapproved) or 'its model run'}",
            ),
        )
    by_gate = {gate: recorded.get(verdict_tag(gate, approved[gate])) for gate in registry.names}
    required = {gate: approved[gate] for gate in registry.names}
    return approval(by_gate, model_key=model_key, data_version=data_version, required=required)
