"""What deploying model version N means, as exact command lines.

    build   (docker build, or buildah bud) the image with version N's artifact baked in
    push    to the registry; the pushed digest is read back
    helm upgrade --install --rollback-on-failure --wait=watcher -f <values file>  (helm 4)

Values go to helm in a generated values file, never through `--set`: a comma or an equals
sign inside a value cannot rewrite another value. The deploy path hands the chart the image
by digest (`repository@sha256:…`). Every input is checked before any command runs, and the
chart is rendered with the real `helm template` and every object validated against the
Kubernetes schemas first, so a bad chart never reaches a registry or a cluster.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from insurance_pipeline.core.redact import without_credentials

PROJECT = Path(__file__).resolve().parents[2]
CHART = PROJECT / "deploy" / "helm" / "insurance-charges-model"
# The service's distribution: its pyproject and the packages it ships (the service and the
# vocabulary it shares with training), at the paths they have in the repository.
SERVICE_FILES = (
    "constraints.txt",
    "deploy/service/pyproject.toml",
    "insurance_pipeline/__init__.py",
    "insurance_pipeline/domain",
    "insurance_pipeline/compiled",
    "insurance_pipeline/serving",
)
MODEL_DIR = "model"
BUILDERS = ("docker", "buildah")

# host[:port]/path, lower case, as the distribution spec allows (no tag, no digest).
_REFERENCE = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)*(?::[0-9]{1,5})?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# Kubernetes names: a DNS-1123 label (a namespace: 63 characters; a helm release: 53).
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class DeployInputError(ValueError):
    """A value that would go into a deploy command is malformed; the message names it."""


@dataclass(frozen=True)
class DeployTarget:
    registry: str = "registry.local"
    image_name: str = "insurance-charges-model"
    release: str = "insurance-charges-model"
    namespace: str = "model-services"
    timeout: str = "5m"
    kube_context: str | None = None
    builder: str = "docker"
    tls_verify: bool = True  # False only for a plain-HTTP registry (a local test registry)
    build_volumes: tuple[str, ...] = ()  # buildah -v mounts, e.g. a CA bundle, read-only
    base_image: str | None = None  # the Dockerfile's BASE_IMAGE; None: its pinned default
    values_files: tuple[str, ...] = field(default_factory=tuple)  # extra chart values

    @property
    def repository(self) -> str:
        return f"{self.registry}/{self.image_name}" if self.registry else self.image_name


def image_tag(version: int) -> str:
    return f"v{version}"


def validate_inputs(target: DeployTarget, version: Any, model_sha256: Any) -> None:
    """Fail before any command runs, naming the value that is wrong."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise DeployInputError(f"model version must be a positive integer, got {version!r}")
    if not isinstance(model_sha256, str) or not _SHA256.match(model_sha256):
        raise DeployInputError(
            f"model sha256 must be 64 lower-case hex characters, got {model_sha256!r}"
        )
    if not _REFERENCE.match(target.repository):
        raise DeployInputError(
            f"image repository {target.repository!r} (registry {target.registry!r}, image "
            f"{target.image_name!r}) is not a valid registry reference"
        )
    if target.builder not in BUILDERS:
        raise DeployInputError(f"builder must be one of {BUILDERS}, got {target.builder!r}")
    for what, name, longest in (
        ("release", target.release, 53),
        ("namespace", target.namespace, 63),
    ):
        if not isinstance(name, str) or len(name) > longest or not _DNS_LABEL.match(name):
            raise DeployInputError(
                f"{what} {name!r} is not a Kubernetes name (DNS-1123 label: lower-case letters, "
                f"digits and '-', at most {longest} characters)"
            )
    if target.base_image is not None:
        validate_image_reference(target.base_image, "base_image")


def validate_image_reference(reference: str, what: str = "image") -> str:
    """`repository[:tag][@sha256:…]`, as a build argument may hold it; else DeployInputError."""
    rest, _, digest = str(reference).partition("@")
    name, tag = rest, ""
    if ":" in rest.rsplit("/", 1)[-1]:
        name, _, tag = rest.rpartition(":")
    if (
        not _REFERENCE.match(name)
        or (tag and not _TAG.match(tag))
        or (digest and not _DIGEST.match(digest))
        or ("@" in reference and not digest)
    ):
        raise DeployInputError(
            f"{what} {reference!r} is not an image reference (repository[:tag][@sha256:<64 hex>])"
        )
    return reference


