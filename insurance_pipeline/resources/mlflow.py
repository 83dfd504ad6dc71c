"""MLflow, thin: runs, tags, artifacts and registry calls through one client with this
resource's URIs (MLflow's process-global URIs are never touched). What the tags mean (the
signed verdicts, the signed approval) lives in `core.gates`; this only stores and fetches
them. Every error it raises has the credentials in URIs redacted."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from insurance_pipeline.core.redact import redact
from insurance_pipeline.domain.hashing import file_sha256
from insurance_pipeline.domain.schema import (  # noqa: F401 - the aliases, re-exported
    CHAMPION_ALIAS,
    DEPLOYED_ALIAS,
    FEATURE_COLUMNS,
    MODEL_NAME,
    NUMERIC_RULES,
    TARGET_COLUMN,
)
from insurance_pipeline.resources.locks import exclusive

# MLflow's own retry and timeout settings, so that an unreachable tracking server fails the
# step within about 30 s naming its URI (MLflow's defaults retry for about 5 minutes):
# 3 attempts of at most 8 s each, 1 s and 2 s apart.
FAIL_FAST = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "8",
}
# Tags on a model's run and on its registered versions.
MODEL_KEY_TAG = "model_key"
PICKLE_TAG = "model_pickle"  # signed: the logged model's pickle sha256, as written
DATA_SHA_TAG = "data_sha256"  # the CSV the model was trained on
# The MLflow guide's three tags, with values that mean something here: the team that owns
# the model (INSURANCE_TEAM), whether it became a release candidate (every gate passed and it
# was registered: "true"; refused: "false"), and its registered version.
ENGINEERING_TAG = "engineering"
RELEASE_CANDIDATE_TAG = "release.candidate"
RELEASE_VERSION_TAG = "release.version"
RAW_DATA_ARTIFACT = "data"  # the raw CSV, beside the run's dataset inputs
SERVING_SHA_TAG = "serving_sha256"  # the serving artifact's pin: its manifest's sha256
APPROVAL_TAG = "gates.approval"  # signed by registration (core.gates.decision)
APPROVED_PARAMETERS = "gates.approved"  # the same parameters, readable (not trusted)
# Artifact paths inside a model's run.
MODEL_ARTIFACT = "model"  # the MLflow model (sklearn flavor, cloudpickle), logged once
PICKLE_ARTIFACT = f"{MODEL_ARTIFACT}/model.pkl"
SERVING_ARTIFACT_PATH = "serving_npz"
TRAIN_ROWS_ARTIFACT = "train_row_ids.json"
# The run's dataset inputs (the MLflow UI's "Datasets used"): the split's two sides.
TRAIN_DATASET = "insurance-train"
TEST_DATASET = "insurance-test"


def pickle_subject(model_key: str, run_id: str) -> dict[str, str]:
    """What the signed statement of a model's pickle names: whose, and where in its run."""
    return {"model_key": model_key, "run_id": run_id, "path": PICKLE_ARTIFACT}


def _is_not_found(error: Exception) -> bool:
    return getattr(error, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


class RegistryError(RuntimeError):
    """An MLflow call failed; the message (credentials redacted) keeps MLflow's error code."""

    def __init__(self, message: str, error_code: str | None = None):
        super().__init__(message)
        self.error_code = error_code


class _RedactingClient:
    """An MlflowClient whose errors carry no credential (they are raised again, redacted,
    without the original as their cause)."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            try:
                return attribute(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - re-raised, redacted
                message = redact(f"{type(error).__name__}: {error}")
                raise RegistryError(message, getattr(error, "error_code", None)) from None

        return call


def domain_signature():
    """The model's MLflow signature from the domain schema (not inferred from an example):
    integer columns are `long`, other numbers `double`, categories `string`; the output is
    `charges`, a `double`."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    def kind(column: str) -> str:
        rule = NUMERIC_RULES.get(column)
        return "string" if rule is None else "long" if rule.integer else "double"

    return ModelSignature(
        inputs=Schema([ColSpec(kind(c), c) for c in FEATURE_COLUMNS]),
        outputs=Schema([ColSpec("double", TARGET_COLUMN)]),
    )


def _dataset_inputs(datasets: dict[str, tuple[Any, str]], source: str, target: str | None):
    """MLflow dataset inputs (`mlflow.data.from_pandas`: name, source, digest, schema and
    profile), each tagged with its context (training, test)."""
    import mlflow.data
    from mlflow.entities import Dataset as DatasetEntity
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    inputs = []
    for name, (frame, context) in datasets.items():
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": a local path
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_pandas(
                frame, source=source or None, targets=target, name=name
            )
        # the dataset entity from the dataset's public description (`to_dict`)
        entity = DatasetEntity(**dataset.to_dict())
        inputs.append(DatasetInput(entity, tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)]))
    return inputs


