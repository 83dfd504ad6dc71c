"""Verdicts: what a gate decided, for which model, on which data, under which parameters.

A verdict belongs to the model, not to the run that happened to judge it: it records the model
key, the data version the model was trained on and the exact policy parameters it was judged
under. It is stored on the model's record (its MLflow run) as a tag named after the gate and
the parameters, through any `TagStore`, as a statement signed with the pipeline's key; a
verdict judged under other parameters never counts, and one whose signature does not verify
under a trusted key counts as missing (it is judged again, never believed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from insurance_pipeline.core.gates.policy import ChampionRef, GatePolicy
from insurance_pipeline.core.gates.registry import Gate
from insurance_pipeline.core.trust.keys import Signer, Verifier
from insurance_pipeline.core.trust.statements import (
    UntrustedStatement,
    open_statement,
    sign_statement,
)

STATEMENT = "verdict"

VERDICT_TAG_PREFIX = "verdict."


def canonical(parameters: Mapping[str, Any]) -> str:
    return json.dumps(dict(parameters), sort_keys=True, separators=(",", ":"))


def parameters_id(parameters: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(parameters).encode()).hexdigest()[:12]


def verdict_tag(gate: str, parameters: Mapping[str, Any]) -> str:
    return f"{VERDICT_TAG_PREFIX}{gate}.{parameters_id(parameters)}"


@dataclass(frozen=True)
class Verdict:
    gate: str
    passed: bool
    message: str
    model_key: str
    data_version: str
    parameters: str  # canonical JSON of the gate's parameters at judgement time

    @classmethod
    def judged(
        cls, gate: Gate, evidence, policy: GatePolicy, champion: ChampionRef | None = None
    ) -> Verdict:
        """`gate`'s judge applied to `evidence` (which names its model and data)."""
        judgement = gate.judge(evidence, policy)
        return cls(
            gate=gate.name,
            passed=judgement.passed,
            message=judgement.message,
            model_key=evidence.model_key,
            data_version=evidence.data_version,
            parameters=canonical(gate.parameters(policy, champion)),
        )

    @property
    def tag(self) -> str:
        return verdict_tag(self.gate, json.loads(self.parameters))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Verdict:
        return cls(**json.loads(text))


class TagStore(Protocol):
    """Where a model's record keeps its tags (the MLflow resource: the model's run)."""

    def model_tags(self, model_key: str) -> Mapping[str, str]: ...

    def set_model_tag(self, model_key: str, key: str, value: str) -> None: ...


class VerdictLedger:
    """Verdicts recorded on models, through a `TagStore`, signed and verified."""

    def __init__(self, store: TagStore, signer: Signer | None, verifier: Verifier):
        self.store, self.signer, self.verifier = store, signer, verifier
        self.refused: list[str] = []  # why each unbelievable verdict tag was ignored

    def record(self, verdict: Verdict) -> None:
        """Idempotent: the same gate and parameters keep the latest judgement."""
        statement = sign_statement(STATEMENT, asdict(verdict), self.signer)
        self.store.set_model_tag(verdict.model_key, verdict.tag, statement)

    def recorded(self, model_key: str) -> dict[str, Verdict]:
        """Every verdict of the model a trusted key signed for that model and tag; any other
        counts as missing (and is listed in `refused`)."""
        found = {}
        for name, value in self.store.model_tags(model_key).items():
            if not name.startswith(VERDICT_TAG_PREFIX):
                continue
            try:
                verdict = Verdict(**open_statement(value, STATEMENT, self.verifier))
            except (UntrustedStatement, TypeError) as error:
                self.refused.append(f"{name}: {error}")
                continue
            if verdict.model_key != model_key or verdict.tag != name:
                self.refused.append(f"{name}: signed for {verdict.model_key} as {verdict.tag}")
                continue
            found[name] = verdict
        return found


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
    """Every gate in `required` (gate -> its parameters) must have a passing verdict for this
    model key and data version under exactly those parameters."""
    verdicts, problems = [], []
    for gate, wanted in required.items():
        verdict = found.get(gate)
        if verdict is None or verdict.parameters != canonical(wanted):
            problems.append(f"{gate}: no verdict for this model under parameters {dict(wanted)}")
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
