"""Percentile bootstrap intervals in bounded memory: scipy.stats.bootstrap evaluates the
resamples in batches, never an index matrix of all resamples x rows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# Resamples evaluated per vectorized call: about this many floats per array, whatever the rows.
BATCH_ELEMENTS = 2_000_000


def bootstrap_batch(n_rows: int) -> int:
    """How many resamples scipy evaluates at once for `n_rows` rows."""
    return max(1, BATCH_ELEMENTS // max(n_rows, 1))


def paired_percentile_interval(
    data: tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray],
    *,
    n_resamples: int,
    seed: int,
    level: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of a vector-valued `statistic(*data, axis=-1)`, rows resampled together."""
    from scipy.stats import bootstrap

    found = bootstrap(
        data,
        statistic,
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        batch=bootstrap_batch(len(data[0])),
        confidence_level=level,
        method="percentile",
        random_state=np.random.default_rng(seed),
    ).confidence_interval
    return np.asarray(found.low), np.asarray(found.high)
