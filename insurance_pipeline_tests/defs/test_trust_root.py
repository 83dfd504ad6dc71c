"""The trust root is the signing key and the operator's environment, nothing else (issue
"Production that holds"): each attack of that issue, reproduced against real Dagster, MLflow
and CLI processes. No run config moves a key, a destination or the deployer; in production a
run may only tighten a gate; the champion is the latest signed champion record, so a moved,
deleted or replayed pointer is refused naming both sides; and the faults around it (a
production DAGSTER_HOME without its config, an MLflow that does not answer, a token in a git
remote) surface fast and leak nothing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from dagster import (
    AssetKey,
    DagsterInvalidConfigError,
    RunRequest,
    SkipReason,
    validate_run_config,
)

from insurance_pipeline.core.gates.champion import record_tag
from insurance_pipeline.resources import DeployRunnerResource
from insurance_pipeline_tests.helpers import (
    SESSION_KEY,
    dagster_cli,
    definitions,
    deploy,
    evaluate_sensor,
    export_champion,
    failure_messages,
    materialize,
    mlflow,
    patched_environ,
    registry_state,
    release,
    run_cli,
    run_selection,
    tiny_run_config,
)

pytestmark = pytest.mark.dagster

PASSING = {"r2_floor": 0.5}
# A second model that must become champion whatever its tiny-budget quality.
LENIENT = {"r2_floor": 0.5, "r2_tolerance": 0.5, "mae_tolerance": 1.0}
# Each resource that carries trust, identity or a destination, and a key an attacker sets.
ENVIRONMENT_ONLY = {
    "trust": {"signing_key": "/tmp/attacker.pem", "trusted_keys": ["/tmp/attacker.pem"]},
    "dask": {"scheduler_address": "tcp://attacker.example:8786"},
    "mlflow": {"tracking_uri": "http://attacker.example"},
    "step_cache": {"root_dir": "/tmp/attacker-cache"},
    "io_manager": {"step_cache": {"root_dir": "/tmp/attacker-cache"}},
    "data": {"csv_path": "/tmp/attacker.csv"},
    "deployer": {"base_image": "attacker.example/base", "registry": "attacker.example"},
}


@pytest.fixture(scope="module")
def champions(workspace):
    """v1, then v2 (made champion under lenient gates): two records, champion v2."""
    assert materialize(tiny_run_config(gates=PASSING)).success
    result = materialize(tiny_run_config(gates=LENIENT, train_test_split={"seed": 3}))
    assert result.success, failure_messages(result)
    assert registry_state() == ([1, 2], 2)
    return workspace


def champion_record():
    return release().champion().record


@pytest.mark.parametrize("resource", sorted(ENVIRONMENT_ONLY))
def test_run_config_cannot_set_a_trust_or_destination_resource(champions, resource):
    defs = definitions()
    config = {"resources": {resource: {"config": ENVIRONMENT_ONLY[resource]}}}
    for job in ("training", "deploy"):
        job_def = defs.resolve_job_def(job)
        if resource not in job_def.resource_defs:
            continue
        with pytest.raises(DagsterInvalidConfigError) as refused:
            validate_run_config(job_def, config)
        message = str(refused.value)
        assert "Received unexpected config entr" in message
        assert all(key in message for key in ENVIRONMENT_ONLY[resource])
        assert f"root:resources:{resource}:config" in message


def test_a_launch_with_an_attackers_keys_is_refused_before_any_run(champions):
    """Attack 1: the `deploy` job launched with the attacker's keys (Dagster's own CLI; the
    UI's launchpad and GraphQL validate the same schema: tooling/test_stack launches one)."""
    before = runs()
    config = {
        "resources": {"trust": {"config": ENVIRONMENT_ONLY["trust"]}},
        "ops": {"deployment": {"config": {"model_version": 2}}},
    }
    proc = dagster_cli(
        champions,
        *("asset", "materialize", "-m", "insurance_pipeline.definitions"),
        *("--select", "deployment", "--config-json", json.dumps(config)),
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "unexpected config entries" in output and "'signing_key'" in output
    assert "at path root:resources:trust:config" in output
    assert runs() == before  # refused at launch: no run was created
    # the search's address is not an op's config either (attack 5)
    training = definitions().resolve_job_def("training")
    address = {"ops": {"tpot_pipeline": {"config": {"scheduler_address": "tcp://x:1"}}}}
    with pytest.raises(DagsterInvalidConfigError, match="scheduler_address"):
        validate_run_config(training, address)


def runs() -> int:
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        return len(instance.get_run_records())


def test_in_production_a_run_may_only_tighten_the_gates(champions):
    """Attack 4: `gates` at r2_floor 0 in production is refused when the run starts, before
    any step; a stricter floor is accepted; `--r2-floor` below the floor never starts."""
    production = {"INSURANCE_DEPLOYMENT": "production", "INSURANCE_GATE_R2_FLOOR": "0.8"}
    weaker = {"resources": {"gates": {"config": {"r2_floor": 0.0, "mae_tolerance": 1.0}}}}
    proc = dagster_cli(
        champions,
        *("asset", "materialize", "-m", "insurance_pipeline.definitions"),
        *("--select", "registered_model", "--config-json", json.dumps(weaker)),
        env=production,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "may only tighten" in output and "r2_floor 0.0 (this deployment requires 0.8)" in output
    assert "mae_tolerance 1.0" in output
    assert registry_state() == ([1, 2], 2)
    with patched_environ(production):
        from insurance_pipeline.resources import GatesResource

        assert GatesResource(r2_floor=0.9).policy().r2_floor == 0.9  # stricter: fine
    proc = run_cli({**champions.env(), **production}, "run", "--r2-floor", "0.5")
    assert proc.returncode == 2 and "may only tighten" in proc.stderr


def test_in_production_every_deployer_holds_approvals_to_the_environments_policy(
    champions, tmp_path
):
    """The champion was approved at r2_floor 0.5; production's floor is 0.8."""
    production = {"INSURANCE_DEPLOYMENT": "production", "INSURANCE_GATE_R2_FLOOR": "0.8"}
    with patched_environ(production):
        proc = export_champion(tmp_path / "export")
        skipped = evaluate_sensor()
        result = deploy(2, DeployRunnerResource(mode="execute"))
    assert proc.returncode == 1 and "approved under weaker settings" in proc.stderr
    assert isinstance(skipped, SkipReason) and "r2_floor 0.5" in skipped.skip_message
    assert not result.success and "approved under weaker settings" in failure_messages(result)
    assert not (tmp_path / "export").exists()


def test_a_deleted_alias_is_tampering_never_no_champion(champions):
    """Attack 2: the alias deleted, then registration of a model the record's champion
    beat: refused, naming the record."""
    registry = mlflow()
    registry.client().delete_registered_model_alias(registry.model_name, "champion")
    try:
        result = run_selection([AssetKey("champion_comparison"), AssetKey("registered_model")])
        assert not result.success
        message = failure_messages(result)
        assert "'champion' was deleted, but the signed champion record says v2" in message
        assert registry_state() == ([1, 2], None)
    finally:
        registry.set_alias("champion", 2)


def test_a_moved_alias_deploys_nothing_and_exports_nothing(champions, tmp_path):
    """Attack 3: `set_registered_model_alias(name, "champion", 1)`."""
    mlflow().set_alias("champion", 1)
    try:
        skipped = evaluate_sensor()
        assert isinstance(skipped, SkipReason)
        assert "'champion' points at v1, but the signed champion record says v2" in (
            skipped.skip_message
        )
        proc = export_champion(tmp_path / "export")
        assert proc.returncode == 1 and "points at v1" in proc.stderr
        result = deploy(1, DeployRunnerResource())
        assert not result.success and "points at v1" in failure_messages(result)
    finally:
        mlflow().set_alias("champion", 2)
    assert isinstance(evaluate_sensor(), RunRequest)


def test_a_replayed_record_is_refused_by_its_sequence_number(champions):
    registry, first = mlflow(), champion_record()
    tags, _ = registry.registered_state()
    # record 1 (v1) copied under a newer sequence number: not believed
    registry.set_registered_tag(record_tag(first.sequence + 1), tags[record_tag(1)])
    try:
        assert champion_record() == first
    finally:
        registry.client().delete_registered_model_tag(
            registry.model_name, record_tag(first.sequence + 1)
        )
    # this environment deploys record 2; then record 2 is deleted and the alias set back:
    # the latest valid record (1) is older than the one deployed
    assert deploy(2, DeployRunnerResource()).success
    registry.client().delete_registered_model_tag(registry.model_name, record_tag(2))
    registry.set_alias("champion", 1)
    try:
        skipped = evaluate_sensor()
        assert isinstance(skipped, SkipReason)
        assert "older than record 2, which this environment's deploys already acted on" in (
            skipped.skip_message
        )
        assert not deploy(1, DeployRunnerResource()).success
    finally:
        registry.set_registered_tag(record_tag(2), tags[record_tag(2)])
        registry.set_alias("champion", 2)


def cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m insurance_pipeline.cli ARGS` in this module's workspace."""
    return subprocess.run(
        [sys.executable, "-m", "insurance_pipeline.cli", *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_rolling_back_is_an_explicit_signed_act(champions):
    proc = cli("promote", "--version", "1", "--reason", " ")
    assert proc.returncode == 1 and "promote needs a reason" in proc.stderr
    assert champion_record().version == 2
    before = champion_record().sequence
    promoted = cli("promote", "--version", "1", "--reason", "v2 misprices smokers")
    assert promoted.returncode == 0, promoted.stderr
    record = champion_record()
    assert (record.version, record.sequence, record.previous_version) == (1, before + 1, 2)
    assert record.reason == "promoted: v2 misprices smokers"
    assert registry_state() == ([1, 2], 1)
    request = evaluate_sensor()
    assert isinstance(request, RunRequest) and request.tags["model_version"] == "1"
    assert release().promote(2, "back to v2").sequence == before + 2
    missing = cli("promote", "--version", "99", "--reason", "no such version")
    assert missing.returncode == 1 and "has no version 99" in missing.stderr


def test_export_champion_pins_what_it_exported(champions, tmp_path):
    from insurance_pipeline.compiled.artifact import manifest_digest

    dest = tmp_path / "champion"
    assert export_champion(dest).returncode == 0
    pin = (tmp_path / "champion.sha256").read_text().strip()
    assert pin == manifest_digest(dest) == mlflow().get_version(2).tags["serving_sha256"]


def test_production_needs_the_production_instance(champions, tmp_path):
    """Attack 10: `.stack/env` sourced with a new DAGSTER_HOME: no silent local instance."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**champions.env(), "INSURANCE_DEPLOYMENT": "production", "DAGSTER_HOME": str(home)}
    proc = run_cli(env, "run")
    assert proc.returncode == 2
    assert f"{home / 'dagster.yaml'} is not the production instance config" in proc.stderr


def test_the_code_server_loads_in_production_with_the_public_key_alone(champions, tmp_path):
    """Attack 9, in this process's environment (tooling/test_pipeline_image: in the image)."""
    from insurance_pipeline.core.trust.keys import Signer

    public = tmp_path / "signing-key.pub.pem"
    public.write_bytes(Signer(SESSION_KEY).public_pem())
    env = {k: v for k, v in os.environ.items() if k != "INSURANCE_SIGNING_KEY"}
    env |= {"INSURANCE_DEPLOYMENT": "production", "INSURANCE_TRUSTED_KEYS": str(public)}
    code = (
        "from insurance_pipeline.definitions import defs\n"
        "defs.get_repository_def()\n"
        "print('loaded')\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert loaded.returncode == 0 and "loaded" in loaded.stdout, loaded.stderr[-2000:]
    sign = (
        "from insurance_pipeline.resources import TrustResource\n"
        "TrustResource.from_settings().signer()\n"
    )
    refused = subprocess.run(
        [sys.executable, "-c", sign], env=env, capture_output=True, text=True, timeout=300
    )
    assert refused.returncode != 0 and "INSURANCE_SIGNING_KEY is not set" in refused.stderr


@pytest.fixture
def silent_mlflow():
    """A real TCP server that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


def test_an_mlflow_that_does_not_answer_fails_within_30_seconds(champions, silent_mlflow):
    """Attack 11, at its worst: a server that accepts and never answers."""
    from insurance_pipeline.resources import MlflowResource

    variables = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")
    with patched_environ({name: None for name in variables}):
        started = time.monotonic()
        with pytest.raises(Exception) as failed:
            MlflowResource(tracking_uri=silent_mlflow).alias_version("champion")
        seconds = time.monotonic() - started
    assert seconds < 30, seconds
    assert silent_mlflow.removeprefix("http://") in str(failed.value)


def test_a_token_in_the_git_remote_reaches_no_label(tmp_path):
    """Attack 12: the image's `source` label, the build command and its metadata."""
    from insurance_pipeline.deploy.plan import published_source

    token = "ghp_" + "0123456789abcdef" * 2
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "remote", "add", "origin"]
        + [f"https://{token}@github.com/acme/insurance.git"],
        check=True,
    )
    assert published_source(tmp_path) == "https://github.com/acme/insurance.git"