class MlflowResource(ConfigurableResource):
    tracking_uri: str = Field(description="MLflow tracking URI (MLFLOW_TRACKING_URI)")
    registry_uri: str = Field(default="", description="Model registry URI; empty: tracking")
    experiment_name: str = Field(default="insurance_charges")
    artifact_root: str = Field(
        default="", description="Artifact location of a new experiment; empty: the server's"
    )
    model_name: str = Field(default=MODEL_NAME, description="Registered model name")
    team: str = Field(default="insurance_pipeline", description="Each run's `engineering` tag")

    @classmethod
    def from_settings(cls, **overrides) -> MlflowResource:
        """From MLFLOW_TRACKING_URI, MLFLOW_REGISTRY_URI and MLFLOW_EXPERIMENT_NAME."""
        from insurance_pipeline.settings import MlflowSettings, StateSettings

        settings = MlflowSettings()
        values = {
            "tracking_uri": settings.tracking_uri,
            "registry_uri": settings.registry_uri,
            "experiment_name": settings.experiment,
            "team": settings.team,
            "artifact_root": local_artifact_root(
                settings.tracking_uri, StateSettings().artifacts_dir
            ),
        }
        return cls(**{**values, **overrides})

    # --- plumbing -------------------------------------------------------------------------
    @property
    def active_registry_uri(self) -> str:
        return self.registry_uri or self.tracking_uri

    def client(self):
        from mlflow import MlflowClient

        for name, value in FAIL_FAST.items():  # unless the operator chose otherwise
            os.environ.setdefault(name, value)

        try:
            with _store_creation(self.tracking_uri, self.active_registry_uri) as creating:
                client = MlflowClient(
                    tracking_uri=self.tracking_uri, registry_uri=self.active_registry_uri
                )
                # each local store made (tables, migrations) while its lock is held
                if self.tracking_uri in creating:
                    client.search_experiments(max_results=1)
                if self.active_registry_uri in creating:
                    client.search_registered_models(max_results=1)
        except Exception as error:  # noqa: BLE001 - re-raised, redacted
            raise RegistryError(redact(f"{type(error).__name__}: {error}")) from None
        return _RedactingClient(client)

    @property
    def where(self) -> str:
        """The registry, as it may be shown (credentials redacted)."""
        return redact(self.active_registry_uri)

    def experiment_id(self) -> str:
        client = self.client()
        found = client.get_experiment_by_name(self.experiment_name)
        if found is not None:
            return found.experiment_id
        if "://" in self.artifact_root:
            return client.create_experiment(
                self.experiment_name, artifact_location=self.artifact_root
            )
        if self.artifact_root:
            Path(self.artifact_root).mkdir(parents=True, exist_ok=True)
            location = Path(self.artifact_root).resolve().as_uri()
            return client.create_experiment(self.experiment_name, artifact_location=location)
        return client.create_experiment(self.experiment_name)

    # --- runs -------------------------------------------------------------------------------
    def find_run(self, model_key: str) -> str | None:
        runs = self.client().search_runs(
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
                f"no MLflow run for model {model_key} in experiment {self.experiment_name}: "
                "materialize trained_model first"
            )
        return run_id

    def log_model_run(
        self,
        *,
        model_key: str,
        model: Any,
        params: dict[str, Any],
        tags: dict[str, str],
        input_example,
        pip_requirements: list[str],
        train_row_ids: list[int],
        datasets: dict[str, tuple[Any, str]] | None = None,
        source: str = "",
        target: str | None = None,
    ) -> tuple[str, str | None]:
        """The model's run, created once per `model_key`: the model logged once (an MLflow
        sklearn model, cloudpickle: the pipeline holds classes skops refuses), its params,
        tags and training rows, and `datasets` ({name: (frame, context)}, e.g. the training
        and test sets) as the run's dataset inputs, with `source` (the CSV's path) as their
        source, so the MLflow UI shows which data trained the model. Returns (run_id, the
        pickle's sha256 if it was written now, else None)."""
        existing = self.find_run(model_key)
        if existing:
            return existing, None
        import mlflow.sklearn
        from mlflow.entities import Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

        client = self.client()
        run_id = client.create_run(
            self.experiment_id(), tags={MODEL_KEY_TAG: model_key}
        ).info.run_id
        logged = [Param(k, str(v)[:MAX_PARAM_VAL_LENGTH]) for k, v in params.items()]
        for start in range(0, len(logged), MAX_PARAMS_TAGS_PER_BATCH):
            client.log_batch(run_id, params=logged[start : start + MAX_PARAMS_TAGS_PER_BATCH])
        if datasets:
            client.log_inputs(run_id, datasets=_dataset_inputs(datasets, source, target))
        if source and Path(source).is_file():  # the raw file itself, as the guide logs it
            client.log_artifact(run_id, source, RAW_DATA_ARTIFACT)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / MODEL_ARTIFACT
            with _known_chatter_quiet():
                mlflow.sklearn.save_model(
                    model,
                    str(folder),
                    serialization_format="cloudpickle",
                    signature=domain_signature(),
                    input_example=input_example,
                    pip_requirements=pip_requirements,
                )
            client.log_artifacts(run_id, str(folder), MODEL_ARTIFACT)
            pickle_sha = file_sha256(folder / "model.pkl")
            # The champion/challenger gate scores only rows a champion never trained on.
            rows = Path(tmp) / TRAIN_ROWS_ARTIFACT
            rows.write_text(json.dumps({"train_row_ids": train_row_ids}))
            client.log_artifact(run_id, str(rows))
        for key, value in {ENGINEERING_TAG: self.team, **tags}.items():
            client.set_tag(run_id, key, value)
        client.set_terminated(run_id)
        return run_id, pickle_sha

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        client = self.client()
        for name, value in metrics.items():
            client.log_metric(run_id, name, float(value))

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client().log_artifact(run_id, str(path), artifact_path=artifact_path)

    # --- a model's tags (core.gates.verdicts.TagStore) ------------------------------------
    def model_tags(self, model_key: str) -> dict[str, str]:
        return dict(self.client().get_run(self.run_for(model_key)).data.tags)

    def set_model_tag(self, model_key: str, key: str, value: str) -> None:
        self.client().set_tag(self.run_for(model_key), key, value)

    # --- registry -------------------------------------------------------------------------
    def version_for(self, model_key: str):
        versions = self.client().search_model_versions(
            f"name = '{self.model_name}' and tags.{MODEL_KEY_TAG} = '{model_key}'"
        )
        return max(versions, key=lambda v: int(v.version)) if versions else None

    def register(self, run_id: str, model_key: str, tags: dict[str, str]):
        """The registered version for `model_key`: found, or created from the run's model.
        Call under the registry lock."""
        existing = self.version_for(model_key)
        if existing is not None:
            return existing, False
        client = self.client()
        try:
            client.get_registered_model(self.model_name)
        except RegistryError as error:
            if not _is_not_found(error):
                raise
            client.create_registered_model(self.model_name)
        version = client.create_model_version(
            self.model_name,
            source=f"runs:/{run_id}/{MODEL_ARTIFACT}",
            run_id=run_id,
            tags={**tags, MODEL_KEY_TAG: model_key},
        )
        return version, True

    def mark_release(self, model_key: str, version: int | None) -> None:
        """The guide's release tags: on the model's run, and on its version when registered
        (`version`); None marks a model the gates refused."""
        client = self.client()
        run_id = self.run_for(model_key)
        candidate = "false" if version is None else "true"
        client.set_tag(run_id, RELEASE_CANDIDATE_TAG, candidate)
        if version is not None:
            client.set_tag(run_id, RELEASE_VERSION_TAG, str(version))
            for key, value in {
                RELEASE_CANDIDATE_TAG: candidate,
                RELEASE_VERSION_TAG: str(version),
            }.items():
                client.set_model_version_tag(self.model_name, str(version), key, value)

    def set_version_tag(self, version: str | int, key: str, value: str) -> None:
        self.client().set_model_version_tag(self.model_name, str(version), key, value)

    def run_tag(self, run_id: str, key: str) -> str | None:
        return self.client().get_run(run_id).data.tags.get(key)

    def get_version(self, version: int):
        client = self.client()
        try:
            return client.get_model_version(self.model_name, str(version))
        except RegistryError as error:
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
        client = self.client()
        try:
            registered = client.get_registered_model(self.model_name)
        except RegistryError as error:
            if _is_not_found(error):
                return None
            raise
        version = (registered.aliases or {}).get(alias)
        if version is None:
            return None
        return client.get_model_version(self.model_name, str(version))

    def set_alias(self, alias: str, version: str | int) -> None:
        self.client().set_registered_model_alias(self.model_name, alias, str(version))

    def registered_state(self) -> tuple[dict[str, str], dict[str, int]]:
        """The registered model's (tags, aliases); both empty when it does not exist yet."""
        try:
            registered = self.client().get_registered_model(self.model_name)
        except RegistryError as error:
            if _is_not_found(error):
                return {}, {}
            raise
        aliases = {name: int(version) for name, version in (registered.aliases or {}).items()}
        return dict(registered.tags or {}), aliases

    def set_registered_tag(self, key: str, value: str) -> None:
        self.client().set_registered_model_tag(self.model_name, key, value)

    # --- files (fetched as they are: callers verify them against signed digests) ---------
    def download(self, run_id: str, artifact_path: str, dest: Path) -> Path:
        return Path(self.client().download_artifacts(run_id, artifact_path, str(dest)))

    def load_pickle(self, run_id: str, expected_sha256: str, what: str) -> tuple[object, list]:
        """A run's trained pipeline and the row ids it was fitted on. The pickle is loaded
        only when its bytes hash to `expected_sha256`, a digest the caller verified in a
        signed statement."""
        import cloudpickle

        with tempfile.TemporaryDirectory() as tmp:
            path = self.download(run_id, PICKLE_ARTIFACT, Path(tmp))
            data = path.read_bytes()
            actual = hashlib.sha256(data).hexdigest()
            if actual != expected_sha256:
                raise ValueError(
                    f"{what}: {PICKLE_ARTIFACT} has sha256 {actual}, but the signed approval "
                    f"says {expected_sha256}; refusing to load it"
                )
            model = cloudpickle.loads(data)
            rows = self.download(run_id, TRAIN_ROWS_ARTIFACT, Path(tmp))
            train_row_ids = json.loads(rows.read_text())["train_row_ids"]
        return model, train_row_ids


