import pytest

from insurance_pipeline.core.data.split import drop_exact_duplicates, expected_test_rows, split_rows

pytestmark = pytest.mark.pure


def test_the_one_duplicate_is_dropped_and_cannot_straddle(insurance_frame):
    unique, dropped = drop_exact_duplicates(insurance_frame)
    assert dropped == 1 and len(unique) == 1337
    split = split_rows(insurance_frame, seed=42, test_fraction=0.2)
    assert len(split.train) + len(split.test) == 1337
    assert len(split.test) == expected_test_rows(1337, 0.2) == 268
    assert set(split.train.index).isdisjoint(split.test.index)
    # no row content appears on both sides
    train_rows = set(map(tuple, split.train.itertuples(index=False)))
    assert not any(tuple(r) in train_rows for r in split.test.itertuples(index=False))


def test_seed_decides_the_split(insurance_frame):
    a = split_rows(insurance_frame, seed=1, test_fraction=0.2)
    b = split_rows(insurance_frame, seed=1, test_fraction=0.2)
    c = split_rows(insurance_frame, seed=2, test_fraction=0.2)
    assert list(a.test.index) == list(b.test.index)
    assert list(a.test.index) != list(c.test.index)


def test_bad_fraction_is_refused(insurance_frame):
    with pytest.raises(ValueError, match="test_fraction"):
        split_rows(insurance_frame, seed=1, test_fraction=1.5)
