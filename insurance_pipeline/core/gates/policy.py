"""The gate policy: every threshold the gates judge by, with one owner (Dagster resource
`gates`, run config `resources: {gates: {config: {...}}}`, `make run ARGS="--r2-floor …"`).
Thresholds are configuration, never data: a verdict records the ones it was judged under."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GatePolicy:
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
