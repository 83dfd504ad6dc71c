"""One settings object per process, read from the environment once.

Every path defaults to a folder inside the project checkout so that `make run` works on a
fresh clone; each can be moved with an environment variable (see README "Configuration").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# The checkout root in an editable install; overridable for installed copies.
DEFAULT_ROOT = PACKAGE_DIR.parent

# The registered model's name: the MLflow registry, the service's paths and its records.
MODEL_NAME = "insurance_charges_model"


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"environment variable {name}={value!r}: expected true or false")


@dataclass(frozen=True)
class Settings:
    root: Path
    data_path: Path
    cache_dir: Path
    artifacts_dir: Path
    mlflow_tracking_uri: str
    mlflow_registry_uri: str
    mlflow_experiment: str
    retrain_cron: str = "0 3 * * 1"
    # The model service (reads only the serving artifact folder):
    serving_artifact_dir: Path = Path(".artifacts/serving/champion")
    service_host: str = "127.0.0.1"
    service_port: int = 8000
    app_name: str = "insurance-charges-model"
    log_level: str = "INFO"
    log_prediction_inputs: bool = True  # the original logs inputs; they are health data
    service_body_timeout: float = 10.0  # seconds for a request body to arrive (else 408)
    service_shutdown_timeout: float = 20.0  # on SIGTERM, for in-flight requests to finish
    # Which resources the Definitions use (see DEPLOYMENTS in definitions.py):
    deployment: str = "local"
    deploy_registry: str = "registry.local"
    deploy_builder: str = "docker"
    deploy_values_file: str | None = None
    deploy_kube_context: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        root = _env_path("INSURANCE_PIPELINE_ROOT", DEFAULT_ROOT)
        state = _env_path("INSURANCE_STATE_DIR", root)
        mlflow_dir = state / ".mlflow"
        tracking = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{mlflow_dir / 'mlflow.db'}"
        return cls(
            root=root,
            data_path=_env_path("INSURANCE_DATA_PATH", root / "data" / "insurance.csv"),
            cache_dir=_env_path("INSURANCE_CACHE_DIR", state / ".cache" / "steps"),
            artifacts_dir=_env_path("INSURANCE_ARTIFACTS_DIR", state / ".artifacts"),
            mlflow_tracking_uri=tracking,
            mlflow_registry_uri=os.environ.get("MLFLOW_REGISTRY_URI") or tracking,
            mlflow_experiment=os.environ.get("MLFLOW_EXPERIMENT_NAME", "insurance_charges"),
            retrain_cron=os.environ.get("INSURANCE_RETRAIN_CRON", "0 3 * * 1"),
            serving_artifact_dir=_env_path(
                "SERVING_ARTIFACT_DIR", state / ".artifacts" / "serving" / "champion"
            ),
            service_host=os.environ.get("SERVICE_HOST", "127.0.0.1"),
            service_port=int(os.environ.get("SERVICE_PORT", "8000")),
            app_name=os.environ.get("APP_NAME", "insurance-charges-model"),
            log_level=os.environ.get("LOG_LEVEL", "INFO").upper(),
            log_prediction_inputs=_env_flag("LOG_PREDICTION_INPUTS", True),
            service_body_timeout=float(os.environ.get("SERVICE_BODY_TIMEOUT_SECONDS", "10")),
            service_shutdown_timeout=float(
                os.environ.get("SERVICE_SHUTDOWN_TIMEOUT_SECONDS", "20")
            ),
            deployment=os.environ.get("INSURANCE_DEPLOYMENT", "local").strip().lower(),
            deploy_registry=os.environ.get("DEPLOY_REGISTRY", "registry.local"),
            deploy_builder=os.environ.get("DEPLOY_BUILDER", "docker"),
            deploy_values_file=os.environ.get("DEPLOY_VALUES_FILE") or None,
            deploy_kube_context=os.environ.get("DEPLOY_KUBE_CONTEXT") or None,
        )

    @property
    def mlflow_artifact_root(self) -> Path:
        """Where a local (SQLite) MLflow store keeps artifacts: beside its database."""
        if self.mlflow_tracking_uri.startswith("sqlite:///"):
            return Path(self.mlflow_tracking_uri.removeprefix("sqlite:///")).parent / "artifacts"
        return self.artifacts_dir / "mlflow"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