class _StoreCreation:
    """A SQLite store is created (its tables, its migrations) by its first user. Two entry
    points started together (`make run` and `dagster asset materialize`) would both create
    it and one would fail, so this process's first use of each local database holds a lock
    beside it until the store exists. Later uses take no lock."""

    def __init__(self):
        self.created: set[str] = set()

    @contextlib.contextmanager
    def __call__(self, *uris: str):
        """Yields the local stores this block creates (empty: nothing to lock or create)."""
        local = [u for u in dict.fromkeys(uris) if u.startswith("sqlite:///")]
        pending = [u for u in local if u not in self.created]
        with contextlib.ExitStack() as locks:
            for uri in pending:
                database = Path(uri.removeprefix("sqlite:///"))
                database.parent.mkdir(parents=True, exist_ok=True)
                locks.enter_context(exclusive(database.with_name(database.name + ".lock")))
            yield pending
            self.created.update(pending)


_store_creation = _StoreCreation()


def local_artifact_root(tracking_uri: str, artifacts_dir: str | Path) -> str:
    """Where a new experiment keeps its artifacts: a tracking server its own ("", so clients
    need no storage credentials); a SQLite store beside its database; another database
    the state's artifacts location (a folder or object storage)."""
    if tracking_uri.startswith(("http://", "https://")):
        return ""
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts")
    return f"{str(artifacts_dir).rstrip('/')}/mlflow"


@contextlib.contextmanager
def _known_chatter_quiet():
    """MLflow's advice that does not apply here: the pickle is the pipeline's choice and is
    signed (core.trust), and the integer columns never hold missing values (the schema)."""
    logger = logging.getLogger("mlflow.sklearn")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            yield
    finally:
        logger.setLevel(level)
