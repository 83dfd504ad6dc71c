"""Runs deploy commands. `execute` runs them as subprocesses; `dry-run` (the local default)
records the exact command lines instead. The chart is rendered with the real helm in both
modes. Which one a deployment uses is chosen by INSURANCE_DEPLOYMENT (see definitions).

The programs it runs (helm, docker, buildah) and the volumes a build may mount come from the
deployment's environment (`DeploySettings`: DEPLOY_HELM_BIN, DEPLOY_DOCKER_BIN,
DEPLOY_BUILDAH_BIN, DEPLOY_BUILD_VOLUMES), never from run config: whoever can launch a run
cannot choose an executable. Nor can it choose where the model ships or what it is built
from: the Definitions bind `from_settings()` with `defs.resources.environment_only`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from dagster import ConfigurableResource
from pydantic import Field

from insurance_pipeline.deploy.plan import DeployTarget
from insurance_pipeline.settings import DeploySettings


@dataclass(frozen=True)
class CommandRecord:
    argv: list[str]
    executed: bool
    exit_code: int | None  # None: recorded, not run (dry-run)
    seconds: float
    output_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code in (0, None)

    def as_dict(self) -> dict:
        return {**asdict(self), "command": " ".join(self.argv)}


def _default_helm() -> str:
    beside_python = Path(sys.executable).parent / "helm"
    return str(beside_python) if beside_python.exists() else (shutil.which("helm") or "helm")


class DeployRunnerResource(ConfigurableResource):
    mode: Literal["dry-run", "execute"] = Field(
        default="dry-run", description="execute: run build/push/helm; dry-run: record them"
    )
    builder: Literal["docker", "buildah"] = Field(
        default="docker", description="what builds and pushes the image"
    )
    tls_verify: bool = Field(default=True, description="false only for a plain-HTTP registry")
    base_image: str | None = Field(
        default=None, description="BASE_IMAGE build argument: an image reference"
    )
    values_files: list[str] = Field(
        default_factory=list,
        description="extra chart values files (ours are applied last; the chart's schema "
        "refuses any key it does not define)",
    )
    registry: str = Field(default="registry.local", description="host[:port][/path]")
    image_name: str = Field(default="insurance-charges-model")
    release: str = Field(default="insurance-charges-model")
    namespace: str = Field(default="model-services")
    timeout: str = Field(default="5m", description="helm --timeout")
    kube_context: str | None = Field(default=None)
    command_timeout_s: float = Field(default=1800, description="kill a command after this")
    max_attempts: int = Field(
        default=3,
        ge=1,
        description="the sensor retries a failed deploy of a version at most this many times",
    )

    @classmethod
    def from_settings(cls) -> DeployRunnerResource:
        """This environment's deployer (DEPLOY_*): `execute` in production, `dry-run` in
        local; the registry, base image, TLS and names as the operator set them."""
        tools = DeploySettings()
        return cls(
            mode="execute" if tools.production else "dry-run",
            builder=tools.builder,
            tls_verify=tools.tls_verify,
            base_image=tools.base_image,
            values_files=[tools.values_file] if tools.values_file else [],
            registry=tools.registry,
            image_name=tools.image_name,
            release=tools.release,
            namespace=tools.namespace,
            timeout=tools.timeout,
            kube_context=tools.kube_context,
            max_attempts=tools.max_attempts,
        )

    def helm(self) -> str:
        return DeploySettings().helm_bin or _default_helm()

    def builder_binary(self) -> str:
        tools = DeploySettings()
        return tools.buildah_bin if self.builder == "buildah" else tools.docker_bin

    def target(self) -> DeployTarget:
        return DeployTarget(
            registry=self.registry,
            image_name=self.image_name,
            release=self.release,
            namespace=self.namespace,
            timeout=self.timeout,
            kube_context=self.kube_context,
            builder=self.builder,
            tls_verify=self.tls_verify,
            build_volumes=DeploySettings().volumes(),
            base_image=self.base_image,
            values_files=tuple(self.values_files),
        )

    def run(self, argv: list[str]) -> CommandRecord:
        if self.mode == "dry-run":
            return CommandRecord(argv=argv, executed=False, exit_code=None, seconds=0.0)
        started = time.perf_counter()
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=self.command_timeout_s
            )
            code, output = proc.returncode, (proc.stdout + proc.stderr)
        except FileNotFoundError as error:
            code, output = 127, f"{argv[0]}: not found ({error})"
        except subprocess.TimeoutExpired:
            code, output = 124, f"timed out after {self.command_timeout_s} s"
        return CommandRecord(
            argv=argv,
            executed=True,
            exit_code=code,
            seconds=round(time.perf_counter() - started, 3),
            output_tail=output[-2000:],
        )
