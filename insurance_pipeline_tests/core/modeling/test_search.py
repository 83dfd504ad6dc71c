import pytest

from insurance_pipeline.core.data.split import split_rows
from insurance_pipeline.core.features.transformer import fit_feature_transformer
from insurance_pipeline.core.modeling.search import SearchBudget, run_search
from insurance_pipeline.domain.schema import FEATURE_COLUMNS, TARGET_COLUMN
from insurance_pipeline_tests.helpers import TINY_SEARCH

pytestmark = pytest.mark.pure


def test_budget_is_validated():
    with pytest.raises(ValueError, match="search_space"):
        SearchBudget(search_space="everything")
    with pytest.raises(ValueError, match="'cv'"):
        SearchBudget(cv=1)


@pytest.fixture(scope="module")
def training_data(insurance_frame):
    split = split_rows(insurance_frame, seed=42, test_fraction=0.2)
    transformer = fit_feature_transformer(split.train[list(FEATURE_COLUMNS)])
    return transformer.transform(split.train[list(FEATURE_COLUMNS)]), split.train[TARGET_COLUMN]


def test_same_seed_and_generation_budget_choose_the_same_pipeline(training_data):
    X, y = training_data
    budget = SearchBudget(**TINY_SEARCH, random_state=7)
    progress: list[str] = []
    first = run_search(X, y, budget, progress=progress.append)
    second = run_search(X, y, budget, progress=lambda line: None)
    assert first.description == second.description
    assert first.cv_score == pytest.approx(second.cv_score)
    assert 0 < first.cv_score < 1  # r2 - MAE/100000
    assert any(line.startswith("Generation") for line in progress), progress
    assert first.pipeline.predict(X[:5]).shape == (5,)


def test_search_runs_on_an_existing_dask_cluster_by_address(training_data):
    from distributed import LocalCluster

    X, y = training_data
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        budget = SearchBudget(
            **{**TINY_SEARCH, "n_jobs": 1}, scheduler_address=cluster.scheduler_address
        )
        lines: list[str] = []
        before = cluster.scheduler.transition_counter
        found = run_search(X, y, budget, progress=lines.append)
        assert f"searching on the dask cluster at {cluster.scheduler_address}" in lines
        # the scheduler of *this* cluster ran the evaluations
        assert cluster.scheduler.transition_counter > before + 10
        assert cluster.status.name == "running"  # the search did not shut it down
    assert found.pipeline.predict(X[:3]).shape == (3,)


def test_a_search_sample_keeps_the_segments_in_proportion(insurance_frame):
    import numpy as np

    from insurance_pipeline.core.modeling.search import search_sample, search_strata

    strata = search_strata(insurance_frame)
    assert search_sample(strata, len(strata), seed=0) is None  # few rows: all of them
    sample = search_sample(strata, 400, seed=0)
    assert len(sample) == 400 and len(set(sample)) == 400
    assert np.array_equal(sample, search_sample(strata, 400, seed=0))  # seeded
    for label in set(strata):
        expected = (strata == label).mean() * 400
        assert abs((strata[sample] == label).sum() - expected) <= 1, label


def test_the_chosen_pipeline_is_refitted_on_every_row(training_data):
    import numpy as np

    from insurance_pipeline.core.modeling.search import refit_on_every_row

    X, y = training_data
    y = np.asarray(y)
    found = run_search(X[:300], y[:300], SearchBudget(**TINY_SEARCH), progress=lambda _: None)
    assert (found.rows_searched, found.rows_fitted) == (300, 300)
    assert found.timed_out == 0 and found.invalid >= 0
    on_sample = found.pipeline.predict(X)
    refitted = refit_on_every_row(found, X, y)
    assert refitted.rows_fitted == len(y) and refitted.rows_searched == 300
    assert not np.allclose(refitted.pipeline.predict(X), on_sample)  # it saw the other rows
