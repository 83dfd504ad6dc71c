"""A legitimate retrain is not rejected by chance: the same search on the same data plus a few
new rows passes the paired champion/challenger comparison and becomes the champion."""

import pandas as pd
import pytest

from insurance_pipeline_tests.helpers import (
    materialize,
    metadata_by_asset,
    registry_state,
    tiny_run_config,
)

pytestmark = pytest.mark.dagster

GATES = {"r2_floor": 0.5}


@pytest.fixture(scope="module")
def champion(workspace):
    assert materialize(tiny_run_config(gates=GATES)).success
    assert registry_state() == ([1], 1)
    return workspace


def test_retraining_on_the_data_plus_a_few_new_rows_is_accepted(champion):
    frame = pd.read_csv(champion.csv)
    new_rows = frame.sample(30, random_state=0).assign(
        bmi=lambda f: f["bmi"] + 0.5, charges=lambda f: f["charges"] * 1.02
    )
    pd.concat([frame, new_rows], ignore_index=True).to_csv(champion.csv, index=False)
    result = materialize(tiny_run_config(gates=GATES))
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    verdict = checks["challenger_not_worse"]
    assert verdict.passed, verdict.description
    assert "difference MAE" in verdict.description and "vs champion v1" in verdict.description
    meta = metadata_by_asset(result)["champion_comparison"]
    assert meta["rows_compared"] == 1337 + 30  # every row the data holds, both models
    low, high = meta["mae_difference_95"]
    assert low <= high  # (the same spec refitted on the same folds differs by exactly 0)
    assert result.success
    assert registry_state() == ([1, 2], 2)