def validate_digest(digest: str) -> str:
    if not _DIGEST.match(digest or ""):
        raise DeployInputError(f"pushed image digest must be sha256:<64 hex>, got {digest!r}")
    return digest


def helm_values(
    target: DeployTarget,
    version: int,
    model_sha256: str,
    digest: str | None = None,
    trusted_key: str = "",
) -> dict[str, Any]:
    """The chart values the deploy path sets (nested, as a values file holds them);
    `trusted_key`, the PEM of the key that signed the folder, makes the pod check it."""
    model = {"version": str(version), "sha256": model_sha256}
    return {
        "namespace": target.namespace,
        "image": {
            "repository": target.repository,
            "tag": image_tag(version),
            "digest": digest or "",
        },
        "model": {**model, "trustedKey": trusted_key} if trusted_key else model,
    }


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{"image.tag": "v1"} -> {"image": {"tag": "v1"}}."""
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = nested
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def write_values_file(values: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(values), sort_keys=True))
    return path


def build_command(
    target: DeployTarget,
    *,
    version: int,
    model_sha256: str,
    context_dir: Path,
    binary: str,
    created: str = "",
    revision: str = "",
    source: str = "",
) -> list[str]:
    """The image build. `created` (RFC 3339), `revision` (the project's git commit) and
    `source` (its remote, if any) fill the original's OCI labels, with VERSION the model
    version."""
    args = [
        "--file",
        str(context_dir / "Dockerfile"),
        "--build-arg",
        f"MODEL_DIR={MODEL_DIR}",
        "--build-arg",
        f"MODEL_VERSION={version}",
        "--build-arg",
        f"MODEL_SHA256={model_sha256}",
        "--build-arg",
        f"DATE_CREATED={created}",
        "--build-arg",
        f"REVISION={revision}",
        "--build-arg",
        f"VERSION={version}",
        "--build-arg",
        f"SOURCE={source}",
    ]
    if target.base_image:
        args += ["--build-arg", f"BASE_IMAGE={target.base_image}"]
    args += ["--tag", f"{target.repository}:{image_tag(version)}", str(context_dir)]
    if target.builder == "buildah":
        mounts = [arg for volume in target.build_volumes for arg in ("--volume", volume)]
        # chroot isolation and the host network: what works without a daemon or runc
        return [binary, "bud", "--isolation", "chroot", "--network", "host", "--layers"] + [
            "--format",
            "docker",
            *mounts,
            *args,
        ]
    return [binary, "build", *args]


def source_revision(
    root: Path = PROJECT, ask: tuple[str, ...] = ("rev-parse", "HEAD"), default: str = "unknown"
) -> str:
    """The git commit the project's files come from (`default` outside a git checkout);
    with `ask=("remote", "get-url", "origin")`, where it is published."""
    import subprocess

    try:
        found = subprocess.run(
            ["git", "-C", str(root), *ask],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return default
    return found.stdout.strip() or default


def published_source(root: Path = PROJECT) -> str:
    """Where the project is published (git remote `origin`), without any user, password or
    token a remote URL may hold: it becomes an image label, a command line and metadata."""
    return without_credentials(source_revision(root, ("remote", "get-url", "origin"), ""))


def push_command(target: DeployTarget, *, version: int, digest_file: Path, binary: str):
    image = f"{target.repository}:{image_tag(version)}"
    if target.builder == "buildah":
        tls = [] if target.tls_verify else ["--tls-verify=false"]
        return [binary, "push", *tls, "--digestfile", str(digest_file), image, f"docker://{image}"]
    return [binary, "push", image]


def pushed_digest(builder: str, digest_file: Path, push_output: str) -> str:
    """buildah writes the digest to a file; docker prints `…: digest: sha256:… size: …`."""
    if builder == "buildah":
        text = digest_file.read_text().strip() if digest_file.exists() else ""
    else:
        found = re.search(r"digest: (sha256:[0-9a-f]{64})", push_output)
        text = found.group(1) if found else ""
    return validate_digest(text)


def upgrade_command(target: DeployTarget, values_file: Path, helm: str) -> list[str]:
    command = [
        helm,
        "upgrade",
        "--install",
        target.release,
        str(CHART),
        "--namespace",
        target.namespace,
        # no --create-namespace: the chart renders the namespace with its Pod Security labels
        "--rollback-on-failure",
        "--wait=watcher",
        "--timeout",
        target.timeout,
    ]
    for extra in (*target.values_files, str(values_file)):  # ours last: they win
        command += ["--values", extra]
    if target.kube_context:
        command += ["--kube-context", target.kube_context]
    return command


def stage_service(dest: Path, *, installable: bool = False) -> Path:
    """A copy of the service's sources, laid out as in the repository (what the Dockerfile
    copies); with `installable`, its pyproject also at the top, so that pip can install the
    folder (how `make install` builds .venv-serving). Returns `dest`."""
    import shutil

    if dest.exists():
        shutil.rmtree(dest)
    for name in SERVICE_FILES:
        source, target = PROJECT / name, dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target)
    if installable:
        shutil.copy2(PROJECT / "deploy/service/pyproject.toml", dest / "pyproject.toml")
    return dest


def stage_build_context(dest: Path) -> Path:
    """A minimal build context: the Dockerfile, the service's sources, and `model/` for the
    version's serving artifact (filled by the caller)."""
    import shutil

    stage_service(dest)
    shutil.copy2(PROJECT / "Dockerfile", dest / "Dockerfile")
    (dest / MODEL_DIR).mkdir()
    return dest / MODEL_DIR


