"""The service's settings: one class, read from the environment (pydantic-settings).

Every variable keeps the name the original service and the chart use (SERVICE_HOST,
APP_NAME, …); see docs/serving.md."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from insurance_pipeline.domain.layout import CHECKOUT, SERVED_ARTIFACT_DIR


def _default_artifact_dir() -> Path:
    state = os.environ.get("INSURANCE_STATE_DIR") or str(CHECKOUT)
    return Path(state).expanduser().resolve() / SERVED_ARTIFACT_DIR


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, protected_namespaces=()
    )

    host: str = Field(default="127.0.0.1", validation_alias="SERVICE_HOST")
    port: int = Field(default=8000, ge=1, le=65535, validation_alias="SERVICE_PORT")
    artifact_dir: Path = Field(
        default_factory=_default_artifact_dir, validation_alias="SERVING_ARTIFACT_DIR"
    )
    # The one model this deployment may load (set by the image and the chart).
    model_sha256: str | None = Field(default=None, validation_alias="MODEL_SHA256")
    # The pipeline's public key: the folder's OpenSSF signature must verify under it. In
    # production (set by the chart) it is required, and an unsigned folder is refused.
    trusted_key: Path | None = Field(default=None, validation_alias="MODEL_TRUSTED_KEY")
    deployment: Literal["local", "production"] = Field(
        default="local", validation_alias="INSURANCE_DEPLOYMENT"
    )
    # The forests in native code (the folder's model.c, compiled): on by default; off (or no
    # compiler and no prebuilt library) serves the numpy forests, the same prices.
    native: bool = Field(default=True, validation_alias="SERVING_NATIVE")
    native_library: Path | None = Field(default=None, validation_alias="SERVING_NATIVE_LIBRARY")
    # The pod's identity in every record comes from NODE_IP, POD_NAME, NODE_NAME and APP_NAME
    # as they are ("N/A" when unset: serving.logging).
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    # A YAML file, as the original's: its `logging` section configures logging (dictConfig)
    # in place of the default JSON lines, and its `service_title` titles the API.
    rest_config: Path | None = Field(default=None, validation_alias="REST_CONFIG")
    # The original logs every prediction's inputs; they are health data.
    log_prediction_inputs: bool = Field(default=True, validation_alias="LOG_PREDICTION_INPUTS")
    body_timeout: float = Field(default=10.0, gt=0, validation_alias="SERVICE_BODY_TIMEOUT_SECONDS")
    shutdown_timeout: float = Field(
        default=20.0, ge=0, validation_alias="SERVICE_SHUTDOWN_TIMEOUT_SECONDS"
    )
    # Connection limits (serving.protocol): what one client may hold of the server.
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, le=1024 * 1024, validation_alias="SERVICE_MAX_HEADER_BYTES"
    )
    header_timeout: float = Field(
        default=5.0, gt=0, le=300, validation_alias="SERVICE_HEADER_TIMEOUT_SECONDS"
    )
    keep_alive_timeout: float = Field(
        default=5.0, gt=0, le=300, validation_alias="SERVICE_KEEP_ALIVE_SECONDS"
    )
    max_connections: int = Field(
        default=1000, ge=8, le=100_000, validation_alias="SERVICE_MAX_CONNECTIONS"
    )
    # Threads that run batch predictions, off the event loop (the probes never wait on them).
    model_threads: int = Field(default=2, ge=1, le=32, validation_alias="SERVICE_MODEL_THREADS")

    @field_validator("model_sha256", "trusted_key", "native_library", "rest_config", mode="before")
    @classmethod
    def _unset_when_empty(cls, value):
        return value or None
