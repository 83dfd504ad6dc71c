"""The data contract of the insurance table: one validation function over the facts in
`data.schema`, which also drive the service's input schema, so the two cannot drift apart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from insurance_pipeline.domain.schema import (  # noqa: F401 - re-exported for callers
    CATEGORIES,
    FEATURE_COLUMNS,
    NUMERIC_FEATURES,
    NUMERIC_RULES,
    REQUIRED_COLUMNS,
    TARGET_COLUMN,
    NumericRule,
)


class DataContractError(ValueError):
    """The CSV does not satisfy the contract; the message names the file and the fields."""


def read_insurance_csv(path) -> pd.DataFrame:
    """Read the CSV without coercing types, so the contract check can name what is wrong.

    An empty file becomes an empty frame (the contract reports it); a missing file raises.
    """
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=True, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def contract_violations(raw: pd.DataFrame) -> list[str]:
    """Every way `raw` (as read, all strings) breaks the contract; empty means it conforms."""
    if raw.shape[0] == 0 or raw.shape[1] == 0:
        return ["file is empty: no header or no data rows"]
    problems: list[str] = []
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        problems.append(f"missing required column(s): {', '.join(missing)}")
    for column, rule in NUMERIC_RULES.items():
        if column not in raw.columns:
            continue
        problems.extend(_numeric_violations(column, raw[column], rule))
    for column, allowed in CATEGORIES.items():
        if column not in raw.columns:
            continue
        values = raw[column]
        if values.isna().any():
            problems.append(f"column '{column}': {int(values.isna().sum())} missing value(s)")
        bad = sorted(set(values.dropna().str.strip()) - set(allowed))
        if bad:
            problems.append(
                f"column '{column}': unexpected value(s) {bad[:5]} (allowed: {', '.join(allowed)})"
            )
    return problems


def _numeric_violations(column: str, values: pd.Series, rule: NumericRule) -> list[str]:
    problems = []
    missing = values.isna()
    if missing.any():
        problems.append(f"column '{column}': {int(missing.sum())} missing value(s)")
    numbers = pd.to_numeric(values, errors="coerce")
    not_numeric = numbers.isna() & ~missing
    if not_numeric.any():
        examples = values[not_numeric].head(3).tolist()
        rows = (values.index[not_numeric][:3] + 2).tolist()  # +2: header line, 1-based
        problems.append(
            f"column '{column}': {int(not_numeric.sum())} non-numeric value(s), "
            f"e.g. {examples} on line(s) {rows}"
        )
    present = numbers.dropna()
    if not np.isfinite(present).all():
        problems.append(f"column '{column}': infinite value(s)")
        present = present[np.isfinite(present)]
    if rule.integer and (present != np.round(present)).any():
        problems.append(f"column '{column}': non-integer value(s); expected {rule.describe()}")
    out_of_range = pd.Series(False, index=present.index)
    if rule.low is not None:
        out_of_range |= present <= rule.low if rule.low_exclusive else present < rule.low
    if rule.high is not None:
        out_of_range |= present > rule.high
    if out_of_range.any():
        problems.append(
            f"column '{column}': {int(out_of_range.sum())} value(s) out of range "
            f"(e.g. {present[out_of_range].head(3).tolist()}); expected {rule.describe()}"
        )
    return problems


def to_typed_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """Typed copy of a conforming raw frame: numbers as numbers, categories stripped."""
    problems = contract_violations(raw)
    if problems:
        raise DataContractError("; ".join(problems))
    typed = raw[list(REQUIRED_COLUMNS)].copy()
    for column in ("age", "children"):
        typed[column] = pd.to_numeric(typed[column]).astype("int64")
    for column in ("bmi", TARGET_COLUMN):
        typed[column] = pd.to_numeric(typed[column]).astype("float64")
    for column in CATEGORIES:
        typed[column] = typed[column].str.strip()
    return typed.reset_index(drop=True)
