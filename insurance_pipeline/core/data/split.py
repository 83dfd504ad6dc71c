"""Deduplication and the seeded train/test split."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from sklearn.model_selection import train_test_split


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    test: pd.DataFrame
    duplicates_dropped: int
    seed: int
    test_fraction: float
    data_version: str = ""  # sha256 of the CSV the rows came from


def drop_exact_duplicates(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop exact duplicate rows, keeping the first.

    Why drop rather than keep: a copy in train and its twin in test would leak the answer
    into the holdout score. Dropping all copies but one makes that impossible by construction
    for any future file too. The shipped data has exactly one such pair (two identical rows).
    """
    duplicated = frame.duplicated(keep="first")
    return frame.loc[~duplicated], int(duplicated.sum())


def split_rows(
    frame: pd.DataFrame, *, seed: int, test_fraction: float, data_version: str = ""
) -> Split:
    """Seeded split of the deduplicated rows. Row ids (the frame index) are kept, so every
    model can record exactly which rows it trained on."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    unique, dropped = drop_exact_duplicates(frame)
    train, test = train_test_split(unique, test_size=test_fraction, random_state=seed, shuffle=True)
    return Split(
        train=train.sort_index(),
        test=test.sort_index(),
        duplicates_dropped=dropped,
        seed=seed,
        test_fraction=test_fraction,
        data_version=data_version,
    )


def expected_test_rows(n_rows: int, test_fraction: float) -> int:
    """What scikit-learn's train_test_split gives for a float test size: ceil(n * fraction)."""
    return math.ceil(n_rows * test_fraction)
