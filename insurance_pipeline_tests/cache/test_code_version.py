"""A change invalidates only what it touches: editing a pure module a step reaches makes that
step and its downstream miss the cache, and nothing upstream; editing the service, a resource
or the settings makes nothing miss. Checked with real runs of an edited copy of the project
against the same state, read back from the Dagster instance."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from insurance_pipeline.cache.code_version import reached_modules
from insurance_pipeline.domain.layout import CHECKOUT
from insurance_pipeline_tests.helpers import (
    TINY_CLI,
    TRAINING_ASSETS,
    latest_run_cache_states,
    run_cli,
)

pytestmark = pytest.mark.dagster

CLI = [*TINY_CLI, "--r2-floor", "0.5", "--log-level", "ERROR"]
SERVICE_MODULES = sorted((CHECKOUT / "insurance_pipeline" / "serving").rglob("*.py"))
# Not the code that computes a value: editing any of these must change no code version.
INFRASTRUCTURE = [
    *SERVICE_MODULES,
    CHECKOUT / "insurance_pipeline" / "settings.py",
    *sorted((CHECKOUT / "insurance_pipeline" / "resources").glob("*.py")),
]


def run_copy(copy, workspace) -> dict[str, str]:
    """`cli run` importing the package from `copy` (first on sys.path), same state."""
    proc = subprocess.run(
        [sys.executable, "-m", "insurance_pipeline.cli", "run", *CLI],
        env={**os.environ, **workspace.env(), "PYTHONPATH": str(copy)},
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=900,
    )
    # 1 is allowed: a retrained model may lose to the champion; the steps ran anyway.
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    found = latest_run_cache_states()
    assert len(found) == len(TRAINING_ASSETS) - 1, proc.stdout + proc.stderr  # all but registry
    return found


def copy_project(destination):
    shutil.copytree(
        CHECKOUT / "insurance_pipeline",
        destination / "insurance_pipeline",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in ("data", "deploy"):
        shutil.copytree(CHECKOUT / name, destination / name)
    for name in ("dagster.yaml", "pyproject.toml"):
        shutil.copy(CHECKOUT / name, destination / name)
    return destination


@pytest.fixture(scope="module")
def project_copy(workspace, tmp_path_factory):
    first = run_cli(workspace.env(), "run", "--r2-floor", "0.5", "--log-level", "ERROR")
    assert first.returncode == 0, first.stdout + first.stderr
    return copy_project(tmp_path_factory.mktemp("copy"))


def edit(copy, module: str, old: str, new: str):
    path = copy / "insurance_pipeline" / module
    original = path.read_text()
    assert old in original, f"{old!r} not in {module}"
    path.write_text(original.replace(old, new))
    return lambda: path.write_text(original)


def code_versions(root) -> dict[str, str]:
    """Every asset's code version, as the code location under `root` computes it."""
    script = (
        "import json; from insurance_pipeline.definitions import defs\n"
        "g = defs.resolve_asset_graph()\n"
        "print(json.dumps({k.to_user_string(): g.get(k).code_version "
        "for k in g.get_all_asset_keys()}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(root)},
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_step_modules_are_found_by_following_imports():
    from insurance_pipeline.defs.data import assets as data
    from insurance_pipeline.defs.validation import assets as validation

    metrics_reach = reached_modules(validation.validation_metrics.op.compute_fn.decorated_fn)
    assert "insurance_pipeline.core.modeling.segments" in metrics_reach
    assert "insurance_pipeline.core.modeling.metrics" in metrics_reach
    split_reach = reached_modules(data.train_test_split.op.compute_fn.decorated_fn)
    assert "insurance_pipeline.core.data.split" in split_reach
    assert not any(m.startswith("insurance_pipeline.core.features") for m in split_reach)
    for step in (validation.validation_metrics, data.train_test_split):
        reach = reached_modules(step.op.compute_fn.decorated_fn)
        assert all(
            m.startswith(("insurance_pipeline.core", "insurance_pipeline.domain")) for m in reach
        ), reach


def test_editing_the_service_resources_or_settings_changes_no_code_version(tmp_path):
    before = code_versions(CHECKOUT)
    copy = copy_project(tmp_path)
    for path in INFRASTRUCTURE:
        target = copy / path.relative_to(CHECKOUT)
        target.write_text(target.read_text() + "\nEDITED_FOR_THE_TEST = 1\n")
    after = code_versions(copy)
    training = [a for a in TRAINING_ASSETS if a in before]
    assert {a: after[a] for a in training} == {a: before[a] for a in training}


def test_editing_the_compiled_model_misses_nothing(project_copy, workspace):
    restore = edit(
        project_copy,
        "compiled/model.py",
        "REFERENCE_TOLERANCE = 1e-6",
        "REFERENCE_TOLERANCE = 2e-6",
    )
    try:
        result = run_copy(project_copy, workspace)
    finally:
        restore()
    assert set(result.values()) == {"hit"}, result


def test_editing_segments_misses_validation_metrics_and_downstream_only(project_copy, workspace):
    restore = edit(
        project_copy,
        "core/modeling/segments.py",
        "rows: pd.DataFrame, y_true, y_pred, *, n_boot: int = 1000, seed: int = 0",
        "rows: pd.DataFrame, y_true, y_pred, *, n_boot: int = 1000, seed: int = 1",
    )
    try:
        result = run_copy(project_copy, workspace)
    finally:
        restore()
    missed = {step for step, state in result.items() if state == "miss"}
    assert missed == {"validation_metrics", "validation_report"}, result
    upstream = ["raw_insurance_data", "train_test_split", "feature_transformer", "trained_model"]
    assert all(result[step] == "hit" for step in upstream)


def test_editing_a_features_module_misses_it_and_downstream_only(project_copy, workspace):
    restore = edit(
        project_copy,
        "core/features/transformer.py",
        'SimpleImputer(strategy="mean"',
        'SimpleImputer(strategy="median"',
    )
    try:
        result = run_copy(project_copy, workspace)
    finally:
        restore()
    upstream = {"raw_insurance_data", "insurance_data_profile", "train_test_split"}
    assert {step for step, state in result.items() if state == "hit"} == upstream, result
    downstream = TRAINING_ASSETS[TRAINING_ASSETS.index("feature_transformer") : -1]
    assert {s for s, state in result.items() if state == "miss"} == set(downstream)
