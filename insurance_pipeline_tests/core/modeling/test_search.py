import pytest

from insurance_pipeline.core.data.split import split_rows
from insurance_pipeline.core.features.transformer import fit_feature_transformer
from insurance_pipeline.core.modeling.search import SearchBudget, run_search
from insurance_pipeline.domain.schema import FEATURE_COLUMNS, TARGET_COLUMN
from insurance_pipeline_tests.helpers import TINY_SEARCH


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
