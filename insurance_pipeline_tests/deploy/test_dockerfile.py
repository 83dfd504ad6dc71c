"""The Dockerfile: hadolint-clean, multi-stage, serving-only, non-root, pinned model."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

from insurance_pipeline.deploy.plan import PROJECT, stage_build_context

DOCKERFILE = (PROJECT / "Dockerfile").read_text()


def test_hadolint_passes():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    proc = subprocess.run([hadolint, str(PROJECT / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_image_shape():
    assert len(re.findall(r"^FROM ", DOCKERFILE, re.M)) == 2
    assert re.search(r"^USER 10001", DOCKERFILE, re.M)
    assert "HEALTHCHECK" in DOCKERFILE and "/api/health/ready" in DOCKERFILE
    # base (serving) install only: no extras, no test or training packages
    installs = re.findall(r"pip install[^\n]*", DOCKERFILE)
    assert installs and all("[" not in line for line in installs)
    assert "sha256sum -c" in DOCKERFILE and "ARG MODEL_SHA256" in DOCKERFILE
    for secret_word in ("PASSWORD", "TOKEN", "SECRET"):
        assert secret_word not in DOCKERFILE.upper()


def test_build_context_holds_only_what_the_image_needs(tmp_path):
    model_dir = stage_build_context(tmp_path / "context")
    names = {p.name for p in (tmp_path / "context").iterdir()}
    assert names == {
        "Dockerfile",
        "pyproject.toml",
        "constraints.txt",
        "README.md",
        "insurance_pipeline",
        "model",
    }
    assert model_dir == tmp_path / "context" / "model"
    assert not list((tmp_path / "context").rglob("__pycache__"))


def test_the_image_bakes_in_the_compiled_model_and_no_native_runtime():
    from insurance_pipeline.serving.artifact import ARTIFACT_FILES, MODEL_FILE

    assert f"/app/model/{MODEL_FILE}" in DOCKERFILE and "sha256sum -c" in DOCKERFILE
    copied = re.search(r"^COPY [^\n]*\$\{MODEL_DIR\}[^\n]*", DOCKERFILE, re.M).group(0)
    assert all(f"${{MODEL_DIR}}/{name}" in copied for name in ARTIFACT_FILES)
    assert "apt-get" not in DOCKERFILE and "libgomp" not in DOCKERFILE
