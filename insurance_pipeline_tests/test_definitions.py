"""The code location loads and has the graph the product describes."""

import os

import pytest
from dagster import AssetKey

from insurance_pipeline_tests.helpers import SESSION_KEY, definitions

pytestmark = pytest.mark.dagster

defs = definitions()

EDGES = {
    "raw_insurance_data": {"insurance_csv"},
    "insurance_data_profile": {"raw_insurance_data"},
    "train_test_split": {"raw_insurance_data"},
    "feature_transformer": {"train_test_split"},
    "tpot_pipeline": {"train_test_split", "feature_transformer"},
    "prediction_interval": {"train_test_split", "feature_transformer", "tpot_pipeline"},
    "trained_model": {
        "train_test_split",
        "feature_transformer",
        "tpot_pipeline",
        "prediction_interval",
    },
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
    from insurance_pipeline.defs.jobs import training_selection

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
        "interval_coverage": True,
        "challenger_not_worse": True,
    }
    for asset in EDGES:
        assert graph.get(AssetKey(asset)).code_version, asset


def test_serving_modules_do_not_need_the_training_stack():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import insurance_pipeline.serving.app, insurance_pipeline.settings\n"
        "heavy = {'dagster', 'tpot', 'featuretools', 'mlflow', 'sklearn', 'pandas'}\n"
        "heavy &= set(sys.modules)\n"
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


@pytest.mark.parametrize(
    "deployment, expected",
    [(None, "dry-run docker registry.local"), ("production", "execute buildah reg.example:5000")],
)
def test_the_deployment_name_chooses_the_resources(deployment, expected):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "INSURANCE_DEPLOYMENT"}
    if deployment:
        env.update(
            INSURANCE_DEPLOYMENT=deployment,
            DEPLOY_BUILDER="buildah",
            DEPLOY_REGISTRY="reg.example:5000",
            INSURANCE_SIGNING_KEY=str(SESSION_KEY),  # production requires its key
        )
    code = (
        "from dagster import build_resources\n"
        "from insurance_pipeline.definitions import defs\n"
        "with build_resources({'deployer': defs.resources['deployer']}) as built:\n"
        "    d = built.deployer\n"
        "print(d.mode, d.builder, d.registry)"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == expected


def test_an_unknown_deployment_name_is_a_clear_error():
    import os
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", "import insurance_pipeline.definitions"],
        env={**os.environ, "INSURANCE_DEPLOYMENT": "staging"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "INSURANCE_DEPLOYMENT='staging' is not a deployment; use one of local, production" in (
        proc.stderr
    )
