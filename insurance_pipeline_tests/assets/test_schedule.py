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


def graph_with_code_version(step: str, version: str):
    """The code location's asset graph, as it would be with `step`'s code edited."""
    from dagster import AssetsDefinition, Definitions

    def edit(assets):
        if isinstance(assets, AssetsDefinition) and AssetKey(step) in assets.keys:
            return assets.map_asset_specs(
                lambda spec: spec.replace_attributes(code_version=version)
            )
        return assets

    edited = Definitions(
        assets=[edit(a) for a in defs.assets],
        asset_checks=defs.asset_checks,
        resources=defs.resources,
    )
    graph = edited.resolve_asset_graph()
    keys = [k for k in training_selection.resolve(graph) if graph.get(k).is_materializable]
    return graph, keys


def test_nothing_is_stale_right_after_a_run(materialized):
    assert schedule_cron() == "0 3 * * 1"
    assert isinstance(evaluate(), SkipReason)


def test_changed_code_makes_that_step_and_its_downstream_stale(materialized):
    graph, keys = graph_with_code_version("tpot_pipeline", "edited")
    with DagsterInstance.get() as instance:
        stale = stale_assets(instance, graph, keys)
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
