"""The deploy sensor over a real instance, and the deploy run it launches."""

import json

import pytest
from dagster import AssetKey, DagsterInstance, RunRequest, SkipReason, build_sensor_context

from insurance_pipeline.definitions import defs
from insurance_pipeline.resources import DeployRunnerResource, MlflowResource
from insurance_pipeline.resources.deploy import CommandRecord
from insurance_pipeline_tests.assets.helpers import materialize, metadata_by_asset
from insurance_pipeline_tests.conftest import tiny_run_config

PASSING = {"validation_metrics": {"r2_floor": 0.5}}


class ClusterEdge(DeployRunnerResource):
    """The true edge (no container engine or cluster here): records each command exactly
    and answers as a working engine and cluster would (exit 0)."""

    def run(self, argv):
        return CommandRecord(argv=argv, executed=True, exit_code=0, seconds=0.0)


def evaluate(cursor=None):
    sensor = defs.get_sensor_def("deploy_validated_model")
    with DagsterInstance.get() as instance:
        context = build_sensor_context(
            instance=instance, cursor=cursor, repository_def=defs.get_repository_def()
        )
        result = sensor(context)
        return result, context.cursor


def deploy(version, deployer):
    job = defs.resolve_job_def("deploy")
    with DagsterInstance.get() as instance:
        return job.execute_in_process(
            run_config={"ops": {"deployment": {"config": {"model_version": version}}}},
            instance=instance,
            resources={"deployer": deployer},
            raise_on_error=False,
        )


def deploy_metadata(result):
    return metadata_by_asset(result).get("deployment")


@pytest.fixture(scope="module")
def validated(workspace):
    assert materialize(tiny_run_config(**PASSING)).success
    return workspace


def test_sensor_requests_one_deploy_per_version(validated):
    request, cursor = evaluate()
    assert isinstance(request, RunRequest)
    assert request.run_config == {"ops": {"deployment": {"config": {"model_version": 1}}}}
    assert request.run_key == "deploy-insurance_charges_model-v1"
    assert json.loads(cursor) == {"versions": [1]}
    # the same version again (a cached re-run re-materializes it): nothing
    assert materialize(tiny_run_config(**PASSING)).success
    again, _ = evaluate(cursor)
    assert isinstance(again, SkipReason) and "already" in again.skip_message


def test_sensor_never_deploys_past_a_failed_gate(validated):
    _, cursor = evaluate()
    # A new seed and an unreachable floor: the new model fails its gate, nothing registers.
    result = materialize(
        tiny_run_config(train_test_split={"seed": 5}, validation_metrics={"r2_floor": 0.999})
    )
    assert not result.success
    skipped, _ = evaluate(cursor)
    assert isinstance(skipped, SkipReason)


def test_gates_are_read_from_the_registering_run(validated):
    from insurance_pipeline.sensors import failed_gates

    with DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(AssetKey("registered_model"))
        assert failed_gates(instance, event.run_id) == []
        # a run without check evaluations falls back to the latest ones, which now failed
        assert "r2_above_floor" in failed_gates(instance, "no-such-run")


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
    sha = MlflowResource().get_version(1).tags["serving_sha256"]
    assert f"MODEL_SHA256={sha}" in build
    assert push == ["docker", "push", "reg.example/insurance-charges-model:v1"]
    for flag in ("--install", "--rollback-on-failure", "--wait=watcher", "--timeout"):
        assert flag in upgrade
    assert "image.tag=v1" in upgrade and "model.version=1" in upgrade
    assert all(c["executed"] is False for c in meta["commands"])
    assert set(meta["rendered_objects"]) >= {"Deployment/insurance-charges-model"}
    assert MlflowResource().alias_version("deployed") is None


def test_failed_rollout_is_a_visible_failure_and_moves_nothing(validated):
    # Real binaries, no engine or cluster: the first command fails for real.
    result = deploy(1, DeployRunnerResource(mode="execute", docker_bin="docker-not-here"))
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "exited 127" in failure.event_specific_data.error.message
    assert MlflowResource().alias_version("deployed") is None


def test_successful_rollout_moves_the_deployed_alias(validated):
    result = deploy(1, ClusterEdge(mode="execute"))
    assert result.success
    meta = deploy_metadata(result)
    assert len(meta["commands"]) == 3 and all(c["exit_code"] == 0 for c in meta["commands"])
    assert int(MlflowResource().alias_version("deployed").version) == 1


def test_deploy_refuses_a_version_that_does_not_exist(validated):
    result = deploy(99, DeployRunnerResource(mode="dry-run"))
    assert not result.success
