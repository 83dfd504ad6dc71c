"""The code location loads and has the graph the product describes."""

import os

from dagster import AssetKey

from insurance_pipeline.definitions import defs

EDGES = {
    "raw_insurance_data": {"insurance_csv"},
    "insurance_data_profile": {"raw_insurance_data"},
    "train_test_split": {"raw_insurance_data"},
    "feature_transformer": {"train_test_split"},
    "tpot_pipeline": {"train_test_split", "feature_transformer"},
    "trained_model": {"train_test_split", "feature_transformer", "tpot_pipeline"},
    "validation_metrics": {"train_test_split", "trained_model"},
    "validation_report": {"train_test_split", "trained_model", "validation_metrics"},
    "champion_comparison": {"train_test_split", "trained_model"},
    "registered_model": {
        "train_test_split",  # a missing challenger verdict is judged on its held-out rows
        "trained_model",
        "validation_metrics",
        "validation_report",
        "champion_comparison",
    },
}


def test_asset_graph_edges():
    graph = defs.resolve_asset_graph()
    for asset, parents in EDGES.items():
        found = {k.to_user_string() for k in graph.get(AssetKey(asset)).parent_keys}
        assert found == parents, asset


def test_deployment_is_outside_the_training_selection_and_has_its_sensor():
    from insurance_pipeline.definitions import training_selection

    graph = defs.resolve_asset_graph()
    training = {k.to_user_string() for k in training_selection.resolve(graph)}
    assert "deployment" not in training and set(EDGES) <= training
    assert {k.to_user_string() for k in graph.get(AssetKey("deployment")).parent_keys} == {
        "registered_model"
    }
    assert defs.get_sensor_def("deploy_validated_model").job_name == "deploy"
    assert defs.get_schedule_def("weekly_retraining").job_name == "training"


def test_blocking_checks_and_code_versions():
    graph = defs.resolve_asset_graph()
    checks = {key.name: graph.get(key).blocking for key in graph.asset_check_keys}
    assert checks == {
        "raw_insurance_data_contract": True,
        "r2_above_floor": True,
        "predictions_finite": True,
        "test_rows_as_expected": True,
        "challenger_not_worse": True,
    }
    for asset in EDGES:
        assert graph.get(AssetKey(asset)).code_version, asset


def test_serving_modules_do_not_need_the_training_stack():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import insurance_pipeline.features.numpy_dfs, insurance_pipeline.settings\n"
        "heavy = {'dagster', 'tpot', 'featuretools', 'mlflow'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_dagster_cli_validates_the_code_location(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    dagster = Path(sys.executable).parent / "dagster"
    proc = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},  # an empty, existing home
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
