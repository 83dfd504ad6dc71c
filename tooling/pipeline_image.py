"""The pipeline image (deploy/pipeline/Dockerfile): the training stack and the Dagster
definitions, which Dagster's Helm chart runs as the code location and as each run's pod.

`python -m tooling.pipeline_image` (`make pipeline-image`) stages a build context with only
what the image needs (the package, pyproject.toml, the pins, the shipped CSV, the instance
configs and the charts), builds it with buildah on the project's Debian base (tooling/images),
and prints the image's name: `localhost/insurance-pipeline:<hash of the context>`. The
dependency layer is cached (`--layers`): a code change rebuilds only the code layer.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tooling import images

CHECKOUT = Path(__file__).resolve().parents[1]
REPOSITORY = "localhost/insurance-pipeline"
DOCKERFILE = CHECKOUT / "deploy" / "pipeline" / "Dockerfile"
# What the image holds of the checkout, laid out as in the checkout.
CONTEXT_FILES = (
    "constraints.txt",
    "pyproject.toml",
    "dagster.yaml",
    "Dockerfile",
    "data/insurance.csv",
    "deploy",
    "insurance_pipeline",
)
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def stage_context(dest: Path) -> Path:
    """Copy what the image needs into `dest` (emptied first); the Dockerfile as
    `pipeline.Dockerfile`. Returns `dest`."""
    if dest.exists():
        shutil.rmtree(dest)
    for name in CONTEXT_FILES:
        source, target = CHECKOUT / name, dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=IGNORED)
        else:
            shutil.copy2(source, target)
    shutil.copy2(DOCKERFILE, dest / "pipeline.Dockerfile")
    return dest


def context_digest(context: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(path.relative_to(context).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def build_command(context: Path, tag: str, base_image: str) -> list[str]:
    return [
        "buildah",
        "bud",
        "--isolation",
        "chroot",
        "--network",
        "host",
        "--layers",
        "--format",
        "docker",
        "--volume",
        f"{CA_BUNDLE}:{CA_BUNDLE}:ro",
        "--build-arg",
        f"BASE_IMAGE={base_image}",
        "--file",
        str(context / "pipeline.Dockerfile"),
        "--tag",
        tag,
        str(context),
    ]


def build_pipeline_image(log=print) -> str:
    """The image's name, built unless an image of this exact context exists."""
    base = images.ensure_base_image(log=log)
    with tempfile.TemporaryDirectory(prefix="insurance-pipeline-image-") as tmp:
        context = stage_context(Path(tmp) / "context")
        tag = f"{REPOSITORY}:{context_digest(context)}"
        if images.exists(tag):
            return tag
        log(f"building {tag} (the first build downloads the training stack: minutes)")
        proc = subprocess.run(build_command(context, tag, base), capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(
                f"building {tag} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
            )
    return tag


if __name__ == "__main__":
    try:
        print(build_pipeline_image(log=lambda line: print(line, file=sys.stderr)))
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(f"pipeline image: {error}", file=sys.stderr)
        sys.exit(1)
