import numpy as np
import pandas as pd
import pytest

from insurance_pipeline.core.modeling.segments import bootstrap_metrics, segment_metrics

pytestmark = pytest.mark.pure


def test_bootstrap_interval_brackets_the_point_estimate_and_is_reproducible():
    rng = np.random.default_rng(1)
    y = rng.normal(10000, 3000, 300)
    p = y + rng.normal(0, 1000, 300)
    a = bootstrap_metrics(y, p, n_boot=500, seed=3)
    b = bootstrap_metrics(y, p, n_boot=500, seed=3)
    assert a == b
    for name in ("r2", "mae", "rmse"):
        assert a[name].ci_low <= a[name].value <= a[name].ci_high
    assert a["mae"].value == pytest.approx(np.abs(y - p).mean())
    assert 700 < a["mae"].ci_low < a["mae"].ci_high < 950


def test_segments_cover_every_value_of_smoker_region_and_sex(insurance_frame):
    rows = insurance_frame.head(400)
    y = rows["charges"].to_numpy()
    found = segment_metrics(rows, y, y * 1.1, n_boot=100)
    keys = [(s.segment, s.value) for s in found]
    assert keys[0] == ("all", "all")
    assert set(keys[1:]) == {
        ("smoker", "no"),
        ("smoker", "yes"),
        ("region", "northeast"),
        ("region", "northwest"),
        ("region", "southeast"),
        ("region", "southwest"),
        ("sex", "female"),
        ("sex", "male"),
    }
    smokers = next(s for s in found if s.segment == "smoker" and s.value == "yes")
    mask = (rows["smoker"] == "yes").to_numpy()
    assert smokers.n == mask.sum()
    assert smokers.mae.value == pytest.approx(np.abs(0.1 * y[mask]).mean())
    assert isinstance(found, list) and isinstance(pd.DataFrame(found), pd.DataFrame)
