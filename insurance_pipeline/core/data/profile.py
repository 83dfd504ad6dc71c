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


def profile(typed: pd.DataFrame, title: str = "Insurance data profile") -> DataProfile:
    from ydata_profiling import ProfileReport

    report = ProfileReport(typed, title=title, progress_bar=False)
    description = report.get_description()
    return DataProfile(
        html=report.to_html(),
        rows=int(typed.shape[0]),
        variables=int(typed.shape[1]),
        duplicate_rows=int(typed.duplicated().sum()),
        missing_cells=int(typed.isna().sum().sum()),
        alerts=tuple(str(a) for a in description.alerts),
    )
