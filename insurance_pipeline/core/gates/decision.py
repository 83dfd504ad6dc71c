"""Registration's decision and the deployers' re-check, as pure functions over evidence.

- `decide`: for each gate of the registry, the verdict recorded for this model under this
  run's parameters, or, where none exists and the gate's evidence is at hand, one judged now
  (returned to be recorded). One failed or missing gate refuses the model.
- `approval_statement`: what registration signs for a version it approves: the model's name,
  version, run and key, its data, the policy, every verdict, and the sha256 of every file
  that will be served or unpickled.
- `version_approval`: a registered version is deployable only when that statement verifies
  under a trusted key, names this very version and run, holds a passing verdict of every gate
  of the registry, and (where a deployment asks) was approved under a policy no weaker than
  the deployment's own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from insurance_pipeline.core.gates.policy import ChampionRef, GatePolicy, PolicyError
from insurance_pipeline.core.gates.registry import GATES, GateRegistry
from insurance_pipeline.core.gates.verdicts import Approval, Verdict, approval, verdict_tag
from insurance_pipeline.core.trust.keys import Signer, Verifier
from insurance_pipeline.core.trust.statements import (
    UntrustedStatement,
    open_statement,
    sign_statement,
)

APPROVAL = "approval"


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


def approval_statement(
    decision: Decision,
    *,
    model_name: str,
    version: int,
    run_id: str,
    model_key: str,
    data_version: str,
    policy: GatePolicy,
    files: Mapping[str, str],
    signer: Signer,
) -> str:
    """The signed approval of an approved `decision` for one registered version."""
    verdicts = {v.gate: asdict(v) for v in decision.approval.verdicts}
    payload = {
        "model_name": model_name,
        "version": int(version),
        "run_id": run_id,
        "model_key": model_key,
        "data_version": data_version,
        "policy": asdict(policy),
        "parameters": decision.required,
        "verdicts": verdicts,
        "files": dict(files),
    }
    return sign_statement(APPROVAL, payload, signer)


@dataclass(frozen=True)
class VersionApproval:
    approval: Approval
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256, as signed
    model_key: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)  # gate -> parameters, as signed

    @property
    def approved(self) -> bool:
        return self.approval.approved

    def summary(self) -> str:
        return self.approval.summary()


def _refused(problem: str) -> VersionApproval:
    return VersionApproval(Approval(verdicts=(), problems=(problem,)))


def version_approval(
    *,
    statement: str | None,
    verifier: Verifier,
    model_name: str,
    version: int | str,
    run_id: str,
    registry: GateRegistry = GATES,
    required_policy: GatePolicy | None = None,
) -> VersionApproval:
    """Re-check a registered version from its signed approval (`statement`)."""
    try:
        payload = open_statement(statement, APPROVAL, verifier)
    except UntrustedStatement as error:
        return _refused(f"version {version} was not approved by registration: {error}")
    named = (payload.get("model_name"), payload.get("version"), payload.get("run_id"))
    if named != (model_name, int(version), run_id):
        return _refused(
            f"version {version}'s approval is for {named[0]} version {named[1]} (run "
            f"{named[2]}), not for {model_name} version {version} (run {run_id})"
        )
    parameters = payload.get("parameters", {})
    unapproved = [gate for gate in registry.names if gate not in parameters]
    if unapproved:
        return _refused(f"version {version} was approved without {', '.join(unapproved)}")
    found = {
        gate: Verdict(**payload["verdicts"][gate]) if gate in payload.get("verdicts", {}) else None
        for gate in registry.names
    }
    decided = approval(
        found,
        model_key=payload["model_key"],
        data_version=payload["data_version"],
        required={gate: parameters[gate] for gate in registry.names},
    )
    problems = list(decided.problems)
    if required_policy is not None:
        problems += _weaker(payload.get("policy", {}), required_policy, version)
    return VersionApproval(
        Approval(decided.verdicts, tuple(problems)),
        payload["files"],
        payload["model_key"],
        parameters,
    )


def _weaker(approved: Mapping[str, Any], required: GatePolicy, version) -> list[str]:
    try:
        weaker = GatePolicy(**approved).weaker_than(required)
    except (PolicyError, TypeError) as error:
        return [f"version {version} was approved under an unreadable policy: {error}"]
    if not weaker:
        return []
    return [
        f"version {version} was approved under weaker settings than this deployment's: "
        + ", ".join(weaker)
    ]
