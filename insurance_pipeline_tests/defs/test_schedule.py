"""The weekly schedule requests exactly the stale training assets."""

import contextvars

import pandas as pd
import pytest
from dagster import AssetKey, AssetsDefinition, DagsterInstance, Definitions, RunRequest, SkipReason

from insurance_pipeline.defs.training.schedule import stale_assets, training_keys
from insurance_pipeline_tests.helpers import (
    TRAINING_ASSETS,
    definitions,
    evaluate_schedule,
    materialize,
    tiny_run_config,
)

pytestmark = pytest.mark.dagster

TRAINING = set(TRAINING_ASSETS)


@pytest.fixture(scope="module")
def materialized(workspace):
    assert materialize(tiny_run_config(gates={"r2_floor": 0.5})).success
    return workspace


def assets_with_code_version(step: str, version: str):
    """The code location's assets, as they would be with `step`'s code edited."""
    defs = definitions()

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
    return contextvars.Context().run(lambda: edited.get_repository_def().assets_defs_by_key)


def test_nothing_is_stale_right_after_a_run(materialized):
    assert definitions().get_schedule_def("weekly_retraining").cron_schedule == "0 3 * * 1"
    assert isinstance(evaluate_schedule(), SkipReason)


def test_changed_code_makes_that_step_and_its_downstream_stale(materialized):
    assets = assets_with_code_version("tpot_pipeline", "edited")
    with DagsterInstance.get() as instance:
        stale = stale_assets(instance, assets, training_keys(assets))
    downstream = TRAINING_ASSETS[TRAINING_ASSETS.index("tpot_pipeline") :]
    assert {k.to_user_string() for k in stale} == set(downstream)


def test_a_changed_csv_makes_everything_downstream_of_it_stale(materialized):
    frame = pd.read_csv(materialized.csv)
    frame.loc[0, "charges"] = frame.loc[0, "charges"] + 1.0
    frame.to_csv(materialized.csv, index=False)
    request = evaluate_schedule()
    assert isinstance(request, RunRequest)
    assert {k.to_user_string() for k in request.asset_selection} == TRAINING
