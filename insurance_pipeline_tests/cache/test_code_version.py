"""Code versions follow the imports: editing any module a step reaches makes that step and its
downstream miss the cache, and nothing upstream. Checked with real runs of a copy of the
project, edited, against the same state."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from insurance_pipeline.cache.code_version import reached_modules
from insurance_pipeline.settings import DEFAULT_ROOT
from insurance_pipeline_tests.assets.helpers import TRAINING_ASSETS
from insurance_pipeline_tests.conftest import run_cli

TINY = ["--generations", "1", "--population-size", "4", "--cv", "2", "--r2-floor", "0.5"]


def steps(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"^  (\w+)\s+cache: (hit|miss)$", stdout, flags=re.M))


def run_copy(copy, workspace) -> dict[str, str]:
    """`cli run` importing the package from `copy` (first on sys.path), same state."""
    proc = subprocess.run(
        [sys.executable, "-m", "insurance_pipeline.cli", "run", *TINY, "--log-level", "ERROR"],
        env={**os.environ, **workspace.env(), "PYTHONPATH": str(copy)},
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=900,
    )
    # 1 is allowed: a retrained model may lose to the champion; the steps are listed anyway.
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    found = steps(proc.stdout)
    assert len(found) == len(TRAINING_ASSETS) - 1, proc.stdout + proc.stderr  # all but registry
    return found


@pytest.fixture(scope="module")
def project_copy(workspace, tmp_path_factory):
    first = run_cli(workspace.env(), "run", "--r2-floor", "0.5", "--log-level", "ERROR")
    assert first.returncode == 0, first.stdout + first.stderr
    copy = tmp_path_factory.mktemp("copy")
    shutil.copytree(
        DEFAULT_ROOT / "insurance_pipeline",
        copy / "insurance_pipeline",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in ("data", "deploy"):
        shutil.copytree(DEFAULT_ROOT / name, copy / name)
    for name in ("dagster.yaml", "pyproject.toml"):
        shutil.copy(DEFAULT_ROOT / name, copy / name)
    return copy


def edit(copy, module: str, old: str, new: str):
    path = copy / "insurance_pipeline" / module
    original = path.read_text()
    assert old in original, f"{old!r} not in {module}"
    path.write_text(original.replace(old, new))
    return lambda: path.write_text(original)


def test_the_step_modules_are_found_by_following_imports():
    from insurance_pipeline.assets import data, validation

    metrics_reach = reached_modules(validation.validation_metrics.op.compute_fn.decorated_fn)
    assert "insurance_pipeline.modeling.segments" in metrics_reach  # imported inside the step
    assert "insurance_pipeline.modeling.metrics" in metrics_reach
    split_reach = reached_modules(data.train_test_split.op.compute_fn.decorated_fn)
    assert "insurance_pipeline.data.split" in split_reach
    assert not any(m.startswith("insurance_pipeline.features") for m in split_reach)


def test_editing_segments_misses_validation_metrics_and_downstream_only(project_copy, workspace):
    restore = edit(
        project_copy,
        "modeling/segments.py",
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
        "features/transformer.py",
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
