"""What deploying model version N means, as exact command lines.

    docker build  (image with version N's artifact baked in, tagged v<N>)
    docker push
    helm upgrade --install --rollback-on-failure --wait=watcher --timeout … (helm 4)

The chart is always rendered first with the real `helm template` and every object validated
against the Kubernetes schemas, so a bad chart never reaches a registry or a cluster.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[2]
CHART = PROJECT / "deploy" / "helm" / "insurance-charges-model"
# What the image is built from: the Dockerfile's COPY sources, nothing else.
CONTEXT_FILES = ("Dockerfile", "pyproject.toml", "constraints.txt", "README.md")
CONTEXT_PACKAGE = "insurance_pipeline"
MODEL_DIR = "model"


@dataclass(frozen=True)
class DeployTarget:
    registry: str = "registry.local"
    image_name: str = "insurance-charges-model"
    release: str = "insurance-charges-model"
    namespace: str = "model-services"
    timeout: str = "5m"
    kube_context: str | None = None

    @property
    def repository(self) -> str:
        return f"{self.registry}/{self.image_name}" if self.registry else self.image_name


def image_tag(version: int) -> str:
    return f"v{version}"


def helm_values(target: DeployTarget, version: int, model_sha256: str) -> dict[str, str]:
    return {
        "namespace": target.namespace,
        "image.repository": target.repository,
        "image.tag": image_tag(version),
        "model.version": str(version),
        "model.sha256": model_sha256,
    }


def _set_args(values: dict[str, str]) -> list[str]:
    args = []
    for key, value in values.items():
        args += ["--set-string", f"{key}={value}"]
    return args


def build_commands(
    target: DeployTarget,
    *,
    version: int,
    model_sha256: str,
    context_dir: Path,
    docker: str = "docker",
    helm: str = "helm",
) -> list[list[str]]:
    image = f"{target.repository}:{image_tag(version)}"
    build = [
        docker,
        "build",
        "--file",
        str(context_dir / "Dockerfile"),
        "--build-arg",
        f"MODEL_DIR={MODEL_DIR}",
        "--build-arg",
        f"MODEL_VERSION={version}",
        "--build-arg",
        f"MODEL_SHA256={model_sha256}",
        "--tag",
        image,
        str(context_dir),
    ]
    upgrade = [
        helm,
        "upgrade",
        "--install",
        target.release,
        str(CHART),
        "--namespace",
        target.namespace,
        "--create-namespace",
        "--rollback-on-failure",
        "--wait=watcher",
        "--timeout",
        target.timeout,
        *_set_args(helm_values(target, version, model_sha256)),
    ]
    if target.kube_context:
        upgrade += ["--kube-context", target.kube_context]
    return [build, [docker, "push", image], upgrade]


def stage_build_context(dest: Path) -> Path:
    """A minimal docker build context: the Dockerfile's sources, and `model/` for the
    version's serving artifact (filled by the caller)."""
    import shutil

    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in CONTEXT_FILES:
        shutil.copy2(PROJECT / name, dest / name)
    shutil.copytree(
        PROJECT / CONTEXT_PACKAGE,
        dest / CONTEXT_PACKAGE,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    (dest / MODEL_DIR).mkdir()
    return dest / MODEL_DIR


def render_chart(
    values: dict[str, str],
    *,
    helm: str = "helm",
    release: str = "insurance-charges-model",
    chart: Path = CHART,
) -> list[dict]:
    """`helm template` with these values; returns the rendered objects."""
    proc = subprocess.run(
        [helm, "template", release, str(chart), *_set_args(values)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise ChartError(f"helm template failed ({proc.returncode}): {proc.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


class ChartError(RuntimeError):
    pass


def validate_objects(objects: list[dict], kubernetes_version: str = "1.33.0") -> list[str]:
    """Every object against the Kubernetes JSON schemas (strict: no unknown fields)."""
    import kubernetes_validate

    problems = []
    for obj in objects:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, kubernetes_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{name}: {error.message} at {'/'.join(map(str, error.path))}")
        except Exception as error:  # noqa: BLE001 - unknown kinds/versions are problems too
            problems.append(f"{name}: {error}")
    return problems
