"""`make run` as users start it: two at the same moment on an empty state, and one killed
with SIGKILL in the middle of the TPOT search."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from insurance_pipeline.domain.layout import CHECKOUT
from insurance_pipeline_tests.helpers import (
    TRAINING_ASSETS,
    Workspace,
    cache_states,
    latest_run_cache_states,
    mlflow,
    new_workspace,
    patched_environ,
    registry_state,
)

pytestmark = pytest.mark.dagster

TINY = "--generations 1 --population-size 4 --cv 2 --r2-floor 0.5 --log-level INFO"


def fresh_state(root) -> Workspace:
    """An empty state: the Dagster home does not exist yet (make creates it)."""
    return new_workspace(root, home=False)


def make_run(state: Workspace) -> subprocess.Popen:
    return subprocess.Popen(
        ["make", "--no-print-directory", "run", f"ARGS={TINY}"],
        cwd=CHECKOUT,
        env={**os.environ, **state.env(), "PYTHON": sys.executable},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def model_key_of_champion(state: Workspace) -> str:
    with patched_environ(state.env()):
        return mlflow().alias_version("champion").tags["model_key"]


@pytest.fixture(scope="module")
def concurrent(tmp_path_factory):
    state = fresh_state(tmp_path_factory.mktemp("concurrent"))
    first, second = make_run(state), make_run(state)
    outputs = [p.communicate(timeout=900) for p in (first, second)]
    codes = [first.returncode, second.returncode]
    return state, codes, outputs


def test_two_make_runs_at_once_register_exactly_one_version(concurrent):
    state, codes, outputs = concurrent
    assert codes == [0, 0], outputs
    stderr = "".join(err for _, err in outputs)
    assert "another run holds the lock" in stderr
    assert "OperationalError" not in stderr and "FileExistsError" not in stderr
    from dagster import DagsterInstance, RunsFilter

    with patched_environ(state.env()):
        assert registry_state() == ([1], 1)
        # the run that waited (the later one) found every step in the cache
        with DagsterInstance.get() as instance:
            runs = instance.get_run_records(RunsFilter(job_name="training"))
            assert len(runs) == 2
            waited = cache_states(instance, runs[0].dagster_run.run_id)
    assert waited == {a: "hit" for a in TRAINING_ASSETS[:-1]}, waited


def test_a_run_killed_during_the_search_leaves_no_workers_and_resumes(concurrent, tmp_path):
    reference, _, _ = concurrent
    state = fresh_state(tmp_path / "killed")
    run = make_run(state)
    try:
        searching = wait_for_search_workers(run.pid, timeout=300)
        assert searching, "the TPOT search never started its workers"
        cli = next(p for p in psutil.Process(run.pid).children(recursive=True) if is_cli(p))
        ours = cli.children(recursive=True)
        os.kill(cli.pid, signal.SIGKILL)
        run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    _, alive = psutil.wait_procs(ours, timeout=30)
    assert not alive, [p.cmdline() for p in alive]

    again = make_run(state)
    out, err = again.communicate(timeout=900)
    assert again.returncode == 0, out + err
    with patched_environ(state.env()):
        states = latest_run_cache_states()
    for done in ("raw_insurance_data", "insurance_data_profile", "train_test_split"):
        assert states[done] == "hit", out
    assert states["tpot_pipeline"] == "miss"
    # the same model as an uninterrupted run with the same configuration
    assert model_key_of_champion(state) == model_key_of_champion(reference)


def is_cli(process: psutil.Process) -> bool:
    try:
        return "insurance_pipeline.cli" in " ".join(process.cmdline())
    except psutil.Error:
        return False


def wait_for_search_workers(make_pid: int, timeout: float) -> bool:
    """True once the CLI process has dask worker processes (spawned during the search)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            processes = psutil.Process(make_pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return False
        for process in processes:
            try:
                if "spawn_main" in " ".join(process.cmdline()):
                    time.sleep(2)  # well inside the search: workers are evaluating pipelines
                    return True
            except psutil.Error:
                continue
        time.sleep(0.2)
    return False


def test_make_run_and_dagster_materialize_at_once_create_the_stores_once(tmp_path):
    """README's two entry points, started together on an empty state: both succeed (neither
    trips over the other creating the MLflow store or the instance's), and one version."""
    import json

    state = new_workspace(tmp_path)
    config = {
        "ops": {"tpot_pipeline": {"config": {"generations": 1, "population_size": 4, "cv": 2}}},
        "resources": {"gates": {"config": {"r2_floor": 0.5}}},
    }
    materialize = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "asset", "materialize"]
        + ["-m", "insurance_pipeline.definitions", "--select", "group:training"]
        + ["--config-json", json.dumps(config)],
        cwd=CHECKOUT,
        env={**os.environ, **state.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    run = make_run(state)
    outputs = [materialize.communicate(timeout=900)[0], "".join(run.communicate(timeout=900))]
    assert [materialize.returncode, run.returncode] == [0, 0], outputs
    assert "OperationalError" not in "".join(outputs)
    with patched_environ(state.env()):
        assert registry_state() == ([1], 1)


@contextlib.contextmanager
def mounted_tmpfs(folder: Path, size: str):
    """A tmpfs of `size` at `folder` (root only): a disk that fills, or that is remounted
    read-only."""
    folder.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        message = f"cannot mount a tmpfs (needs root): {mount.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def cli_run(state: Workspace) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "insurance_pipeline.cli", "run", *TINY.split()],
        cwd=CHECKOUT,
        env={**os.environ, **state.env()},
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_a_read_only_cache_serves_every_hit(tmp_path):
    with mounted_tmpfs(tmp_path / "cache", "512m") as cache:
        state = new_workspace(tmp_path / "state", cache_dir=cache)
        first = cli_run(state)
        assert first.returncode == 0, first.stdout + first.stderr
        subprocess.run(["mount", "-o", "remount,ro", str(cache)], check=True)
        again = cli_run(state)
    assert again.returncode == 0, again.stdout + again.stderr
    states = [line.split()[-1] for line in again.stdout.splitlines() if " cache: " in line]
    assert states and set(states) == {"hit"}, again.stdout


def test_a_full_disk_fails_the_run_naming_the_cause_and_the_path(tmp_path):
    with mounted_tmpfs(tmp_path / "cache", "256k") as cache:
        state = new_workspace(tmp_path / "state", cache_dir=cache)
        proc = cli_run(state)
    assert proc.returncode != 0
    failed = [line for line in proc.stdout.splitlines() if line.startswith("FAILED STEP")]
    assert failed, proc.stdout
    for line in failed:
        assert "No space left on device" in line and str(cache) in line, line
    with patched_environ(state.env()):
        assert registry_state() == ([], None)  # nothing registered
