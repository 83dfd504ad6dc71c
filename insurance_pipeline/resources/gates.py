from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field, model_validator

from insurance_pipeline.core.gates.policy import RANGES, GatePolicy, PolicyError

_DEFAULT = GatePolicy()


def _setting(name: str, description: str):
    low, high, _ = RANGES[name]
    return Field(
        default=getattr(_DEFAULT, name), description=f"{description} ({low:g} to {high:g})"
    )


class GatesResource(ConfigurableResource):
    """The gate policy, read by every gate and by registration in the same run, so a run
    that registers judges under exactly the thresholds it was given
    (run config `resources: {gates: {config: {...}}}`; `make run ARGS="--r2-floor 0.85"`).
    The Definitions start it at this environment's policy (INSURANCE_GATE_*). A value
    outside its range (`core.gates.policy.RANGES`) fails the run before any step runs, naming
    the setting; so does, in `production`, any value weaker than the environment's policy:
    run config may only tighten a gate there."""

    r2_floor: float = _setting("r2_floor", "holdout r2 must reach this")
    r2_tolerance: float = _setting("r2_tolerance", "allowed r2 drop vs the champion")
    mae_tolerance: float = _setting("mae_tolerance", "allowed relative MAE rise vs champion")
    coverage_low: float = _setting("coverage_low", "lowest holdout interval coverage")
    coverage_high: float = _setting("coverage_high", "highest holdout interval coverage")

    @classmethod
    def from_settings(cls) -> GatesResource:
        """At this environment's policy (INSURANCE_GATE_*)."""
        from dataclasses import asdict

        from insurance_pipeline.settings import environment_policy

        return cls(**asdict(environment_policy()))

    @model_validator(mode="after")
    def _valid_policy(self):
        from insurance_pipeline.settings import required_policy

        try:
            policy = self.policy()  # the policy's own checks: each range, low < high
            floor = required_policy()
        except PolicyError as error:
            raise ValueError(str(error)) from None
        weaker = policy.weaker_than(floor) if floor is not None else []
        if weaker:
            raise ValueError(
                "gates: run config may only tighten this production deployment's policy "
                "(INSURANCE_GATE_*); weaker: " + ", ".join(weaker)
            )
        return self

    def policy(self) -> GatePolicy:
        return GatePolicy(
            r2_floor=self.r2_floor,
            r2_tolerance=self.r2_tolerance,
            mae_tolerance=self.mae_tolerance,
            coverage_low=self.coverage_low,
            coverage_high=self.coverage_high,
        )
