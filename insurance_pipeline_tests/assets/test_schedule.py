"""The weekly schedule requests exactly the stale training assets."""

import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, RunRequest, SkipReason, build_schedule_context

from insurance_pipeline.definitions import defs, training_selection
from insurance_pipeline.schedules import stale_assets
from insurance_pipeline_tests.assets.helpers import TRAINING_ASSETS, materialize
from insurance_pipeline_tests.conftest import tiny_run_config

TRAINING = set(TRAINING_ASSETS)


@pytest.fixture(scope="module")
def materialized(workspace):
    assert materialize(tiny_run_config(gates={"r2_floor": 0.5})).success
    return workspace


def evaluate():
    schedule = defs.get_schedule_def("weekly_retraining")
    with DagsterInstance.get() as instance:
        context = build_schedule_context(
            instance=instance, repository_def=defs.get_repository_def()
        )
        return schedule(context)


def graph_inputs():
    graph = defs.resolve_asset_graph()
    keys = [k for k in training_selection.resolve(graph) if graph.get(k).is_materializable]
    return {k: set(graph.get(k).parent_keys) for k in keys}, {
        k: graph.get(k).code_version for k in keys
    }


def test_nothing_is_stale_right_after_a_run(materialized):
    assert schedule_cron() == "0 3 * * 1"
    assert isinstance(evaluate(), SkipReason)


def test_changed_code_makes_that_step_and_its_downstream_stale(materialized):
    deps, code_versions = graph_inputs()
    code_versions[AssetKey("tpot_pipeline")] = "edited"
    with DagsterInstance.get() as instance:
        stale = stale_assets(instance, deps, code_versions, {})
    downstream = TRAINING_ASSETS[TRAINING_ASSETS.index("tpot_pipeline") :]
    assert {k.to_user_string() for k in stale} == set(downstream)


def test_a_changed_csv_makes_everything_downstream_of_it_stale(materialized):
    frame = pd.read_csv(materialized.csv)
    frame.loc[0, "charges"] = frame.loc[0, "charges"] + 1.0
    frame.to_csv(materialized.csv, index=False)
    request = evaluate()
    assert isinstance(request, RunRequest)
    assert {k.to_user_string() for k in request.asset_selection} == TRAINING


def schedule_cron() -> str:
    return defs.get_schedule_def("weekly_retraining").cron_schedule
