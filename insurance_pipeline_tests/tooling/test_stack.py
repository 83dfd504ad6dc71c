"""The production-like stack (`make stack`, tooling/stack.py) with real servers on 127.0.0.1:
SeaweedFS for S3, an MLflow server on PostgreSQL with S3 artifacts, a Dask cluster, and
Dagster's daemon, webserver and gRPC code server on the production instance. Training runs
through it with no local state; a second machine hits every step; the UI's launch path works;
and the faults (racing writers, S3 or MLflow gone) lose nothing."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from insurance_pipeline.domain.layout import CHECKOUT
from insurance_pipeline_tests.helpers import (
    TINY_CLI,
    cache_states,
    evaluate_sensor,
    mlflow,
    patched_environ,
    registry_state,
    run_cli,
)
from tooling import stack


def _postgres_missing() -> str | None:
    try:
        stack._postgres().close()
        return None
    except RuntimeError as error:
        return str(error)


pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(_postgres_missing() is not None, reason=str(_postgres_missing())),
]


@pytest.fixture(scope="module")
def stack_env(tmp_path_factory):
    """A stack of its own (its folder, ports, databases), up for the module, then destroyed."""
    root = tmp_path_factory.mktemp("stack")
    # The operator's policy for tiny runs (production refuses a weaker --r2-floor).
    with patched_environ({"INSURANCE_STACK_DIR": str(root), "INSURANCE_GATE_R2_FLOOR": "0.5"}):
        try:
            stack.up()
            env = stack.Plan.load(root).client_env()
            with patched_environ(env):
                yield env
        finally:
            stack.destroy()


def machine(tmp_path_factory, env: dict[str, str], name: str) -> dict[str, str]:
    """A client machine: the stack's environment and an empty state dir of its own."""
    return {**env, "INSURANCE_STATE_DIR": str(tmp_path_factory.mktemp(name))}


def env_file(path: Path) -> dict[str, str]:
    """What `source .stack/env` sets, read by the shell itself."""
    shown = subprocess.run(
        ["bash", "-c", f"set -a; source {path}; env -0"], capture_output=True, check=True
    ).stdout
    return dict(item.split("=", 1) for item in shown.decode().split("\0") if "=" in item)


def test_up_writes_the_env_file_and_is_idempotent(stack_env):
    root = stack.stack_dir()
    sourced = env_file(root / "env")
    for name in (
        "INSURANCE_DEPLOYMENT",
        "MLFLOW_TRACKING_URI",
        "DAGSTER_HOME",
        "DASK_SCHEDULER_ADDRESS",
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ):
        assert sourced[name] == stack_env[name], name
    assert sourced["INSURANCE_DEPLOYMENT"] == "production"
    assert sourced["MLFLOW_TRACKING_URI"].startswith("http://127.0.0.1:")
    running = stack._running(root)
    assert set(running) == {c.name for c in stack.components(stack.Plan.load(root))}
    stack.up()  # again: nothing restarted
    assert {n: i["pid"] for n, i in stack._running(root).items()} == {
        n: i["pid"] for n, i in running.items()
    }


def _status(url: str, user: str | None = None, password: str | None = None) -> int:
    import httpx

    auth = (user, password) if user else None
    return httpx.get(url, auth=auth, timeout=10).status_code


