"""Trust that survives a writable registry and a writable cache: each attack of issue 19,
reproduced with real MLflow, Dagster and CLI processes, by someone who can write to MLflow
or the step cache but does not hold the pipeline's signing key. After each, the champion
and the deployed version have not moved, nothing forged was exported, built or unpickled,
and the refusal names what failed. (Attack G, on the service, is in serving/test_artifact.)"""

import hashlib
import io
import json
import os
import pickle
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from dagster import AssetKey, DagsterInstance, RunsFilter, SkipReason

from insurance_pipeline.cache.store import META_FILE
from insurance_pipeline.compiled.artifact import MANIFEST_FILE, NPZ_FILE
from insurance_pipeline.core.trust.keys import Signer, generate_key
from insurance_pipeline.resources import DeployRunnerResource
from insurance_pipeline.resources.mlflow import (
    APPROVAL_TAG,
    PICKLE_ARTIFACT,
    PICKLE_TAG,
    SERVING_ARTIFACT_PATH,
    SERVING_SHA_TAG,
)
from insurance_pipeline_tests.helpers import (
    TINY_SEARCH,
    dagster_cli,
    deploy,
    evaluate_sensor,
    export_champion,
    failure_messages,
    materialize,
    metadata_by_asset,
    mlflow,
    patched_environ,
    registry_state,
    run_cli,
    serve_failing_registry,
    tiny_run_config,
)

pytestmark = pytest.mark.dagster

ISOLATED_CACHE = True  # entries are forged here
GATES = {"r2_floor": 0.5}
WORSE = {"tpot_pipeline": {**TINY_SEARCH, "search_space": "baseline"}}
ATTACK_A = '{"resources":{"gates":{"config":{"r2_floor":0.99}}}}'


@pytest.fixture(scope="module")
def champion(workspace):
    result = materialize(tiny_run_config(gates=GATES))
    assert result.success, failure_messages(result)
    assert registry_state() == ([1], 1)
    return workspace


def artifact_root(run_id: str) -> Path:
    return Path(urlparse(mlflow().client().get_run(run_id).info.artifact_uri).path)


def entry_of(workspace, result, step: str) -> Path:
    key = metadata_by_asset(result)[step]["cache_key"]
    return workspace.root / ".cache" / "steps" / step / key


def value_file(entry: Path) -> Path:
    return entry / json.loads((entry / META_FILE).read_text())["payload"]["value"]


def forge_entry(entry: Path, data: bytes) -> None:
    """New bytes under an entry, its metadata's sha256 re-pinned (signature left as it was)."""
    value_file(entry).write_bytes(data)
    envelope = json.loads((entry / META_FILE).read_text())
    envelope["payload"]["sha256"] = hashlib.sha256(data).hexdigest()
    (entry / META_FILE).write_text(json.dumps(envelope))


def deployed_versions() -> list:
    with DagsterInstance.get() as instance:
        return [
            r.dagster_run.status for r in instance.get_run_records(RunsFilter(job_name="deploy"))
        ]


def flip_failed_verdict(model_key: str, gate: str) -> None:
    """What an attacker with MLflow write access does: a failed verdict rewritten as passed
    (its signature left as it was)."""
    registry = mlflow()
    tags = registry.model_tags(model_key)
    name = next(t for t in tags if t.startswith(f"verdict.{gate}."))
    envelope = json.loads(tags[name])
    assert envelope["payload"]["passed"] is False
    envelope["payload"].update(passed=True, message="challenger is better")
    registry.set_model_tag(model_key, name, json.dumps(envelope))