def main(argv: list[str] | None = None) -> int:
    """`python -m insurance_pipeline.deploy.plan stage-service DEST` (used by `make`)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "stage-service":
        print("usage: python -m insurance_pipeline.deploy.plan stage-service DEST", file=sys.stderr)
        return 2
    print(stage_service(Path(args[1]), installable=True))
    return 0


def render_chart(
    values: Mapping[str, Any],
    *,
    helm: str = "helm",
    release: str = "insurance-charges-model",
    chart: Path = CHART,
    values_files: tuple[str, ...] = (),
) -> list[dict]:
    """`helm template` with these values (nested, or flat with dotted keys), passed in a
    values file; returns the rendered objects."""
    nested = nest(values) if any("." in key for key in values) else dict(values)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_values_file(nested, Path(tmp) / "values.yaml")
        files = [arg for name in (*values_files, str(path)) for arg in ("--values", name)]
        proc = subprocess.run(
            [helm, "template", release, str(chart), *files], capture_output=True, text=True
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


def restricted_violations(objects: list[dict]) -> list[str]:
    """What breaks the `restricted` Pod Security Standard in the pods these objects would run
    (Kubernetes' own rules, checked here so that a values file cannot loosen them before the
    cluster's admission sees it): host namespaces, ports and paths, privilege, escalation,
    root, capabilities, seccomp, volume types. Empty: none."""
    found = []
    for obj in objects:
        spec = _pod_spec(obj)
        if spec is None:
            continue
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        found += [f"{where}: {problem}" for problem in _pod_problems(spec)]
    return found


def _pod_spec(obj: dict) -> dict | None:
    kind = obj.get("kind")
    if kind == "Pod":
        return obj.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    if kind == "CronJob":
        job = ((obj.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}
        return (job.get("template") or {}).get("spec") or {}
    return None


_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
    "name",
}


def _pod_problems(spec: dict) -> list[str]:
    problems = [f"{key}: true" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    pod_context = spec.get("securityContext") or {}
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - _VOLUME_TYPES
        if kinds:
            problems.append(f"volume {volume.get('name')}: {', '.join(sorted(kinds))} not allowed")
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        problems += [
            f"container {container.get('name')}: {p}"
            for p in _container_problems(container, pod_context)
        ]
    return problems


def _container_problems(container: dict, pod: dict) -> list[str]:
    context = container.get("securityContext") or {}

    def setting(key):
        return context.get(key, pod.get(key))

    problems = []
    if context.get("privileged"):
        problems.append("privileged")
    if context.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation must be false")
    if setting("runAsNonRoot") is not True:
        problems.append("runAsNonRoot must be true")
    if setting("runAsUser") == 0:
        problems.append("runAsUser 0 (root)")
    capabilities = context.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        problems.append("capabilities must drop ALL")
    if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
        problems.append(f"capabilities added: {capabilities.get('add')}")
    seccomp = (setting("seccompProfile") or {}).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        problems.append("seccompProfile must be RuntimeDefault or Localhost")
    if any(port.get("hostPort") for port in container.get("ports") or []):
        problems.append("hostPort")
    return problems


if __name__ == "__main__":
    raise SystemExit(main())
