"""The gate policy: every threshold the gates judge by, with one owner (Dagster resource
`gates`, run config `resources: {gates: {config: {...}}}`, `make run ARGS="--r2-floor …"`).
Thresholds are configuration, never data: a verdict records the ones it was judged under.
Each threshold has a range (`RANGES`); a policy outside it is refused naming the setting."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# setting -> (lowest, highest, "+" if a higher value is stricter, "-" if a lower one is)
RANGES: dict[str, tuple[float, float, str]] = {
    "r2_floor": (0.0, 1.0, "+"),
    "r2_tolerance": (0.0, 0.5, "-"),
    "mae_tolerance": (0.0, 1.0, "-"),
    "coverage_low": (0.0, 1.0, "+"),
    "coverage_high": (0.0, 1.0, "-"),
}


class PolicyError(ValueError):
    """A threshold outside its range; the message names the setting and the range."""


@dataclass(frozen=True)
class GatePolicy:
    r2_floor: float = 0.80  # holdout r2 must reach this
    r2_tolerance: float = 0.005  # challenger r2 >= champion r2 - r2_tolerance
    mae_tolerance: float = 0.02  # challenger MAE <= champion MAE * (1 + mae_tolerance)
    # Holdout coverage of the prediction interval must fall in [low, high]. Wide on purpose:
    # on 268 rows the coverage of a 90 % interval has a standard deviation of about 0.018.
    coverage_low: float = 0.80
    coverage_high: float = 0.97

    def __post_init__(self):
        for name, value in asdict(self).items():
            low, high, _ = RANGES[name]
            open_ends = name.startswith("coverage")  # a coverage bound of 0 or 1 means nothing
            inside = low < value < high if open_ends else low <= value <= high
            if not inside:
                brackets = ("(", ")") if open_ends else ("[", "]")
                raise PolicyError(
                    f"gate setting {name}={value} is outside its range "
                    f"{brackets[0]}{low:g}, {high:g}{brackets[1]}"
                )
        if not self.coverage_low < self.coverage_high:
            raise PolicyError(
                f"gate settings coverage_low={self.coverage_low} and coverage_high="
                f"{self.coverage_high}: the low bound must be below the high one"
            )

    def weaker_than(self, required: GatePolicy) -> list[str]:
        """Each setting where this policy lets through what `required` would not."""
        found = []
        for name, (_, _, stricter) in RANGES.items():
            mine, theirs = getattr(self, name), getattr(required, name)
            if (mine < theirs) if stricter == "+" else (mine > theirs):
                found.append(f"{name} {mine} (this deployment requires {theirs})")
        return found


@dataclass(frozen=True)
class ChampionRef:
    """The champion a challenger was (or must be) compared against."""

    version: int
    model_key: str