def test_every_service_refuses_a_request_without_credentials(stack_env):
    """MLflow (API and artifact proxy), S3, Dask and PostgreSQL each refuse a request
    without the stack's credentials and serve it with them; SeaweedFS's own ports are not
    reachable at all."""
    import ssl

    import boto3
    import psycopg2
    from botocore.exceptions import ClientError

    api = stack_env["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/experiments/search?max_results=1"
    login = (stack_env["MLFLOW_TRACKING_USERNAME"], stack_env["MLFLOW_TRACKING_PASSWORD"])
    artifacts = stack_env["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow-artifacts/artifacts"
    assert (_status(api), _status(api, "insurance", "guess")) == (401, 401)
    assert _status(api, *login) == 200
    assert (_status(artifacts), _status(artifacts, *login)) == (401, 200)

    def s3(access: str, secret: str):
        return boto3.client(
            "s3",
            endpoint_url=stack_env["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id=access,
            aws_secret_access_key=secret,
        ).list_objects_v2(Bucket=stack.BUCKET, MaxKeys=1)

    with pytest.raises(ClientError):
        s3("stranger", "not-the-secret")
    assert s3(stack_env["AWS_ACCESS_KEY_ID"], stack_env["AWS_SECRET_ACCESS_KEY"])
    plan = stack.Plan.load(stack.stack_dir())
    if plan.namespace:  # master, volume and filer live in SeaweedFS's own namespace
        for name in ("master", "volume", "filer"):
            with pytest.raises(OSError):
                socket_to(plan.ports[name])

    host, port = stack_env["DASK_SCHEDULER_ADDRESS"].removeprefix("tls://").split(":")
    context = ssl.create_default_context(cafile=stack_env["DASK_DISTRIBUTED__COMM__TLS__CA_FILE"])
    context.check_hostname = False
    # TLS 1.3 refuses after the handshake: the alert, or the closed socket when it wins the race
    with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED|EOF occurred"):
        with context.wrap_socket(socket_to(int(port))) as conn:
            conn.sendall(b"ping")
            conn.recv(1)
    with pytest.raises(OSError):  # plain TCP gets no Dask protocol either
        from distributed import Client

        Client(f"tcp://{host}:{port}", timeout=3)
    context.load_cert_chain(
        stack_env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT"],
        stack_env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"],
    )
    with context.wrap_socket(socket_to(int(port))) as conn:
        assert conn.version().startswith("TLS")

    database = {
        "host": stack_env["DAGSTER_PG_HOST"],
        "dbname": stack_env["DAGSTER_PG_DB"],
        "user": stack_env["DAGSTER_PG_USER"],
    }
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(**database, connect_timeout=5)
    with psycopg2.connect(**database, password=stack_env["DAGSTER_PG_PASSWORD"]) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            assert cur.fetchone() == (False,)
    conn.close()


def socket_to(port: int):
    import socket

    return socket.create_connection(("127.0.0.1", port), timeout=3)


def test_the_stacks_secrets_are_its_owners_alone(stack_env):
    root = stack.stack_dir()
    assert root.stat().st_mode & 0o777 == 0o700
    private = ["env", "plan.json", "s3.json", "mlflow-auth.ini", "weed/security.toml"]
    private += [p.relative_to(root).as_posix() for p in (root / "tls").glob("*-key.pem")]
    for name in private:
        assert (root / name).stat().st_mode & 0o777 == 0o600, name
    for folder in ("tmp", "state", "tls", "keys", "scratch"):
        assert (root / folder).stat().st_mode & 0o077 == 0, folder


def test_a_launch_that_sets_a_trust_resource_is_refused_by_the_webserver(stack_env):
    """The UI's launchpad and the GraphQL API validate run config against the same schema:
    the attacker's keys (or any other environment-only resource) never start a run."""
    from urllib.parse import urlparse

    from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

    url = urlparse(stack_env["DAGSTER_WEBSERVER_URL"])
    client = DagsterGraphQLClient(url.hostname, port_number=url.port)
    attack = {"resources": {"trust": {"config": {"signing_key": "/tmp/attacker.pem"}}}}
    with pytest.raises(DagsterGraphQLClientError) as refused:
        client.submit_job_execution(
            "training", repository_location_name="insurance_pipeline", run_config=attack
        )
    assert "signing_key" in str(refused.value.body if hasattr(refused.value, "body") else "") + str(
        refused.value
    )


def test_training_runs_through_the_stack_with_no_local_state(stack_env, tmp_path_factory):
    from dagster import DagsterInstance

    client = machine(tmp_path_factory, stack_env, "machine_a")
    proc = run_cli(client, "run", "--r2-floor", "0.5", "--log-level", "WARNING")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"on {stack_env['DASK_SCHEDULER_ADDRESS']}" in proc.stdout  # searched on the cluster
    assert "registered model: insurance_charges_model version 1" in proc.stdout
    assert "validation report: s3://" in proc.stdout
    assert list(Path(client["INSURANCE_STATE_DIR"]).iterdir()) == []

    # the registry and its artifacts are the server's: nothing on the client's disk
    experiment = mlflow().client().get_experiment_by_name("insurance_charges")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    assert registry_state() == ([1], 1)
    with DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.compute_log_manager).__name__ == "S3ComputeLogManager"
        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.default_pool_limit == 1
        limits = {
            (t["key"], t["value"]): t["limit"]
            for t in concurrency.run_queue_config.tag_concurrency_limits
        }
        assert limits[("dagster/job_name", "training")] == 1
        assert instance.run_monitoring_enabled
    # the deploy sensor sees the new champion, from the server
    from dagster import RunRequest

    request = evaluate_sensor()
    assert isinstance(request, RunRequest)
    assert request.run_config["ops"]["deployment"]["config"]["model_version"] == 1


def test_a_second_machine_hits_every_step(stack_env, tmp_path_factory):
    client = machine(tmp_path_factory, stack_env, "machine_b")
    proc = run_cli(client, "run", "--r2-floor", "0.5", "--log-level", "WARNING")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    states = [line.split()[-1] for line in proc.stdout.splitlines() if "cache:" in line]
    assert states and set(states) == {"hit"}, proc.stdout
    assert "new version: False" in proc.stdout
    assert registry_state() == ([1], 1)
    assert list(Path(client["INSURANCE_STATE_DIR"]).iterdir()) == []


def test_a_run_launched_through_the_webserver_succeeds(stack_env):
    """What the UI's "Materialize" does: GraphQL launch, the queue, the daemon, the code
    server, a run process; on the same cache (every step a hit)."""
    from urllib.parse import urlparse

    from dagster import DagsterInstance
    from dagster_graphql import DagsterGraphQLClient

    url = urlparse(stack_env["DAGSTER_WEBSERVER_URL"])
    client = DagsterGraphQLClient(url.hostname, port_number=url.port)
    search = dict(zip(TINY_CLI[::2], map(int, TINY_CLI[1::2]), strict=True))
    run_config = {
        "ops": {
            "tpot_pipeline": {"config": {k[2:].replace("-", "_"): v for k, v in search.items()}}
        },
        "resources": {"gates": {"config": {"r2_floor": 0.5}}},
    }
    run_id = client.submit_job_execution(
        "training", repository_location_name="insurance_pipeline", run_config=run_config
    )
    deadline = time.monotonic() + 240
    status = client.get_run_status(run_id)
    while status.value not in ("SUCCESS", "FAILURE", "CANCELED") and time.monotonic() < deadline:
        time.sleep(1)
        status = client.get_run_status(run_id)
    assert status.value == "SUCCESS"
    with DagsterInstance.get() as instance:
        states = cache_states(instance, run_id)
    assert states and set(states.values()) == {"hit"}, states


def _race(url: str, key_pem: str, barrier, index: int) -> None:
    from insurance_pipeline.cache.store import StepCache
    from insurance_pipeline.core.trust.keys import Signer

    signer = Signer(Path(key_pem))
    cache = StepCache(url, signer=signer)
    barrier.wait()
    cache.store("race", "one-key", {"writer": index, "blob": bytes([index]) * 300_000})


def test_racing_writers_of_one_key_leave_one_entry(stack_env):
    from insurance_pipeline.cache.store import META_FILE, StepCache
    from insurance_pipeline.core.trust.keys import Signer, Verifier

    url = f"s3://{stack.BUCKET}/race-{uuid.uuid4().hex[:8]}"
    key_pem = stack_env["INSURANCE_SIGNING_KEY"]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(8)
    writers = [ctx.Process(target=_race, args=(url, key_pem, barrier, i)) for i in range(8)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
        assert writer.exitcode == 0
    cache = StepCache(url, verifier=Verifier.of(Signer(Path(key_pem))))
    files = sorted(s.path.rsplit("/", 1)[-1] for s in cache.storage.list("race/one-key"))
    assert len(files) == 2 and META_FILE in files, files  # the winner's value and meta
    value = cache.load("race", "one-key").value
    assert value["blob"] == bytes([value["writer"]]) * 300_000  # whole, one writer's


def _run_until(env: dict[str, str], marker: str, then) -> tuple[int, str]:
    """The CLI's run; `then()` is called once `marker` appears in its output."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "insurance_pipeline.cli", "run", *TINY_CLI, "--r2-floor", "0.5"],
        env={**os.environ, **env},
        cwd=CHECKOUT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    fired = threading.Event()
    for line in proc.stdout:
        lines.append(line)
        if marker in line and not fired.is_set():
            fired.set()
            then()
    return proc.wait(timeout=600), "".join(lines)


def test_s3_gone_mid_run_fails_naming_it_and_the_rerun_resumes(stack_env, tmp_path_factory):
    from insurance_pipeline.cache.store import StepCache
    from insurance_pipeline.core.trust.keys import Signer, Verifier

    cache_url = f"s3://{stack.BUCKET}/cache-fault-{uuid.uuid4().hex[:8]}"
    client = {
        **machine(tmp_path_factory, stack_env, "machine_s3"),
        "INSURANCE_CACHE_DIR": cache_url,
    }
    code, output = _run_until(client, "TPOT search", lambda: stack.down(("s3",)))
    assert code != 0
    assert f"at {stack_env['AWS_ENDPOINT_URL']}" in output, output[-3000:]
    assert registry_state()[1] == 1  # nothing registered, the champion unchanged

    stack.up()
    # nothing partial: every entry there is complete, signed and whole
    cache = StepCache(
        cache_url, verifier=Verifier.of(Signer(Path(stack_env["INSURANCE_SIGNING_KEY"])))
    )
    entries = {
        s.path.rsplit("/", 1)[0] for s in cache.storage.list() if s.path.endswith("meta.json")
    }
    assert entries, "the steps before the search were committed"
    for entry in entries:
        step, key = entry.split("/")
        cache.load(step, key)
    committed = {entry.split("/")[0] for entry in entries}
    assert "tpot_pipeline" not in committed

    proc = run_cli(client, "run", "--r2-floor", "0.5", "--log-level", "WARNING")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    states = dict(line.split(" cache: ") for line in proc.stdout.splitlines() if " cache: " in line)
    states = {name.strip(): state for name, state in states.items()}
    assert all(states[step] == "hit" for step in committed), states
    assert states["tpot_pipeline"] == "miss"
    assert list(Path(client["INSURANCE_STATE_DIR"]).iterdir()) == []


def test_mlflow_gone_fails_naming_it_and_the_champion_stays(stack_env, tmp_path_factory):
    before = registry_state()
    stack.down(("mlflow",))
    try:
        client = {
            **machine(tmp_path_factory, stack_env, "machine_mlflow"),
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",  # fail in seconds, not minutes
        }
        # another split: a new model, which would become champion if the run went through
        proc = run_cli(client, "run", "--seed", "7", "--r2-floor", "0.5", "--log-level", "ERROR")
    finally:
        stack.up()
    assert proc.returncode != 0
    assert stack_env["MLFLOW_TRACKING_URI"] in proc.stdout + proc.stderr
    assert registry_state() == before


def test_down_stops_what_it_started_and_nothing_else(stack_env):
    root = stack.stack_dir()
    started = stack._running(root)
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        # a recorded pid that is now someone else's process is not ours to stop
        recorded = stack._state_path(root)
        with_stale = {**started, "stale": {"pid": bystander.pid, "argv": ["/no/such/weed"]}}
        recorded.write_text(json.dumps(with_stale))
        stopped = stack.down()
        assert sorted(stopped) == sorted(started)
        assert bystander.poll() is None
        for info in started.values():
            assert not Path(f"/proc/{info['pid']}").exists() or not stack._is_ours(info)
        assert stack.down() == []  # idempotent
    finally:
        bystander.kill()
