import numpy as np
import pytest

from insurance_pipeline.core.modeling.metrics import (
    finite_predictions_judgement,
    r2_judgement,
    regression_metrics,
    row_count_judgement,
)

pytestmark = pytest.mark.pure


def test_metrics_match_their_definitions():
    y = np.array([100.0, 200.0, 300.0, 400.0])
    p = np.array([110.0, 190.0, 330.0, 370.0])
    m = regression_metrics(y, p)
    assert m.mse == pytest.approx(np.mean((y - p) ** 2))
    assert m.rmse == pytest.approx(np.sqrt(m.mse))
    assert m.mae == pytest.approx(20.0)
    assert m.r2 == pytest.approx(1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2))
    assert m.n_rows == 4 and m.n_nonfinite_predictions == 0


def test_nonfinite_predictions_are_counted_and_gated():
    m = regression_metrics([1.0, 2.0, 3.0], [1.0, np.nan, -np.inf])
    assert m.n_nonfinite_predictions == 2 and m.n_negative_infinite_predictions == 1
    gate = finite_predictions_judgement(m)
    assert not gate.passed and "2 prediction(s)" in gate.message and "1 negative" in gate.message
    assert finite_predictions_judgement(regression_metrics([1.0, 2.0], [1.0, 2.0])).passed


def test_r2_gate_message_has_both_numbers():
    m = regression_metrics([1.0, 2.0, 3.0, 4.0], [1.5, 1.5, 3.5, 3.5])
    passed, failed = r2_judgement(m, 0.5), r2_judgement(m, 0.9)
    assert passed.passed and not failed.passed
    assert "0.8000" in failed.message and "0.9000" in failed.message


def test_row_count_judgement():
    assert row_count_judgement(268, 268).passed
    gate = row_count_judgement(267, 268)
    assert not gate.passed and "267" in gate.message and "268" in gate.message