def register_alone(workspace, gates: dict):
    config = json.dumps({"resources": {"gates": {"config": gates}}})
    proc = dagster_cli(
        workspace,
        *("asset", "materialize", "-m", "insurance_pipeline.definitions"),
        *("--select", "registered_model", "--config-json", config),
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_a_flipped_verdict_is_judged_again_never_believed(champion):
    """Attack A: a failed `verdict.*` tag flipped to passed, then registration alone."""
    rejected = materialize(tiny_run_config(gates=GATES, **WORSE))
    assert not rejected.success
    model_key = metadata_by_asset(rejected)["trained_model"]["model_key"]
    flip_failed_verdict(model_key, "challenger_not_worse")
    # under the very settings the forged verdict names: not believed, judged again, refused
    code, output = register_alone(champion, GATES)
    assert code != 0 and f"model {model_key} was not registered" in output
    assert "verdict not believed" in output and "signature does not verify" in output
    assert "challenger_not_worse failed: challenger is worse" in output
    # the command, with its run config
    flip_failed_verdict(model_key, "challenger_not_worse")
    code, output = register_alone(champion, json.loads(ATTACK_A)["resources"]["gates"]["config"])
    assert code != 0 and "challenger_not_worse failed: challenger is worse" in output
    assert registry_state() == ([1], 1)
    request = evaluate_sensor()  # the sensor would deploy the champion, v1, and nothing else
    assert isinstance(request, SkipReason) or request.tags["model_version"] == "1"


def forged_serving_folder(source: Path, dest: Path) -> str:
    """A self-consistent serving artifact that adds $50,000 to every price: arrays,
    reference rows and manifest all agree. Returns the forged manifest's sha256."""
    shutil.copytree(source, dest)
    with np.load(dest / NPZ_FILE, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    arrays["offset"] = arrays["offset"] + 50_000
    for name in ("reference_charges", "reference_lower", "reference_upper"):
        arrays[name] = arrays[name] + 50_000
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (dest / NPZ_FILE).write_bytes(buffer.getvalue())
    manifest = json.loads((dest / MANIFEST_FILE).read_text())
    manifest["sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    (dest / MANIFEST_FILE).write_text(json.dumps(manifest))
    from insurance_pipeline.compiled.artifact import load_artifact, manifest_digest

    load_artifact(dest)  # the service itself would take it: only the signature stops it
    return manifest_digest(dest)


def test_a_forged_serving_artifact_is_never_exported_or_built(champion, tmp_path):
    """Attack D: the champion's serving artifact replaced in its finished run by a
    self-consistent one that adds $50,000, and the version's sha tag re-pinned."""
    registry = mlflow()
    version = registry.alias_version("champion")
    honest = tmp_path / "honest"
    assert export_champion(honest).returncode == 0
    forged = tmp_path / "forged"
    forged_digest = forged_serving_folder(honest, forged)
    served = artifact_root(version.run_id) / SERVING_ARTIFACT_PATH
    saved = tmp_path / "saved"
    shutil.copytree(served, saved)
    original_tag = version.tags[SERVING_SHA_TAG]
    try:
        for name in (NPZ_FILE, MANIFEST_FILE):
            registry.log_artifact(version.run_id, forged / name, SERVING_ARTIFACT_PATH)
        registry.set_version_tag(version.version, SERVING_SHA_TAG, forged_digest)
        dest = tmp_path / "export"
        proc = export_champion(dest)
        assert proc.returncode == 1
        assert "version 1" in proc.stderr and NPZ_FILE in proc.stderr, proc.stderr
        assert not dest.exists() or not (dest / NPZ_FILE).exists()  # nothing forged written
        result = deploy(1, DeployRunnerResource(mode="dry-run"))
        assert not result.success
        message = failure_messages(result)
        assert "deploy of version 1 refused" in message and NPZ_FILE in message
    finally:
        shutil.rmtree(served)
        shutil.copytree(saved, served)
        registry.set_version_tag(version.version, SERVING_SHA_TAG, original_tag)
    assert export_champion(tmp_path / "again").returncode == 0  # the honest one still ships
    assert registry_state() == ([1], 1) and mlflow().alias_version("deployed") is None


def test_an_edited_cache_value_is_refused_and_recomputed(champion):
    """Attack E: a step-cache value (validation_metrics: r2 raised to 0.995) edited and its
    sha256 re-pinned in meta.json, then a run with an r2 floor of 0.99."""
    config = tiny_run_config(gates={"r2_floor": 0.99}, train_test_split={"seed": 21})
    first = materialize(config)
    assert not first.success and registry_state() == ([1], 1)
    entry = entry_of(champion, first, "validation_metrics")
    value = json.loads(value_file(entry).read_text())
    value["fields"]["metrics"]["fields"]["r2"] = 0.995
    forge_entry(entry, json.dumps(value).encode())
    again = materialize(config)
    assert not again.success
    assert metadata_by_asset(again)["validation_metrics"]["cache"] == "miss"
    with DagsterInstance.get() as instance:
        logs = instance.all_logs(again.run_id)
    warnings = [e.user_message for e in logs if "step cache entry refused" in e.user_message]
    assert any(str(entry) in w and "signature does not verify" in w for w in warnings), warnings
    assert registry_state() == ([1], 1)


def exploit(marker: Path) -> bytes:
    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    return pickle.dumps(Exploit())


def test_a_planted_pickle_in_the_cache_never_runs(champion, tmp_path):
    """Attack P (cache): a pickle whose __reduce__ runs a shell command, planted in a cache
    entry with its sha256 re-pinned: the next `cli run` never executes it."""
    config = tiny_run_config(gates={"r2_floor": 0.99}, train_test_split={"seed": 21})
    first = materialize(config)
    marker = tmp_path / "pwned-by-cache"
    forge_entry(entry_of(champion, first, "trained_model"), exploit(marker))
    proc = run_cli(
        champion.env(), "run", "--seed", "21", "--r2-floor", "0.99", "--log-level", "ERROR"
    )
    assert proc.returncode == 1
    assert not marker.exists()
    assert registry_state() == ([1], 1)


def test_a_planted_pickle_in_mlflow_is_never_unpickled(champion, tmp_path):
    """Attack P (MLflow): the champion's logged pickle replaced by one that runs a shell
    command, its statement tag re-pinned; then a challenger's comparison."""
    registry = mlflow()
    version = registry.alias_version("champion")
    stored = artifact_root(version.run_id) / PICKLE_ARTIFACT
    marker = tmp_path / "pwned-by-mlflow"
    saved = stored.read_bytes()
    original = registry.run_tag(version.run_id, PICKLE_TAG)
    try:
        stored.write_bytes(exploit(marker))
        forged = json.loads(original)
        forged["payload"]["sha256"] = hashlib.sha256(stored.read_bytes()).hexdigest()
        registry.client().set_tag(version.run_id, PICKLE_TAG, json.dumps(forged))
        result = materialize(tiny_run_config(gates=GATES, train_test_split={"seed": 22}))
        assert not result.success
        message = failure_messages(result)
        assert "champion v1 cannot be compared with" in message and "model.pkl" in message
    finally:
        stored.write_bytes(saved)
        registry.client().set_tag(version.run_id, PICKLE_TAG, original)
    assert not marker.exists()
    assert registry_state() == ([1], 1)


def training_runs() -> int:
    with DagsterInstance.get() as instance:
        return len(instance.get_run_records(RunsFilter(job_name="training")))


def test_a_policy_out_of_range_fails_before_any_step(champion):
    """Attack F: `cli run --r2-floor -1000` (and the same policy through Dagster itself)."""
    before = training_runs()
    proc = run_cli(champion.env(), "run", "--r2-floor", "-1000", "--log-level", "ERROR")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2
    assert "r2_floor=-1000.0 is outside its range [0, 1]" in output, output
    assert training_runs() == before  # refused before a run started
    proc = dagster_cli(
        champion,
        *("asset", "materialize", "-m", "insurance_pipeline.definitions", "--select"),
        *("group:training", "--config-json"),
        '{"resources":{"gates":{"config":{"coverage_low":0.9,"coverage_high":0.5}}}}',
    )
    assert proc.returncode != 0
    assert "the low bound must be below the high one" in proc.stdout + proc.stderr
    with DagsterInstance.get() as instance:
        latest = instance.get_run_records(RunsFilter(job_name="__ASSET_JOB"), limit=1)[0]
        assert instance.get_run_stats(latest.dagster_run.run_id).steps_succeeded == 0
    assert registry_state() == ([1], 1)


def test_a_password_in_the_registry_uri_is_in_no_message(champion):
    """Attack S: an MLflow URI in README's form with a password in it, and a registry error
    (a real registry endpoint that refuses every call)."""
    secret = f"PW{uuid.uuid4().hex}"
    with serve_failing_registry(f"mlflow:{secret}@") as registry:
        env = {**champion.env(), "MLFLOW_REGISTRY_URI": registry}
        env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
        proc = run_cli(env, "run", "--log-level", "DEBUG")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "token may not read the registry" in output
    assert secret not in output
    assert "mlflow:***@127.0.0.1" in output
    with DagsterInstance.get() as instance:
        latest = instance.get_run_records(RunsFilter(job_name="training"), limit=1)[0]
        logs = instance.all_logs(latest.dagster_run.run_id)
    text = "\n".join(str(entry) for entry in logs)
    assert secret not in text and "mlflow:***@" in text


def test_an_approval_signed_by_another_key_is_not_deployable(champion, tmp_path):
    from insurance_pipeline.core.gates.decision import APPROVAL
    from insurance_pipeline.core.trust.statements import sign_statement

    registry = mlflow()
    version = registry.alias_version("champion")
    original = version.tags[APPROVAL_TAG]
    payload = json.loads(original)["payload"]
    stranger = Signer(generate_key(tmp_path / "stranger.pem"))
    try:
        registry.set_version_tag(
            version.version, APPROVAL_TAG, sign_statement(APPROVAL, payload, stranger)
        )
        skipped = evaluate_sensor()
        assert isinstance(skipped, SkipReason)
        assert "signature does not verify under a trusted key" in skipped.skip_message
        assert export_champion(tmp_path / "export").returncode == 1
    finally:
        registry.set_version_tag(version.version, APPROVAL_TAG, original)
    assert export_champion(tmp_path / "export").returncode == 0


def test_production_refuses_a_version_approved_under_weaker_settings(champion):
    """The champion was approved with an r2 floor of 0.5; production's own floor is 0.8."""
    runner = DeployRunnerResource(mode="execute")
    production = {"INSURANCE_DEPLOYMENT": "production", "DEPLOY_DOCKER_BIN": "docker-not-here"}
    with patched_environ(production):
        result = deploy(1, runner)
    assert not result.success
    message = failure_messages(result)
    assert "approved under weaker settings" in message and "r2_floor 0.5" in message
    assert "exited 127" not in message  # refused before any command ran
    assert mlflow().alias_version("deployed") is None


def test_production_needs_its_signing_key(champion):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "INSURANCE_SIGNING_KEY"}
    env["INSURANCE_DEPLOYMENT"] = "production"
    proc = subprocess.run(
        [sys.executable, "-c", "import insurance_pipeline.definitions"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "INSURANCE_SIGNING_KEY is not set" in proc.stderr
    assert AssetKey("registered_model")  # (the local default is generated: see test_keys)
