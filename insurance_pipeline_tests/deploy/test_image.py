"""The real image: built with buildah from the project's Dockerfile on a Debian base made
here, pushed to a real registry on loopback, run as uid 10001 and asked for a prediction.
The production deploy path runs for real up to the rollout, where helm meets no cluster."""

import datetime as dt
import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from insurance_pipeline.compiled.artifact import MANIFEST_FILE
from insurance_pipeline.deploy.plan import source_revision
from insurance_pipeline.resources import DeployRunnerResource
from insurance_pipeline.resources.deploy import CommandRecord
from insurance_pipeline.resources.mlflow import SERVING_SHA_TAG
from insurance_pipeline_tests.helpers import (
    TRAINING_LIBRARIES,
    TRAINING_STACK,
    deploy,
    export_champion,
    free_port,
    imported_top_modules,
    materialize,
    mlflow,
    patched_environ,
    require_image_tools,
    start_service,
    step_failures,
    stop,
    tiny_run_config,
    wait_http,
)
from tooling import images as base_image
from tooling.container import inspect_image, running_image

pytestmark = pytest.mark.image

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
GATES = {"r2_floor": 0.5}
IMAGE_NAME = "insurance-charges-model"
ORIGINAL_EXAMPLE = {
    "age": 65,
    "sex": "male",
    "bmi": 50,
    "children": 5,
    "smoker": True,
    "region": "southwest",
}
# Nothing for training in the image (the model is compiled to numpy arrays), nor an installer.
TRAINING_ONLY = (*TRAINING_LIBRARIES, "pip", "setuptools")


@pytest.fixture(scope="module")
def tools():
    require_image_tools("docker-registry")


@pytest.fixture(scope="module")
def registry(tools, tmp_path_factory):
    """Debian's docker-registry (the distribution registry) on a free loopback port."""
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        json.dumps(
            {
                "version": 0.1,
                "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
                "http": {"addr": f"127.0.0.1:{port}"},
            }
        )
    )
    process = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(root / "registry.log", "w"),
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/", timeout=30)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def champion(tools, workspace):
    assert materialize(tiny_run_config(gates=GATES)).success
    return mlflow().alias_version("champion")


@pytest.fixture(scope="module")
def base(tools):
    return base_image.ensure_base_image()


@pytest.fixture(scope="module", autouse=True)
def build_mounts():
    """The build's mounts come from the deployment's environment, as in production."""
    mounts = f"{CA_BUNDLE}:{CA_BUNDLE}:ro" if Path(CA_BUNDLE).exists() else ""
    with patched_environ({"DEPLOY_BUILD_VOLUMES": mounts}):
        yield


def deployer(registry, base, **overrides) -> DeployRunnerResource:
    return DeployRunnerResource(
        mode="execute",
        builder="buildah",
        registry=registry,
        tls_verify=False,  # the loopback registry speaks plain HTTP
        base_image=base,
        **overrides,
    )


@pytest.fixture(scope="module")
def production_deploy(champion, registry, base, tmp_path_factory):
    """The deployment asset in production mode: real build, real push, real helm, which can
    reach no cluster (an empty kubeconfig)."""
    kubeconfig = tmp_path_factory.mktemp("kube") / "config"
    kubeconfig.write_text("")
    saved = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(kubeconfig)
    try:
        started = time.monotonic()
        result = deploy(int(champion.version), deployer(registry, base))
        seconds = time.monotonic() - started
    finally:
        if saved is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = saved
    return result, seconds


def test_production_deploy_pushes_by_digest_then_fails_at_the_rollout(
    production_deploy, registry, champion
):
    result, _ = production_deploy
    assert not result.success
    failure = step_failures(result)[0]
    message = failure.event_specific_data.error.message
    assert "helm upgrade" in message and "exited 1" in message
    assert "Kubernetes cluster unreachable" in message or "kubernetes" in message.lower()
    metadata = failure.event_specific_data.user_failure_data.metadata
    commands = metadata["commands"].value
    assert [c["argv"][1] for c in commands] == ["bud", "push", "upgrade"]
    assert [c["exit_code"] for c in commands[:2]] == [0, 0]
    # pushed: the registry has it, under the digest the deploy path read back
    catalog = httpx.get(f"http://{registry}/v2/_catalog").json()
    assert IMAGE_NAME in catalog["repositories"]
    head = httpx.head(
        f"http://{registry}/v2/{IMAGE_NAME}/manifests/v{champion.version}",
        headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json, "
            "application/vnd.oci.image.manifest.v1+json"
        },
    )
    digest = head.headers["Docker-Content-Digest"]
    assert metadata["digest"].value == digest
    # the chart got the image by digest, in a values file
    upgrade = commands[2]["argv"]
    values_file = Path(upgrade[upgrade.index("--values") + 1])
    values = yaml.safe_load(values_file.read_text())
    assert values["image"]["digest"] == digest
    assert values["image"]["repository"] == f"{registry}/{IMAGE_NAME}"
    assert not any(arg.startswith("--set") for arg in upgrade)
    assert mlflow().alias_version("deployed") is None


