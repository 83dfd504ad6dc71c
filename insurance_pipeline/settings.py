"""The pipeline's settings, one pydantic-settings class per concern, read from the
environment (README "Configuration"). The service has its own (`serving.settings`).

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
    registry: str = Field(default="registry.local", validation_alias="DEPLOY_REGISTRY")
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

    @field_validator("values_file", "kube_context", "helm_bin", mode="before")
    @classmethod
    def _unset_when_empty(cls, value):
        return value or None


class ScheduleSettings(BaseSettings):
    model_config = _CONFIG
    retrain_cron: str = Field(default="0 3 * * 1", validation_alias="INSURANCE_RETRAIN_CRON")


class TrustSettings(BaseSettings):
    """The pipeline's signing key and the public keys verifiers trust (README "Trust")."""

    model_config = _CONFIG
    signing_key: Path | None = Field(default=None, validation_alias="INSURANCE_SIGNING_KEY")
    trusted_keys: str | None = Field(default=None, validation_alias="INSURANCE_TRUSTED_KEYS")

    def signing_key_path(self, environment: str, state_dir: Path) -> Path:
        """The private key's path. In `local` it defaults to one generated on first use under
        the state directory; in `production` it must be given."""
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
            raise TrustError(
                "INSURANCE_SIGNING_KEY is not set: in production the pipeline's private "
                "signing key (a PEM file, e.g. a mounted Secret) is required"
            )
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
