"""No path moves `champion` or `deployed` to a model whose gate failed: the weekly schedule,
`dagster asset materialize --select registered_model`, a job run of registration alone, and
the deploy sensor given passing checks recorded by another run. Each starts from a model
that failed `challenger_not_worse` under the default gate settings."""

import os

import pytest
from dagster import AssetKey, RunRequest, SkipReason

from insurance_pipeline.core.gates.verdicts import VerdictLedger
from insurance_pipeline.resources import DeployRunnerResource
from insurance_pipeline_tests.helpers import (
    TINY_SEARCH,
    dagster_cli,
    deploy,
    evaluate_schedule,
    evaluate_sensor,
    failure_messages,
    materialize,
    metadata_by_asset,
    mlflow,
    patched_environ,
    registry_state,
    release,
    run_selection,
    serve_failing_registry,
    tiny_run_config,
    trust,
)

pytestmark = pytest.mark.dagster

WORSE = {"tpot_pipeline": {**TINY_SEARCH, "search_space": "baseline"}}
REGISTERED = AssetKey("registered_model")


@pytest.fixture(scope="module")
def champion(workspace):
    result = materialize(tiny_run_config())  # default gate settings
    assert result.success, failure_messages(result)
    assert registry_state() == ([1], 1)
    return workspace


@pytest.fixture
def rejected(champion):
    """The latest trained model is a worse challenger: its gate failed in its own run."""
    result = materialize(tiny_run_config(**WORSE))
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert "challenger_not_worse" in {e.check_name for e in failed}
    assert registry_state() == ([1], 1)
    return metadata_by_asset(result)["trained_model"]["model_key"]


def test_the_schedule_tick_cannot_register_a_rejected_model(rejected):
    request = evaluate_schedule()
    assert isinstance(request, RunRequest)
    assert REGISTERED in request.asset_selection
    result = run_selection(request.asset_selection)
    assert not result.success
    assert "challenger_not_worse failed: challenger is worse" in failure_messages(result)
    assert registry_state() == ([1], 1)


def test_the_cli_with_only_registered_model_selected_is_refused(rejected, workspace):
    proc = dagster_cli(
        workspace,
        "asset",
        "materialize",
        "-m",
        "insurance_pipeline.definitions",
        "--select",
        "registered_model",
    )
    assert proc.returncode != 0
    assert f"model {rejected} was not registered" in proc.stdout + proc.stderr
    assert "challenger_not_worse failed" in proc.stdout + proc.stderr
    assert registry_state() == ([1], 1)
    assert mlflow().model_tags(rejected)["release.candidate"] == "false"


def test_a_job_run_of_registration_alone_judges_missing_verdicts_itself(rejected):
    # No verdict exists under an r2 floor of 0.999: registration judges it now, and refuses.
    result = run_selection([REGISTERED], gates={"r2_floor": 0.999})
    assert not result.success
    message = failure_messages(result)
    assert "r2_floor failed: holdout r2" in message and "below the floor 0.9990" in message
    assert "challenger_not_worse failed" in message
    verdicts = VerdictLedger(mlflow(), None, trust().verifier()).recorded(rejected)
    assert any(
        v.gate == "r2_floor" and '"r2_floor":0.999' in v.parameters for v in verdicts.values()
    )
    assert registry_state() == ([1], 1)


def test_the_sensor_ignores_passing_checks_recorded_by_other_runs(rejected):
    # Another run records passing evaluations of every check (the champion, all cache hits).
    assert materialize(tiny_run_config()).success
    registry = mlflow()
    client = registry.client()
    # Someone bypasses registration: the rejected model's run becomes a version and champion.
    run_id = registry.run_for(rejected)
    version = client.create_model_version(
        registry.model_name, f"runs:/{run_id}/model", run_id, tags={"model_key": rejected}
    )
    registry.set_alias("champion", version.version)
    try:
        skipped = evaluate_sensor()
        assert isinstance(skipped, SkipReason)
        assert (
            f"alias 'champion' points at v{version.version}, but the signed champion record "
            "says v1" in skipped.skip_message
        )
        # A forged approval does not help either: the record is what names the champion,
        # and the verdicts themselves are checked.
        approved = client.get_model_version(registry.model_name, "1").tags["gates.approval"]
        registry.set_version_tag(version.version, "gates.approval", approved)
        assert "signed champion record says v1" in evaluate_sensor().skip_message
        forged = release().approval(registry.get_version(int(version.version)))
        assert "approval is for insurance_charges_model version 1" in forged.summary()
        # and neither can the deploy job be pointed at it by hand
        result = deploy(int(version.version), DeployRunnerResource())
        assert not result.success and "will not be deployed" in failure_messages(result)
        assert registry.alias_version("deployed") is None
    finally:
        registry.set_alias("champion", 1)
        client.delete_model_version(registry.model_name, version.version)
    assert registry_state() == ([1], 1)


@pytest.fixture
def failing_registry(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with serve_failing_registry() as url:
        yield url


def test_a_registry_error_is_not_no_champion(champion, failing_registry):
    tracking = os.environ["MLFLOW_TRACKING_URI"]
    broken = mlflow(registry_uri=failing_registry)
    with pytest.raises(Exception, match="token may not read the registry"):
        broken.alias_version("champion")
    with patched_environ(
        {"MLFLOW_TRACKING_URI": tracking, "MLFLOW_REGISTRY_URI": failing_registry}
    ):
        result = run_selection([AssetKey("champion_comparison")])
    assert not result.success
    assert "token may not read the registry" in failure_messages(result)
    # only "no such model or alias" means no champion
    assert mlflow(model_name="no_such_model").alias_version("champion") is None
    assert mlflow().alias_version("no-such-alias") is None


def test_a_tampered_champion_file_is_refused_before_it_is_loaded(champion):
    import pickle
    import shutil
    from urllib.parse import urlparse

    from insurance_pipeline.resources.mlflow import PICKLE_ARTIFACT

    registry, releases = mlflow(), release()
    version = releases.champion().version
    approval = releases.approval(version)
    root = urlparse(registry.client().get_run(version.run_id).info.artifact_uri).path
    stored = os.path.join(root, PICKLE_ARTIFACT)
    shutil.copy(stored, stored + ".orig")
    try:
        with open(stored, "wb") as handle:
            pickle.dump({"not": "the champion"}, handle)
        with pytest.raises(ValueError, match="model.pkl has sha256 .* refusing to load it"):
            releases.load_model(version, approval)
    finally:
        shutil.move(stored + ".orig", stored)
    model, rows = releases.load_model(version, approval)  # the untouched file loads
    assert hasattr(model, "predict") and len(rows) == 1069
