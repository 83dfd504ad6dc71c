"""Holdout metrics per segment (smoker, region, sex) with bootstrap 95 % intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd

from insurance_pipeline.core.modeling.bootstrap import paired_percentile_interval
from insurance_pipeline.core.modeling.metrics import Estimate, SegmentMetrics
from insurance_pipeline.domain.schema import SEGMENT_COLUMNS


def _scores(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
    """[r2, mae, rmse] along `axis` (scipy passes resamples x rows)."""
    residual = y - p
    sse = (residual**2).sum(axis=axis)
    sst = ((y - y.mean(axis=axis, keepdims=True)) ** 2).sum(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(sst > 0, 1 - sse / sst, np.nan)
    return np.stack([r2, np.abs(residual).mean(axis=axis), np.sqrt((residual**2).mean(axis=axis))])


def bootstrap_metrics(
    y_true, y_pred, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, Estimate]:
    """r2, mae and rmse, each with its paired percentile bootstrap interval at `level`
    (resampling rows with both their truth and prediction)."""
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    point = _scores(y, p)
    low, high = paired_percentile_interval(
        (y, p), _scores, n_resamples=n_boot, seed=seed, level=level
    )
    return {
        name: Estimate(float(point[k]), float(low[k]), float(high[k]))
        for k, name in enumerate(("r2", "mae", "rmse"))
    }


def segment_metrics(
    rows: pd.DataFrame, y_true, y_pred, *, n_boot: int = 1000, seed: int = 0
) -> list[SegmentMetrics]:
    """One entry per segment: all rows, then each value of smoker, region and sex."""
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    segments = [("all", "all", np.ones(len(rows), dtype=bool))]
    for column in SEGMENT_COLUMNS:
        for value in sorted(rows[column].unique()):
            segments.append((column, str(value), (rows[column] == value).to_numpy()))
    results = []
    for column, value, mask in segments:
        if mask.sum() < 2:
            continue
        results.append(
            SegmentMetrics(
                segment=column,
                value=value,
                n=int(mask.sum()),
                **bootstrap_metrics(y[mask], p[mask], n_boot=n_boot, seed=seed),
            )
        )
    return results


def segment_table_html(results: list[SegmentMetrics]) -> str:
    def cell(m: Estimate):
        fmt = "{:.3f}" if abs(m.value) < 10 else "{:,.0f}"
        return (
            f"{fmt.format(m.value)} <small>[{fmt.format(m.ci_low)}, "
            f"{fmt.format(m.ci_high)}]</small>"
        )

    rows = "".join(
        f"<tr><td>{r.segment}</td><td>{r.value}</td><td>{r.n}</td>"
        f"<td>{cell(r.r2)}</td><td>{cell(r.mae)}</td><td>{cell(r.rmse)}</td></tr>"
        for r in results
    )
    return (
        "<p>Point estimate with a bootstrap 95 % interval (1,000 resamples of the segment's "
        "rows).</p><table><tr><th>segment</th><th>value</th><th>rows</th><th>r²</th>"
        f"<th>MAE</th><th>RMSE</th></tr>{rows}</table>"
    )
