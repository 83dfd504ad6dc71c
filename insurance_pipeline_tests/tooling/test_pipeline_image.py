"""The pipeline image (deploy/pipeline/Dockerfile), built with buildah on the project's Debian
base: it loads the code location, answers as the gRPC code server the chart's values start,
runs as uid 10001, and ships neither pip nor a compiler."""

from __future__ import annotations

import subprocess
import time

import pytest

from insurance_pipeline_tests.helpers import DAGSTER, free_port, require_image_tools
from tooling import dagster_chart, pipeline_image
from tooling.container import inspect_image, run_in_image, running_image

pytestmark = pytest.mark.image


@pytest.fixture(scope="module")
def image():
    require_image_tools()
    return pipeline_image.build_pipeline_image(log=lambda line: None)


def test_the_image_loads_the_code_location(image):
    proc = run_in_image(
        image, "dagster", "definitions", "validate", "-m", "insurance_pipeline.definitions"
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Validation successful" in proc.stdout + proc.stderr


def test_the_code_server_the_chart_starts_answers(image):
    args = dagster_chart.code_location(dagster_chart.load_values())["dagsterApiGrpcArgs"]
    port = free_port()
    command = ["dagster", "api", "grpc", *args, "-h", "127.0.0.1", "-p", str(port)]
    with running_image(image, command=command):
        deadline = time.monotonic() + 120
        while True:
            check = subprocess.run(
                [DAGSTER, "api", "grpc-health-check", "-p", str(port)],
                capture_output=True,
                text=True,
            )
            if check.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_image_runs_unprivileged_without_installer_or_compiler(image):
    config = inspect_image(image)["OCIv1"]["config"]
    assert config["User"] == "10001:10001"
    found = run_in_image(
        image,
        "bash",
        "-c",
        "command -v pip pip3 gcc cc c++ || true; echo ---; ls /opt/venv/bin; echo ---; "
        "/opt/venv/bin/python -c 'import pip' 2>&1 || true",
    )
    tools, venv_bin, import_pip = found.stdout.split("---\n")
    assert tools.strip() == ""
    assert not [name for name in venv_bin.split() if name.startswith("pip")]
    assert "No module named 'pip'" in import_pip


def test_the_code_location_loads_with_exactly_the_environment_the_values_give(image, tmp_path):
    """The code server as deploy/dagster/values.yaml configures it: production, the trusted
    public key mounted from its ConfigMap, the secret's variables, no private key."""
    from insurance_pipeline.core.trust.keys import Signer
    from insurance_pipeline_tests.helpers import SESSION_KEY

    values = dagster_chart.load_values()
    secrets = {
        "insurance-pipeline-env": {
            "MLFLOW_TRACKING_URI": "http://mlflow.example.internal:5000",
            "MLFLOW_TRACKING_USERNAME": "insurance",
            "MLFLOW_TRACKING_PASSWORD": "from-the-secret",
            "AWS_ACCESS_KEY_ID": "from-the-secret",
            "AWS_SECRET_ACCESS_KEY": "from-the-secret",
        }
    }
    env = dagster_chart.code_server_environment(values, secrets)
    assert "INSURANCE_SIGNING_KEY" not in env and env["INSURANCE_DEPLOYMENT"] == "production"
    keys = tmp_path / "trusted-keys"
    keys.mkdir()
    trusted = keys / "signing-key.pub.pem"
    trusted.write_bytes(Signer(SESSION_KEY).public_pem())
    keys.chmod(0o755)
    trusted.chmod(0o644)
    mount = dagster_chart.code_server_mounts(values)["trusted-keys"]
    assert env["INSURANCE_TRUSTED_KEYS"] == f"{mount}/signing-key.pub.pem"
    # what the code server does at start: import the location and resolve its definitions
    load = (
        "from insurance_pipeline.definitions import defs\n"
        "repository = defs.get_repository_def()\n"
        "print('loaded', sorted(job.name for job in repository.get_all_jobs()))\n"
    )
    proc = run_in_image(image, "python", "-c", load, env=env, volumes=(f"{keys}:{mount}:ro",))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "loaded" in proc.stdout and "'deploy'" in proc.stdout and "'training'" in proc.stdout
    # and without the trusted key (or with the private key's variable unset and nothing
    # else), it says what is missing instead of crash-looping silently
    bare = {k: v for k, v in env.items() if k != "INSURANCE_TRUSTED_KEYS"}
    proc = run_in_image(image, "python", "-c", load, env=bare)
    assert proc.returncode != 0 and "INSURANCE_TRUSTED_KEYS" in proc.stderr
