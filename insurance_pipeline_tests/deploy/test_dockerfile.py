"""The Dockerfile: hadolint-clean, multi-stage, serving-only, non-root, pinned model."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from insurance_pipeline.deploy.plan import PROJECT, stage_build_context
from insurance_pipeline_tests.helpers import TRAINING_STACK, imported_top_modules

pytestmark = pytest.mark.pure

DOCKERFILE = (PROJECT / "Dockerfile").read_text()


def test_hadolint_passes():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    proc = subprocess.run([hadolint, str(PROJECT / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_image_shape():
    assert len(re.findall(r"^FROM ", DOCKERFILE, re.M)) == 3  # build, native, the image
    assert re.search(r"^USER 10001", DOCKERFILE, re.M)
    assert "HEALTHCHECK" in DOCKERFILE and "/api/health/ready" in DOCKERFILE
    # the service's own distribution, with its signature checker only: no test or training
    # packages, no other extra
    installs = re.findall(r"pip install[^\n]*", DOCKERFILE)
    assert installs and all(
        re.findall(r"\[[^\]]*\]", line) in ([], ["[verify]"]) for line in installs
    )
    assert "model.sig" in DOCKERFILE  # the signature ships, for the pod to check
    assert "sha256sum -c" in DOCKERFILE and "ARG MODEL_SHA256" in DOCKERFILE
    for secret_word in ("PASSWORD", "TOKEN", "SECRET"):
        assert secret_word not in DOCKERFILE.upper()


def test_build_context_holds_only_what_the_image_needs(tmp_path):
    context = tmp_path / "context"
    model_dir = stage_build_context(context)
    assert {p.name for p in context.iterdir()} == {
        "Dockerfile",
        "constraints.txt",
        "deploy",
        "insurance_pipeline",
        "model",
    }
    assert {p.name for p in (context / "insurance_pipeline").iterdir()} == {
        "__init__.py",
        "compiled",
        "domain",
        "serving",
    }
    assert [p.relative_to(context).as_posix() for p in (context / "deploy").rglob("*.*")] == [
        "deploy/service/pyproject.toml"
    ]
    assert model_dir == context / "model"
    assert not list(context.rglob("__pycache__"))
    # README is not in the context: a benchmark rewriting it invalidates no image layer
    assert not list(context.rglob("README*"))


def test_no_file_the_image_installs_imports_the_training_stack(tmp_path):
    context = tmp_path / "context"
    stage_build_context(context)
    sources = sorted((context / "insurance_pipeline").rglob("*.py"))
    assert len(sources) > 10
    for path in sources:
        imported = imported_top_modules(path.read_text())
        assert not imported & set(TRAINING_STACK), (path, imported & set(TRAINING_STACK))


def test_the_image_bakes_in_the_compiled_model_and_no_native_runtime():
    from insurance_pipeline.compiled.artifact import ARTIFACT_FILES, MANIFEST_FILE

    # MODEL_SHA256 pins the manifest (which pins model.npz), checked at build time
    assert f"/app/model/{MANIFEST_FILE}" in DOCKERFILE and "sha256sum -c" in DOCKERFILE
    assert "load_artifact('/app/model', '${MODEL_SHA256}')" in DOCKERFILE
    final = DOCKERFILE.rsplit("\nFROM ", 1)[1]  # the image's own stage
    assert "COPY --chown=root:root ${MODEL_DIR}/ /app/model/" in final  # every served file
    assert "model.c" in DOCKERFILE and set(ARTIFACT_FILES) >= {"model.c", MANIFEST_FILE}
    # the forests' library is built in a stage of its own: no compiler, no OpenMP in the image
    assert "apt-get" not in final and "libgomp" not in DOCKERFILE and "gcc" not in final
    assert "COPY --from=native /opt/native/ /opt/native/" in final


def test_no_image_has_readme_or_docs_in_its_build_context(tmp_path):
    """A benchmark rewriting docs/benchmarks.md (or an edit to README) rebuilds no image."""
    from tooling.pipeline_image import stage_context

    context = stage_context(tmp_path / "pipeline")
    assert not list(context.rglob("README*")) and not (context / "docs").exists()
    ignored = (PROJECT / ".dockerignore").read_text().splitlines()
    assert ignored[0] == "*" and not [
        line for line in ignored if "README" in line or "docs" in line
    ]
