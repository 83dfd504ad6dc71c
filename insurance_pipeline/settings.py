"""The pipeline's settings, one pydantic-settings class per concern, read from the
environment (docs/configuration.md). The service has its own (`serving.settings`).

Every path defaults to the default state layout (`domain.layout`) under the checkout, so that
`make run` works on a fresh clone; each can be moved with an environment variable.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from insurance_pipeline.core.gates.policy import GatePolicy, PolicyError
from insurance_pipeline.domain import layout

_CONFIG = SettingsConfigDict(extra="ignore", populate_by_name=True, protected_namespaces=())
ENVIRONMENTS = ("local", "production")


def _location(given: str | None, default: Path) -> str:
    """A URL as given; a path made absolute."""
    if given and "://" in given:
        return given.rstrip("/")
    return str(Path(given).expanduser().resolve() if given else default)


class StateSettings(BaseSettings):
    """Where the data is read and local state is written."""

    model_config = _CONFIG
    root: Path = Field(default=layout.CHECKOUT, validation_alias="INSURANCE_PIPELINE_ROOT")
    state_dir: Path | None = Field(default=None, validation_alias="INSURANCE_STATE_DIR")
    data_path: Path | None = Field(default=None, validation_alias="INSURANCE_DATA_PATH")
    # A folder, or object storage (`s3://bucket/prefix`): a URL stays as given.
    cache_dir: str | None = Field(default=None, validation_alias="INSURANCE_CACHE_DIR")
    # Files that only pass through when the artifacts are remote; unset: a private folder
    # (mode 0700) made per process under the system's temporary directory.
    scratch_dir: Path | None = Field(default=None, validation_alias="INSURANCE_SCRATCH_DIR")
    artifacts_dir: str | None = Field(default=None, validation_alias="INSURANCE_ARTIFACTS_DIR")

    @model_validator(mode="after")
    def _defaults(self) -> StateSettings:
        self.root = self.root.expanduser().resolve()
        state = (self.state_dir or self.root).expanduser().resolve()
        self.state_dir = state
        self.data_path = (self.data_path or self.root / layout.SHIPPED_DATA).expanduser()
        self.cache_dir = _location(self.cache_dir, state / layout.CACHE_DIR)
        self.artifacts_dir = _location(self.artifacts_dir, state / layout.ARTIFACTS_DIR)
        return self


class MlflowSettings(BaseSettings):
    """The tracking server (runs) and the model registry, by the names MLflow itself reads."""

    model_config = _CONFIG
    tracking_uri: str | None = Field(default=None, validation_alias="MLFLOW_TRACKING_URI")
    registry_uri: str | None = Field(default=None, validation_alias="MLFLOW_REGISTRY_URI")
    experiment: str = Field(default="insurance_charges", validation_alias="MLFLOW_EXPERIMENT_NAME")
    # Who owns the model: each run's `engineering` tag (the MLflow guide's tag).
    team: str = Field(default="insurance_pipeline", min_length=1, validation_alias="INSURANCE_TEAM")

    @model_validator(mode="after")
    def _defaults(self) -> MlflowSettings:
        if not self.tracking_uri:
            self.tracking_uri = f"sqlite:///{StateSettings().state_dir / layout.MLFLOW_DB}"
        self.registry_uri = self.registry_uri or self.tracking_uri
        return self


class DeploySettings(BaseSettings):
    """Which environment's resources the Definitions use, and how it ships a model."""

    model_config = _CONFIG
    environment: Literal["local", "production"] = Field(
        default="local", validation_alias="INSURANCE_DEPLOYMENT"
    )
    # Where the approved model ships, and from what: the operator's, never run config's.
    registry: str = Field(default="registry.local", validation_alias="DEPLOY_REGISTRY")
    tls_verify: bool = Field(default=True, validation_alias="DEPLOY_TLS_VERIFY")
    base_image: str | None = Field(default=None, validation_alias="DEPLOY_BASE_IMAGE")
    image_name: str = Field(default="insurance-charges-model", validation_alias="DEPLOY_IMAGE")
    release: str = Field(default="insurance-charges-model", validation_alias="DEPLOY_RELEASE")
    namespace: str = Field(default="model-services", validation_alias="DEPLOY_NAMESPACE")
    timeout: str = Field(default="5m", validation_alias="DEPLOY_TIMEOUT")
    max_attempts: int = Field(default=3, ge=1, validation_alias="DEPLOY_MAX_ATTEMPTS")
    builder: Literal["docker", "buildah"] = Field(
        default="docker", validation_alias="DEPLOY_BUILDER"
    )
    values_file: str | None = Field(default=None, validation_alias="DEPLOY_VALUES_FILE")
    kube_context: str | None = Field(default=None, validation_alias="DEPLOY_KUBE_CONTEXT")
    # The programs a deploy runs, and what a buildah build may mount: this environment's own,
    # never run config (which anyone who can launch a run can write).
    helm_bin: str | None = Field(default=None, validation_alias="DEPLOY_HELM_BIN")
    docker_bin: str = Field(default="docker", validation_alias="DEPLOY_DOCKER_BIN")
    buildah_bin: str = Field(default="buildah", validation_alias="DEPLOY_BUILDAH_BIN")
    # SRC:DST:ro mounts, comma-separated (e.g. the host's CA bundle: never copied in)
    build_volumes: str = Field(default="", validation_alias="DEPLOY_BUILD_VOLUMES")

    @field_validator("environment", mode="before")
    @classmethod
    def _known(cls, value):
        name = str(value).strip().lower() or "local"
        if name not in ENVIRONMENTS:
            raise ValueError(
                f"INSURANCE_DEPLOYMENT={value!r} is not a deployment; use one of "
                + ", ".join(ENVIRONMENTS)
            )
        return name

    @field_validator("build_volumes")
    @classmethod
    def _read_only_mounts(cls, value: str) -> str:
        for volume in filter(None, (v.strip() for v in value.split(","))):
            if not re.fullmatch(r"/[^:,]+:/[^:,]+:ro", volume):
                raise ValueError(
                    f"DEPLOY_BUILD_VOLUMES: {volume!r} is not an absolute SRC:DST:ro mount"
                )
        return value

    def volumes(self) -> tuple[str, ...]:
        return tuple(v.strip() for v in self.build_volumes.split(",") if v.strip())

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @field_validator("values_file", "kube_context", "helm_bin", "base_image", mode="before")
    @classmethod
    def _unset_when_empty(cls, value):
        return value or None


