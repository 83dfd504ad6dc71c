"""The CLI's small commands: cache pruning and exporting the champion's artifact."""

import subprocess
import sys

import pytest

from insurance_pipeline.cache.store import StepCache
from insurance_pipeline.core.trust.keys import Signer, Verifier
from insurance_pipeline.domain.layout import CHECKOUT
from insurance_pipeline_tests.helpers import SESSION_KEY

pytestmark = pytest.mark.dagster


def cli(tmp_path, *args):
    env = {
        "PATH": "/usr/bin:/bin",
        "INSURANCE_STATE_DIR": str(tmp_path),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    return subprocess.run(
        [sys.executable, "-m", "insurance_pipeline.cli", *args],
        env=env,
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_clean_cache_empties_the_step_cache(tmp_path):
    signer = Signer(SESSION_KEY)
    cache = StepCache(tmp_path / ".cache" / "steps", signer=signer, verifier=Verifier.of(signer))
    cache.get_or_compute("step", "k", lambda: b"x" * 100_000)
    proc = cli(tmp_path, "clean-cache")
    assert proc.returncode == 0, proc.stderr
    assert "0.1 MB -> 0.0 MB" in proc.stdout
    assert not StepCache(tmp_path / ".cache" / "steps").contains("step", "k")


def test_export_champion_without_a_champion_says_what_to_do(tmp_path):
    proc = cli(tmp_path, "export-champion", "--dest", str(tmp_path / "served"))
    assert proc.returncode == 1
    assert "insurance_charges_model has no champion yet" in proc.stderr
    assert "make run" in proc.stderr


def test_run_refuses_to_start_without_dagster_home(tmp_path):
    proc = cli(tmp_path, "run")
    assert proc.returncode == 2
    assert "DAGSTER_HOME is not set" in proc.stderr
