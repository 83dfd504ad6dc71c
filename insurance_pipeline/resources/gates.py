from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from insurance_pipeline.core.gates.policy import GatePolicy

_DEFAULT = GatePolicy()


class GatesResource(ConfigurableResource):
    """The gate policy, read by every gate and by registration in the same run, so a run
    that registers judges under exactly the thresholds it was given
    (run config `resources: {gates: {config: {...}}}`; `make run ARGS="--r2-floor 0.85"`)."""

    r2_floor: float = Field(default=_DEFAULT.r2_floor, description="holdout r2 must reach this")
    r2_tolerance: float = Field(
        default=_DEFAULT.r2_tolerance, ge=0, description="allowed r2 drop vs the champion"
    )
    mae_tolerance: float = Field(
        default=_DEFAULT.mae_tolerance, ge=0, description="allowed relative MAE rise vs champion"
    )
    coverage_low: float = Field(
        default=_DEFAULT.coverage_low, ge=0, le=1, description="lowest holdout interval coverage"
    )
    coverage_high: float = Field(
        default=_DEFAULT.coverage_high, ge=0, le=1, description="highest holdout interval coverage"
    )

    def policy(self) -> GatePolicy:
        return GatePolicy(
            r2_floor=self.r2_floor,
            r2_tolerance=self.r2_tolerance,
            mae_tolerance=self.mae_tolerance,
            coverage_low=self.coverage_low,
            coverage_high=self.coverage_high,
        )
