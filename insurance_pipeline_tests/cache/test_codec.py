"""Values that are data round-trip through formats that cannot run code."""

import json

import numpy as np
import pytest

from insurance_pipeline.cache.codec import decode, encode
from insurance_pipeline.core.data.profile import DataProfile
from insurance_pipeline.core.modeling.challenger import ChampionComparison, PairedDifferences
from insurance_pipeline.core.modeling.metrics import (
    Estimate,
    HoldoutEvaluation,
    IntervalEvaluation,
    SegmentMetrics,
    regression_metrics,
)
from insurance_pipeline.core.modeling.report import ValidationReport

pytestmark = pytest.mark.pure


def evaluation() -> HoldoutEvaluation:
    metrics = regression_metrics([1.0, 2.0, 3.0], [1.1, np.nan, 2.9])
    e = Estimate(0.5, 0.4, float("nan"))
    return HoldoutEvaluation(
        "k",
        "d" * 64,
        metrics,
        [SegmentMetrics("smoker", "yes", 2, e, e, e)],
        268,
        IntervalEvaluation(0.9, 0.91, 10.0, 9.0, {"smoker=yes": 0.9}, 0.9, 12.0),
    )


VALUES = {
    "evaluation": evaluation(),
    "comparison": ChampionComparison(
        "k", "d", 3, "c", None, None, 5, PairedDifferences(Estimate(1, 0, 2), Estimate(0, -1, 1), 5)
    ),
    "report": ValidationReport("<html></html>", {"residuals": b"\x89PNG\x00"}),
    "profile": DataProfile("<html>", 3, 7, 1, 0, ("alert one", "alert two")),
    "plain": {"a": (1, 2.5, "x"), "b": [None, True], "c": np.arange(4, dtype=np.int64)},
}


@pytest.mark.parametrize("name", sorted(VALUES))
def test_data_round_trips_as_json(name):
    fmt, data = encode(VALUES[name])
    assert fmt == "json"
    again = decode(fmt, data)
    assert repr(again) == repr(VALUES[name]) or name == "plain"
    if name == "plain":
        assert again["a"] == (1, 2.5, "x") and again["b"] == [None, True]
        np.testing.assert_array_equal(again["c"], np.arange(4))


def test_only_the_allowed_dataclasses_are_built():
    tree = {"__type__": "os:system", "fields": {"command": "touch /tmp/pwned"}}
    with pytest.raises(ValueError, match="not a data type"):
        decode("json", json.dumps(tree).encode())


def test_a_value_of_an_unknown_type_is_refused_naming_it():
    """A new dataclass is never silently stored as a pickle."""
    import dataclasses

    from insurance_pipeline.cache.codec import UnknownValue

    @dataclasses.dataclass
    class Forgotten:
        score: float

    with pytest.raises(UnknownValue, match=r"cannot store a .*:.*Forgotten .*DATA_TYPES"):
        encode(Forgotten(0.9))
    with pytest.raises(UnknownValue, match="set"):
        encode({"a": {1, 2}})  # not data, holds no estimator


def test_fitted_estimators_and_the_listed_values_holding_them_are_pickled():
    from sklearn.linear_model import LinearRegression

    from insurance_pipeline.cache.codec import ESTIMATOR_TYPES

    fitted = LinearRegression().fit([[0.0], [1.0]], [0.0, 2.0])
    fmt, data = encode(fitted)
    assert fmt == "pickle" and decode(fmt, data).coef_[0] == pytest.approx(2.0)
    assert "insurance_pipeline.core.modeling.model:TrainedModel" in ESTIMATOR_TYPES
