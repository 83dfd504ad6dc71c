"""The data profile (ydata-profiling) as one typed value: the HTML report and its summary."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class DataProfile:
    html: str
    rows: int
    variables: int
    duplicate_rows: int
    missing_cells: int
    alerts: tuple[str, ...]
    correlations: tuple[str, ...] = ()  # the matrices the report shows
    profiled_rows: int = 0  # the rows the report describes (a seeded sample above the cap)


# Above this many rows the report describes a seeded sample of this size (ydata-profiling's
# cost grows with the rows: 18.5 s at 1,000,000 against 3.2 s at 1,338); the counts of rows,
# duplicates and missing cells are still of every row.
PROFILE_MAX_ROWS = 100_000

# The original's report: its title and its three correlation matrices (ydata-profiling's
# "auto" matrix, the default, is not among them).
PROFILE_TITLE = "Insurance Dataset Profile Report"
CORRELATIONS = ("pearson", "spearman", "kendall")


def profile(
    typed: pd.DataFrame,
    title: str = PROFILE_TITLE,
    max_rows: int = PROFILE_MAX_ROWS,
    seed: int = 0,
) -> DataProfile:
    from ydata_profiling import ProfileReport

    described = typed if len(typed) <= max_rows else typed.sample(max_rows, random_state=seed)
    if len(described) < len(typed):
        title = f"{title} (a seeded sample of {len(described):,} of {len(typed):,} rows)"
    correlations = {"auto": {"calculate": False}} | {
        name: {"calculate": True} for name in CORRELATIONS
    }
    report = ProfileReport(described, title=title, progress_bar=False, correlations=correlations)
    description = report.get_description()
    return DataProfile(
        html=report.to_html(),
        rows=int(typed.shape[0]),
        variables=int(typed.shape[1]),
        duplicate_rows=int(typed.duplicated().sum()),
        missing_cells=int(typed.isna().sum().sum()),
        alerts=tuple(str(a) for a in description.alerts),
        correlations=tuple(sorted(description.correlations)),
        profiled_rows=len(described),
    )
