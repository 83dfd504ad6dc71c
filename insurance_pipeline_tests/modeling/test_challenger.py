from insurance_pipeline.modeling.challenger import Tolerance, challenger_gate, eligible_rows
from insurance_pipeline.modeling.metrics import RegressionMetrics


def metrics(r2, mae, n=50):
    return RegressionMetrics(
        r2=r2,
        mse=1.0,
        rmse=1.0,
        mae=mae,
        n_rows=n,
        n_nonfinite_predictions=0,
        n_negative_infinite_predictions=0,
    )


def test_only_rows_the_champion_never_saw_are_eligible():
    assert eligible_rows([1, 2, 3, 4], [2, 4, 9]) == [1, 3]


def test_no_champion_passes():
    gate = challenger_gate(None, None, Tolerance(), None)
    assert gate.passed and "no other champion" in gate.message


def test_within_tolerance_passes_and_beyond_fails_with_both_numbers():
    champion = metrics(0.86, 2000.0)
    assert challenger_gate(metrics(0.8551, 2039.0), champion, Tolerance(), 4).passed
    worse_r2 = challenger_gate(metrics(0.8549, 1900.0), champion, Tolerance(), 4)
    assert not worse_r2.passed
    assert "0.8549" in worse_r2.message and "0.8600" in worse_r2.message
    worse_mae = challenger_gate(metrics(0.87, 2041.0), champion, Tolerance(), 4)
    assert (
        not worse_mae.passed and "2,041.0" in worse_mae.message and "2,000.0" in worse_mae.message
    )
    assert "champion v4" in worse_mae.message


def test_nothing_to_compare_on_fails_clearly():
    gate = challenger_gate(None, None, Tolerance(), 2)
    assert not gate.passed and "fewer than 2 rows" in gate.message
