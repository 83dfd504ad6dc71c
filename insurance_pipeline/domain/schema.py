"""The insurance table's domain facts: columns, categories and numeric bounds.

Plain Python (no pandas), so that the data contract, the feature transformer and the model
service all read them from here: each fact has this one owner.
"""

from __future__ import annotations

from dataclasses import dataclass

# The registered model's name: the MLflow registry, the service's paths and its records.
MODEL_NAME = "insurance_charges_model"
# How the service describes it (the original's display name and description).
MODEL_DISPLAY_NAME = "Insurance Charges Model"
MODEL_DESCRIPTION = "Model to predict the insurance charges of a customer."
# Its aliases in the registry: what passed every gate, and what the cluster serves.
CHAMPION_ALIAS, DEPLOYED_ALIAS = "champion", "deployed"

FEATURE_COLUMNS = ("age", "sex", "bmi", "children", "smoker", "region")
TARGET_COLUMN = "charges"
REQUIRED_COLUMNS = (*FEATURE_COLUMNS, TARGET_COLUMN)
NUMERIC_FEATURES = ("age", "bmi", "children")

CATEGORIES: dict[str, tuple[str, ...]] = {
    "sex": ("female", "male"),
    "smoker": ("no", "yes"),
    "region": ("northeast", "northwest", "southeast", "southwest"),
}
# The groups whose metrics and interval coverage are reported separately.
SEGMENT_COLUMNS = ("smoker", "region", "sex")
# The service takes `smoker` as a boolean; the table spells it as a category.
SMOKER_CATEGORY = {True: "yes", False: "no"}


@dataclass(frozen=True)
class NumericRule:
    low: float | None = None  # inclusive
    high: float | None = None  # inclusive
    low_exclusive: bool = False
    integer: bool = False

    def describe(self) -> str:
        lo = "" if self.low is None else f"{'>' if self.low_exclusive else '>='} {self.low:g}"
        hi = "" if self.high is None else f"<= {self.high:g}"
        kind = "integer" if self.integer else "number"
        return f"{kind} {' and '.join(p for p in (lo, hi) if p)}".strip()


# What a row of the CSV may hold (the training data has 3 rows with bmi above 50).
NUMERIC_RULES: dict[str, NumericRule] = {
    "age": NumericRule(low=18, high=65, integer=True),
    "bmi": NumericRule(low=0, low_exclusive=True),
    "children": NumericRule(low=0, integer=True),
    TARGET_COLUMN: NumericRule(low=0, low_exclusive=True),
}

# What the model service accepts: the original service's bounds.
SERVICE_RULES: dict[str, NumericRule] = {
    "age": NumericRule(low=18, high=65, integer=True),
    "bmi": NumericRule(low=15, high=50),
    "children": NumericRule(low=0, high=5, integer=True),
}
