"""The deploy sensor over a real instance and a real registry, and the deploy runs it launches:
what counts as deployed, retries, rollbacks, dry-runs and refusals. A real build, push and
(edge-recorded) rollout are in deploy/test_image.py."""

from pathlib import Path

import pytest
import yaml
from dagster import RunRequest, SkipReason

from insurance_pipeline.defs.deploy.sensor import SENSOR_NAME, SENSOR_TAG
from insurance_pipeline.resources import DeployRunnerResource
from insurance_pipeline.resources.mlflow import SERVING_SHA_TAG
from insurance_pipeline_tests.helpers import (
    deploy,
    evaluate_sensor,
    materialize,
    metadata_by_asset,
    mlflow,
    patched_environ,
    registry_state,
    release,
    tiny_run_config,
    trust,
)

pytestmark = pytest.mark.dagster

PASSING = {"gates": {"r2_floor": 0.5}}
# A second model that must become champion whatever its tiny-budget quality.
LENIENT = {"gates": {"r2_floor": 0.5, "r2_tolerance": 0.5, "mae_tolerance": 1.0}}
SENSOR_RUN = {SENSOR_TAG: SENSOR_NAME}


evaluate = evaluate_sensor


def deploy_metadata(result):
    return metadata_by_asset(result).get("deployment")


def alias(name):
    found = mlflow().alias_version(name)
    return int(found.version) if found else None


BROKEN = DeployRunnerResource(mode="execute")  # its docker: DEPLOY_DOCKER_BIN, not found


@pytest.fixture
def missing_docker():
    with patched_environ({"DEPLOY_DOCKER_BIN": "docker-not-here"}):
        yield


@pytest.fixture(scope="module")
def validated(workspace):
    assert materialize(tiny_run_config(**PASSING)).success
    assert registry_state() == ([1], 1)
    return workspace


def test_sensor_requests_a_deploy_of_the_champion(validated):
    request = evaluate()
    assert isinstance(request, RunRequest)
    assert request.run_config == {"ops": {"deployment": {"config": {"model_version": 1}}}}
    assert request.run_key == "deploy-insurance_charges_model-v1-run1"
    assert request.tags["model_version"] == "1"


@pytest.mark.usefixtures("missing_docker")
def test_a_failed_deploy_is_retried_at_most_max_attempts_times(validated):
    for attempt in range(1, 4):
        request = evaluate()
        assert isinstance(request, RunRequest), attempt
        assert request.run_key == f"deploy-insurance_charges_model-v1-run{attempt}"
        result = deploy(1, BROKEN, tags={**request.tags, **SENSOR_RUN})
        assert not result.success
    skipped = evaluate()
    assert isinstance(skipped, SkipReason)
    assert "failed to deploy 3 times in a row" in skipped.skip_message
    # configurable: with max_attempts 4 it tries once more
    assert isinstance(evaluate(DeployRunnerResource(max_attempts=4)), RunRequest)
    assert alias("deployed") is None


def test_a_dry_run_records_the_version_so_the_sensor_does_not_loop(validated):
    # someone runs the deploy by hand (dry-run, the local default): that resets the retries
    result = deploy(1, DeployRunnerResource(mode="dry-run", registry="reg.example"))
    assert result.success
    meta = deploy_metadata(result)
    assert meta["status"] == "dry-run-deployed" and meta["model_version"] == 1
    assert alias("deployed") is None  # only a real rollout moves it
    skipped = evaluate()
    assert isinstance(skipped, SkipReason) and "last deployed" in skipped.skip_message


def test_a_new_champion_then_a_rollback_each_redeploy(validated):
    assert materialize(tiny_run_config(train_test_split={"seed": 3}, **LENIENT)).success
    assert registry_state() == ([1, 2], 2)
    request = evaluate()
    assert isinstance(request, RunRequest) and request.tags["model_version"] == "2"
    assert deploy(2, DeployRunnerResource(), tags={**request.tags, **SENSOR_RUN}).success
    assert isinstance(evaluate(), SkipReason)

    record = release().promote(1, "rollback drill")  # an operator rolls champion back
    assert (record.version, record.sequence, record.previous_version) == (1, 3, 2)
    rollback = evaluate()
    assert isinstance(rollback, RunRequest)
    assert rollback.run_config["ops"]["deployment"]["config"]["model_version"] == 1
    assert rollback.run_key not in {request.run_key, "deploy-insurance_charges_model-v1-run1"}
    assert deploy(1, DeployRunnerResource(), tags={**rollback.tags, **SENSOR_RUN}).success
    assert isinstance(evaluate(), SkipReason)  # v1 stays champion for the tests below


def test_dry_run_renders_the_chart_and_records_the_exact_commands(validated):
    result = deploy(1, DeployRunnerResource(mode="dry-run", registry="reg.example"))
    assert result.success
    meta = deploy_metadata(result)
    assert meta["mode"] == "dry-run" and meta["image"] == "reg.example/insurance-charges-model:v1"
    commands = [c["argv"] for c in meta["commands"]]
    assert [c[:2] for c in commands] == [
        ["docker", "build"],
        ["docker", "push"],
        [commands[2][0], "upgrade"],
    ]
    build, push, upgrade = commands
    assert "MODEL_VERSION=1" in build and build[build.index("--tag") + 1].endswith(":v1")
    sha = mlflow().get_version(1).tags[SERVING_SHA_TAG]
    assert f"MODEL_SHA256={sha}" in build
    assert push == ["docker", "push", "reg.example/insurance-charges-model:v1"]
    for flag in ("--install", "--rollback-on-failure", "--wait=watcher", "--timeout"):
        assert flag in upgrade
    values = yaml.safe_load(Path(upgrade[upgrade.index("--values") + 1]).read_text())
    assert values["image"]["tag"] == "v1"
    assert {k: values["model"][k] for k in ("version", "sha256")} == {"version": "1", "sha256": sha}
    # the key the folder's signature verified under: the pod checks it again at start
    assert values["model"]["trustedKey"] == trust().verifier().public_pems().popitem()[1].decode()
    assert values["image"]["digest"] == ""  # dry-run: nothing was pushed
    assert all(c["executed"] is False for c in meta["commands"])
    assert set(meta["rendered_objects"]) >= {
        "Deployment/insurance-charges-model-deployment",
        "Service/insurance-charges-model-service",
    }
    assert alias("deployed") is None


@pytest.mark.usefixtures("missing_docker")
def test_failed_rollout_is_a_visible_failure_and_moves_nothing(validated):
    # Real binaries, no engine or cluster: the first command fails for real.
    result = deploy(1, BROKEN)
    assert not result.success
    failure = result.get_step_failure_events()[0]
    assert "exited 127" in failure.step_failure_data.error.message
    assert alias("deployed") is None


def test_deploy_refuses_a_version_that_does_not_exist(validated):
    result = deploy(99, DeployRunnerResource(mode="dry-run"))
    assert not result.success
    failure = result.get_step_failure_events()[0]
    assert "has no version 99" in failure.step_failure_data.error.message


def test_a_malformed_registry_is_refused_before_any_command(validated):
    malformed = DeployRunnerResource(mode="execute", registry="Reg,image.repository=x")
    result = deploy(1, malformed)
    assert not result.success
    failure = result.get_step_failure_events()[0]
    message = failure.step_failure_data.error.message
    assert "deploy of version 1 refused: image repository" in message
    user_data = failure.step_failure_data.user_failure_data
    assert user_data is None or "commands" not in user_data.metadata  # nothing ran