def test_the_image_serves_the_champion_as_uid_10001(
    production_deploy, registry, champion, base, tmp_path
):
    image = f"{registry}/{IMAGE_NAME}:v{champion.version}"
    # the original's OCI labels, filled by the deployer
    labels = inspect_image(image)["OCIv1"]["config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == str(champion.version)
    assert labels["org.opencontainers.image.revision"] == source_revision()
    created = dt.datetime.fromisoformat(labels["org.opencontainers.image.created"])
    assert abs((dt.datetime.now(dt.UTC) - created).total_seconds()) < 3600
    for name in ("title", "description", "authors"):
        assert labels[f"org.opencontainers.image.{name}"], name
    assert labels["org.opencontainers.image.licenses"] == "MIT"  # LICENSE's SPDX id
    assert labels["org.opencontainers.image.base.name"] == base
    port = free_port()
    env = {"SERVICE_HOST": "127.0.0.1", "SERVICE_PORT": str(port)}
    with running_image(image, env=env) as ctr:
        seconds = wait_http(f"http://127.0.0.1:{port}/api/health/ready", timeout=30)
        # the service runs as uid 10001
        uids = {psutil.Process(pid).uids().real for pid in ctr.service_pids()}
        assert uids == {10001}
        answer = httpx.post(
            f"http://127.0.0.1:{port}/api/models/insurance_charges_model/prediction",
            json=ORIGINAL_EXAMPLE,
        )
        assert answer.status_code == 200, answer.text
        # what the image holds
        found = ctr.exec(
            "python",
            "-c",
            "import importlib.util as u, sys; "
            f"print([m for m in {list(TRAINING_ONLY)!r} if u.find_spec(m)])",
        )
        assert found.strip() == "[]", found
        compilers = ctr.exec("bash", "-c", "command -v gcc cc g++ clang c++ || true")
        assert compilers.strip() == ""
        # the forests' library, built from the signed model.c in the build stage, is used
        path = ctr.exec(
            "python",
            "-c",
            "from pathlib import Path; "
            "from insurance_pipeline.compiled.artifact import load_artifact; "
            "from insurance_pipeline.serving.state import NativeChoice, with_native_forests; "
            "print(with_native_forests(load_artifact('/app/model'), "
            "NativeChoice(True, Path('/opt/native/model-native.so')))[1])",
        )
        assert path.strip() == "native (model-native.so)", path
        # no file of the project's in the image imports the training stack
        listing = ctr.exec(
            "python",
            "-c",
            "import insurance_pipeline, pathlib, json; root = pathlib.Path("
            "insurance_pipeline.__file__).parent; print(json.dumps({str(p): p.read_text() "
            "for p in root.rglob('*.py')}))",
        )
        shipped = json.loads(listing)
        assert {
            pathlib_name.split("insurance_pipeline/")[1].split("/")[0] for pathlib_name in shipped
        } == {"__init__.py", "compiled", "domain", "serving"}, sorted(shipped)
        for path, source in shipped.items():
            assert not imported_top_modules(source) & set(TRAINING_STACK), path
        baked = ctr.exec("sha256sum", f"/app/model/{MANIFEST_FILE}").split()[0]
    assert baked == champion.tags[SERVING_SHA_TAG]  # the manifest, which pins model.npz
    # the checkout's own service, on the same exported artifact, answers the same to the cent
    exported = tmp_path / "artifact"
    assert export_champion(exported).returncode == 0
    local = start_service(exported, tmp_path / "local.log")
    try:
        expected = httpx.post(
            local.url + "/api/models/insurance_charges_model/prediction", json=ORIGINAL_EXAMPLE
        ).json()
    finally:
        stop(local)
    assert answer.json() == expected
    assert seconds < 30


class ClusterEdge(DeployRunnerResource):
    """Runs the build and the push for real; at the true edge (no cluster here) it records
    the exact helm command and answers as a working cluster would."""

    def run(self, argv):
        if len(argv) > 1 and argv[1] == "upgrade":
            return CommandRecord(argv=argv, executed=True, exit_code=0, seconds=0.0)
        return super().run(argv)


def test_a_successful_rollout_moves_the_deployed_alias(production_deploy, registry, base, champion):
    runner = ClusterEdge(**deployer(registry, base).model_dump())
    result = deploy(int(champion.version), runner)
    assert result.success, step_failures(result)[0].step_failure_data.error.message
    assert int(mlflow().alias_version("deployed").version) == int(champion.version)
