"""The data profile: every row while they are few, a seeded sample above the cap (the report
says so), the counts always of every row."""

import pytest

from insurance_pipeline.core.data.contract import to_typed_frame
from insurance_pipeline.core.data.profile import profile

pytestmark = pytest.mark.pure


def test_above_the_cap_the_report_describes_a_seeded_sample(insurance_frame):
    typed = to_typed_frame(insurance_frame)
    whole = profile(typed)
    assert whole.profiled_rows == whole.rows == len(typed)
    sampled = profile(typed, max_rows=300)
    assert sampled.profiled_rows == 300 and sampled.rows == len(typed)
    assert sampled.duplicate_rows == whole.duplicate_rows  # counted over every row
    assert "a seeded sample of 300 of 1,338 rows" in sampled.html
    assert "a seeded sample" not in whole.html


def test_the_report_has_the_originals_title_and_three_correlation_matrices(insurance_frame):
    found = profile(insurance_frame.head(300))
    assert found.correlations == ("kendall", "pearson", "spearman")
    assert "<title>Insurance Dataset Profile Report</title>" in found.html
    for name in ("Pearson", "Spearman", "Kendall"):
        assert name in found.html
