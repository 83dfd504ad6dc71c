"""Bad data and weak models are stopped by blocking checks, from the CLI CI runs, with a
message naming the problem, and the registry keeps its champion."""

import json

import pandas as pd
import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance

from insurance_pipeline_tests.helpers import (
    SHIPPED_CSV,
    TINY_SEARCH,
    dagster_cli,
    materialize,
    registry_state,
    run_cli,
    tiny_run_config,
)

pytestmark = pytest.mark.dagster

CONTRACT = AssetCheckKey(AssetKey("raw_insurance_data"), "raw_insurance_data_contract")
R2_CHECK = AssetCheckKey(AssetKey("validation_metrics"), "r2_above_floor")
CHALLENGER = AssetCheckKey(AssetKey("champion_comparison"), "challenger_not_worse")


@pytest.fixture(scope="module")
def champion(workspace):
    assert materialize(tiny_run_config(gates={"r2_floor": 0.5})).success
    assert registry_state() == ([1], 1)
    return workspace


def dagster_materialize(workspace, csv, gates=None, **config):
    run_config = {"ops": {"tpot_pipeline": {"config": TINY_SEARCH}}}
    for op, values in config.items():
        run_config["ops"][op] = {"config": values}  # replaces the tiny search if given
    if gates:
        run_config["resources"] = {"gates": {"config": gates}}
    return dagster_cli(
        workspace,
        *("asset", "materialize", "-m", "insurance_pipeline.definitions"),
        *("--select", "group:training", "--config-json", json.dumps(run_config)),
        env={"INSURANCE_DATA_PATH": str(csv)},
    )


def latest_check(key: AssetCheckKey):
    with DagsterInstance.get() as instance:
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
        return record.event.dagster_event.event_specific_data


def write_missing_column(path):
    pd.read_csv(SHIPPED_CSV).drop(columns=["smoker"]).to_csv(path, index=False)


def write_text_in_age(path):
    frame = pd.read_csv(SHIPPED_CSV, dtype=str)
    frame.loc[10, "age"] = "forty"
    frame.to_csv(path, index=False)


def write_empty(path):
    path.write_text("")


@pytest.mark.parametrize(
    "corrupt, expected",
    [
        (write_missing_column, "missing required column(s): smoker"),
        (write_text_in_age, "column 'age': 1 non-numeric value(s), e.g. ['forty'] on line(s) [12]"),
        (write_empty, "file is empty"),
    ],
)
def test_corrupted_csv_fails_the_contract_and_keeps_the_champion(
    champion, tmp_path, corrupt, expected
):
    bad = tmp_path / "insurance.csv"
    corrupt(bad)
    proc = dagster_materialize(champion, bad)
    assert proc.returncode != 0
    evaluation = latest_check(CONTRACT)
    assert not evaluation.passed
    assert expected in evaluation.description
    assert registry_state() == ([1], 1)


def test_r2_below_the_floor_blocks_registration(champion):
    # A new seed makes a new model; an unreachable floor must keep it out of the registry.
    proc = dagster_materialize(
        champion,
        champion.csv,
        train_test_split={"seed": 11},
        gates={"r2_floor": 0.999},
    )
    assert proc.returncode != 0
    evaluation = latest_check(R2_CHECK)
    assert not evaluation.passed and "below the floor 0.9990" in evaluation.description
    assert registry_state() == ([1], 1)


def test_a_worse_challenger_keeps_the_champion(champion):
    # A plain linear model (new seed, floor low enough) is far worse than the boosted champion.
    proc = dagster_materialize(
        champion,
        champion.csv,
        tpot_pipeline={**TINY_SEARCH, "search_space": "baseline"},
        train_test_split={"seed": 12},
        gates={"r2_floor": 0.5},
    )
    assert proc.returncode != 0
    evaluation = latest_check(CHALLENGER)
    assert not evaluation.passed
    assert "challenger is worse" in evaluation.description
    assert "vs champion v1" in evaluation.description
    assert registry_state() == ([1], 1)


def test_make_run_cli_prints_the_failed_check_and_exits_1(champion, tmp_path):
    bad = tmp_path / "insurance.csv"
    write_missing_column(bad)
    proc = run_cli(
        {**champion.env(), "INSURANCE_DATA_PATH": str(bad)}, "run", "--log-level", "ERROR"
    )
    assert proc.returncode == 1
    assert (
        "FAILED CHECK raw_insurance_data:raw_insurance_data_contract: "
        "missing required column(s): smoker" in proc.stdout
    )
    assert registry_state() == ([1], 1)


def test_a_missing_file_is_a_clear_error(champion, tmp_path):
    proc = dagster_materialize(champion, tmp_path / "nope.csv")
    assert proc.returncode != 0
    assert f"insurance data file not found: {tmp_path / 'nope.csv'}" in proc.stdout + proc.stderr
    assert registry_state() == ([1], 1)
