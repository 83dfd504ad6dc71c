"""MLflow tracking + registry, keyed by the trained model's key so that every call is
idempotent: a cache hit finds its run and its registered version instead of making new ones.

Gate verdicts live on the model's run as tags `verdict.<gate>.<settings id>` (JSON), so they
belong to the model, not to the Dagster run that judged them. A version that registration
approved carries the tag `gates.approved` (gate -> the settings it was judged under).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from insurance_pipeline.data.hashing import file_sha256
from insurance_pipeline.modeling.gates import (
    REQUIRED_GATES,
    Approval,
    Verdict,
    approval,
    settings_id,
)
from insurance_pipeline.serving.artifact import ARTIFACT_FILES, MODEL_FILE
from insurance_pipeline.settings import MODEL_NAME, get_settings

MODEL_KEY_TAG = "model_key"
MODEL_SHA_TAG = "model_file_sha256"
DATA_VERSION_TAG = "data_sha256"
# The serving artifact (format 2: model.npz + manifest.json). Versions registered with the
# format-1 tag and path are exported again by the next `registered_model` run.
SERVING_SHA_TAG = "serving_npz_sha256"
APPROVED_TAG = "gates.approved"
VERDICT_TAG_PREFIX = "verdict."
SERVING_ARTIFACT_PATH = "serving_npz"
TRAIN_ROWS_ARTIFACT = "train_row_ids.json"
MODEL_ARTIFACT = "joblib/model.joblib"


def verdict_tag(gate: str, settings_id: str) -> str:
    return f"{VERDICT_TAG_PREFIX}{gate}.{settings_id}"


def _is_not_found(error: Exception) -> bool:
    return getattr(error, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


class MlflowResource(ConfigurableResource):
    tracking_uri: str | None = Field(
        default=None, description="Default MLFLOW_TRACKING_URI or local SQLite"
    )
    registry_uri: str | None = Field(default=None, description="Default: the tracking URI")
    experiment_name: str | None = Field(default=None, description="Default MLFLOW_EXPERIMENT_NAME")
    artifact_root: str | None = Field(
        default=None, description="Artifact root for a new experiment"
    )
    model_name: str = Field(default=MODEL_NAME, description="Registered model name")

    # --- plumbing -------------------------------------------------------------------------
    def _uris(self) -> tuple[str, str]:
        """(tracking, registry). The registry: this resource's `registry_uri`, else the
        tracking URI given here, else MLFLOW_REGISTRY_URI (which defaults to tracking)."""
        settings = get_settings()
        if self.tracking_uri:
            return self.tracking_uri, self.registry_uri or self.tracking_uri
        return settings.mlflow_tracking_uri, self.registry_uri or settings.mlflow_registry_uri

    def active_registry_uri(self) -> str:
        return self._uris()[1]

    def client(self):
        import mlflow
        from mlflow import MlflowClient

        tracking, registry = self._uris()
        if tracking.startswith("sqlite:///"):
            Path(tracking.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # The fluent API (log_model) reads these globals; set them on every use.
        mlflow.set_tracking_uri(tracking)
        mlflow.set_registry_uri(registry)
        return MlflowClient(tracking_uri=tracking, registry_uri=registry)

    def experiment_id(self) -> str:
        client = self.client()
        name = self.experiment_name or get_settings().mlflow_experiment
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        root = (
            Path(self.artifact_root) if self.artifact_root else get_settings().mlflow_artifact_root
        )
        root.mkdir(parents=True, exist_ok=True)
        return client.create_experiment(name, artifact_location=root.resolve().as_uri())

    # --- runs -------------------------------------------------------------------------------
    def find_run(self, model_key: str) -> str | None:
        client = self.client()
        runs = client.search_runs(
            [self.experiment_id()],
            filter_string=(
                f"tags.{MODEL_KEY_TAG} = '{model_key}' and attributes.status = 'FINISHED'"
            ),
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def run_for(self, model_key: str) -> str:
        run_id = self.find_run(model_key)
        if run_id is None:
            raise LookupError(
                f"no MLflow run for model {model_key} in experiment "
                f"{self.experiment_name or get_settings().mlflow_experiment}: materialize "
                "trained_model first"
            )
        return run_id

    def log_trained_model(
        self,
        *,
        model_key: str,
        model: Any,
        model_file: Path,
        model_sha256: str,
        params: dict[str, Any],
        tags: dict[str, str],
        input_example,
        pip_requirements: list[str],
        train_row_ids: list[int],
    ) -> tuple[str, bool]:
        """Log the model once per `model_key`; returns (run_id, created)."""
        existing = self.find_run(model_key)
        if existing:
            return existing, False
        import mlflow
        import mlflow.sklearn
        from mlflow.models import infer_signature

        client = self.client()
        signature = infer_signature(input_example, model.predict(input_example))
        all_tags = {**tags, MODEL_KEY_TAG: model_key, MODEL_SHA_TAG: model_sha256}
        with mlflow.start_run(experiment_id=self.experiment_id(), tags=all_tags) as run:
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            # cloudpickle, not skops: the pipeline holds our own and TPOT classes, which skops
            # refuses; integrity is pinned instead by the joblib file's sha256 (tag above).
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                serialization_format="cloudpickle",
                signature=signature,
                input_example=input_example,
                pip_requirements=pip_requirements,
            )
            client.set_tag(run.info.run_id, "model_uri", info.model_uri)
            mlflow.log_artifact(str(model_file), artifact_path=Path(MODEL_ARTIFACT).parent.name)
            # The champion/challenger gate scores only rows a champion never trained on.
            mlflow.log_dict({"train_row_ids": train_row_ids}, TRAIN_ROWS_ARTIFACT)
        return run.info.run_id, True

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        client = self.client()
        for name, value in metrics.items():
            client.log_metric(run_id, name, float(value))

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client().log_artifact(run_id, str(path), artifact_path=artifact_path)

    # --- verdicts -------------------------------------------------------------------------
    def record_verdict(self, verdict: Verdict) -> None:
        """Store a gate's verdict on its model's run (idempotent: same gate and settings,
        latest judgement wins)."""
        run_id = self.run_for(verdict.model_key)
        self.client().set_tag(
            run_id, verdict_tag(verdict.gate, verdict.settings_id), verdict.to_json()
        )

    def verdicts(self, model_key: str, run_id: str | None = None) -> dict[str, Verdict]:
        """Every verdict recorded for the model (on `run_id` when already known), by tag."""
        tags = self.client().get_run(run_id or self.run_for(model_key)).data.tags
        return {
            name: Verdict.from_json(value)
            for name, value in tags.items()
            if name.startswith(VERDICT_TAG_PREFIX)
        }

    def version_approval(self, version) -> Approval:
        """Re-check a registered version: every required gate must have a passing verdict for
        its model under the settings registration approved it with. A version registered by
        any other path (no `gates.approved` tag) is refused."""
        model_key = version.tags.get(MODEL_KEY_TAG, "")
        data_version = version.tags.get(DATA_VERSION_TAG, "")
        approved = json.loads(version.tags.get(APPROVED_TAG) or "{}")
        unapproved = [gate for gate in REQUIRED_GATES if gate not in approved]
        run_id = self.find_run(model_key) if model_key else None
        if unapproved or run_id is None:
            return Approval(
                verdicts=(),
                problems=(
                    f"version {version.version} was not approved by registration for "
                    f"{', '.join(unapproved) or 'its model run'}",
                ),
            )
        found = self.verdicts(model_key, run_id)
        by_gate = {
            gate: found.get(verdict_tag(gate, settings_id(approved[gate])))
            for gate in REQUIRED_GATES
        }
        required = {gate: approved[gate] for gate in REQUIRED_GATES}
        return approval(by_gate, model_key=model_key, data_version=data_version, required=required)

    # --- registry -------------------------------------------------------------------------
    @contextlib.contextmanager
    def registry_lock(self):
        """One registration at a time per registry (a file lock beside a local store; a
        remote registry relies on the production instance running one training run at a
        time)."""
        tracking, registry = self._uris()
        if registry.startswith("sqlite:///"):
            path = Path(registry.removeprefix("sqlite:///")).with_suffix(".registry.lock")
        else:
            path = get_settings().artifacts_dir / "registry.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def version_for(self, model_key: str):
        client = self.client()
        versions = client.search_model_versions(
            f"name = '{self.model_name}' and tags.{MODEL_KEY_TAG} = '{model_key}'"
        )
        return max(versions, key=lambda v: int(v.version)) if versions else None

    def register(self, run_id: str, model_key: str, tags: dict[str, str]):
        """The registered version for `model_key`: found, or created from the run's model.
        Call under `registry_lock()`."""
        existing = self.version_for(model_key)
        if existing is not None:
            return existing, False
        import mlflow

        client = self.client()
        model_uri = client.get_run(run_id).data.tags["model_uri"]
        version = mlflow.register_model(
            model_uri, self.model_name, tags={**tags, MODEL_KEY_TAG: model_key}
        )
        return version, True

    def set_version_tag(self, version: str | int, key: str, value: str) -> None:
        self.client().set_model_version_tag(self.model_name, str(version), key, value)

    def download_serving_artifact(
        self, dest: Path, *, alias: str | None = None, version: int | None = None
    ) -> tuple[int, Path]:
        """Fetch the serving artifact of a version (by alias or number) into `dest` and check
        it against the sha256 recorded on the version at registration."""
        import shutil
        import tempfile

        if alias is not None:
            found = self.alias_version(alias)
            if found is None:
                raise LookupError(
                    f"no version of {self.model_name} has the alias {alias!r}; run `make run` first"
                )
        else:
            found = self.get_version(version)
        pinned = found.tags.get(SERVING_SHA_TAG)
        if not pinned:
            raise LookupError(
                f"version {found.version} has no serving artifact: it did not pass the gates, "
                "or an older release registered it (`make run` exports it again)"
            )
        dest.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".download-", dir=dest.parent))
        try:
            local = Path(
                self.client().download_artifacts(found.run_id, SERVING_ARTIFACT_PATH, str(staging))
            )
            _check_sha(local / MODEL_FILE, pinned, f"version {found.version}")
            for name in ARTIFACT_FILES:
                (local / name).replace(dest / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return int(found.version), dest

    def load_version_model(self, version) -> tuple[object, list[int]]:
        """A registered version's trained pipeline and the row ids it was fitted on. The
        file is checked against the sha256 recorded when it was logged before it is
        unpickled."""
        import tempfile

        import joblib

        client = self.client()
        pinned = client.get_run(version.run_id).data.tags.get(MODEL_SHA_TAG) or version.tags.get(
            MODEL_SHA_TAG
        )
        with tempfile.TemporaryDirectory() as tmp:
            model_path = Path(client.download_artifacts(version.run_id, MODEL_ARTIFACT, tmp))
            _check_sha(model_path, pinned, f"version {version.version}'s {MODEL_ARTIFACT}")
            model = joblib.load(model_path)
            rows_path = client.download_artifacts(version.run_id, TRAIN_ROWS_ARTIFACT, tmp)
            train_row_ids = json.loads(Path(rows_path).read_text())["train_row_ids"]
        return model, train_row_ids

    def get_version(self, version: int):
        from mlflow.exceptions import MlflowException

        client = self.client()
        try:
            return client.get_model_version(self.model_name, str(version))
        except MlflowException as error:
            # The stores disagree on the error code; only a version that is really absent
            # is "no such version", any other failure propagates.
            known = {v.version for v in client.search_model_versions(f"name = '{self.model_name}'")}
            if _is_not_found(error) or str(version) not in known:
                raise LookupError(f"{self.model_name} has no version {version}") from error
            raise

    def alias_version(self, alias: str):
        """The version holding `alias`, or None when the registered model or the alias does
        not exist. Any other registry error (unreachable, denied, broken) propagates: it is
        not "no champion"."""
        from mlflow.exceptions import MlflowException

        client = self.client()
        try:
            registered = client.get_registered_model(self.model_name)
        except MlflowException as error:
            if _is_not_found(error):
                return None
            raise
        version = (registered.aliases or {}).get(alias)
        if version is None:
            return None
        return client.get_model_version(self.model_name, str(version))

    def set_alias(self, alias: str, version: str | int) -> None:
        self.client().set_registered_model_alias(self.model_name, alias, str(version))


def _check_sha(path: Path, pinned: str | None, what: str) -> None:
    if not pinned:
        raise ValueError(f"{what}: no sha256 was recorded for {path.name}; refusing to load it")
    actual = file_sha256(path)
    if actual != pinned:
        raise ValueError(
            f"{what}: {path.name} has sha256 {actual}, but {pinned} was recorded when it was "
            "written; refusing to load it"
        )
