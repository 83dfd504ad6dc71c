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