class GatePolicySettings(BaseSettings):
    """This deployment's gate policy (INSURANCE_GATE_*): the thresholds every gate judges by
    unless run config makes them stricter. In `production` a run may only tighten them, and
    every deployer refuses a version approved under a weaker policy (docs/trust.md)."""

    model_config = _CONFIG
    r2_floor: float = Field(default=GatePolicy.r2_floor, validation_alias="INSURANCE_GATE_R2_FLOOR")
    r2_tolerance: float = Field(
        default=GatePolicy.r2_tolerance, validation_alias="INSURANCE_GATE_R2_TOLERANCE"
    )
    mae_tolerance: float = Field(
        default=GatePolicy.mae_tolerance, validation_alias="INSURANCE_GATE_MAE_TOLERANCE"
    )
    coverage_low: float = Field(
        default=GatePolicy.coverage_low, validation_alias="INSURANCE_GATE_COVERAGE_LOW"
    )
    coverage_high: float = Field(
        default=GatePolicy.coverage_high, validation_alias="INSURANCE_GATE_COVERAGE_HIGH"
    )

    def policy(self) -> GatePolicy:
        """The policy; a value outside its range is refused naming its variable."""
        try:
            return GatePolicy(**self.model_dump())
        except PolicyError as error:
            raise PolicyError(f"INSURANCE_GATE_*: {error}") from None


def environment_policy() -> GatePolicy:
    return GatePolicySettings().policy()


def required_policy() -> GatePolicy | None:
    """The policy a deployer holds every approval to: this environment's in `production`;
    none in `local`, where tiny runs approve under any in-range policy (the approval records
    which)."""
    return environment_policy() if DeploySettings().production else None


class CacheSettings(BaseSettings):
    """Bounds on what a step-cache read accepts: a larger entry is a miss, with a warning."""

    model_config = _CONFIG
    max_entry_bytes: int = Field(
        default=8 * 1024**3, ge=1, validation_alias="INSURANCE_CACHE_MAX_ENTRY_BYTES"
    )


class ScheduleSettings(BaseSettings):
    model_config = _CONFIG
    retrain_cron: str = Field(default="0 3 * * 1", validation_alias="INSURANCE_RETRAIN_CRON")


class TrustSettings(BaseSettings):
    """The pipeline's signing key and the public keys verifiers trust (docs/trust.md)."""

    model_config = _CONFIG
    signing_key: Path | None = Field(default=None, validation_alias="INSURANCE_SIGNING_KEY")
    trusted_keys: str | None = Field(default=None, validation_alias="INSURANCE_TRUSTED_KEYS")

    def signing_key_path(self, environment: str, state_dir: Path) -> Path | None:
        """The private key's path. In `local` it defaults to one generated on first use under
        the state directory; in `production` it is given where statements are signed (the
        run pods) and absent elsewhere (None: this process only verifies, with
        INSURANCE_TRUSTED_KEYS)."""
        from insurance_pipeline.core.trust.keys import TrustError, generate_key

        if self.signing_key is not None:
            path = self.signing_key.expanduser()
            if not path.is_file():
                raise TrustError(
                    f"INSURANCE_SIGNING_KEY={path}: no such file (the pipeline's private "
                    "signing key, a PEM file)"
                )
            return path
        if environment == "production":
            if not self.trusted_key_paths():
                raise TrustError(
                    "INSURANCE_SIGNING_KEY is not set, nor INSURANCE_TRUSTED_KEYS: in "
                    "production the pipeline's private signing key (a PEM file, e.g. a mounted "
                    "Secret) is required where statements are signed, and the trusted public "
                    "keys wherever they are checked"
                )
            return None
        return generate_key(state_dir / layout.SIGNING_KEY)

    def trusted_key_paths(self) -> tuple[Path, ...]:
        """INSURANCE_TRUSTED_KEYS: paths separated by commas or the path separator; empty:
        trust the signing key's own public half."""
        text = self.trusted_keys or ""
        parts = [p.strip() for p in re.split(rf"[,{re.escape(os.pathsep)}]", text)]
        return tuple(Path(p).expanduser() for p in parts if p)


class SearchSettings(BaseSettings):
    """Where the TPOT search runs (a standing Dask cluster, by the name Dask reads)."""

    model_config = _CONFIG
    scheduler_address: str = Field(default="", validation_alias="DASK_SCHEDULER_ADDRESS")
