"""What the service knows about itself: its model (once verified), why not, and whether it
is draining for shutdown. One `ServiceState` per app, read by the routers through
`dependencies`."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from insurance_pipeline.compiled.artifact import (
    ArtifactError,
    Manifest,
    load_artifact,
    reference_problem,
)
from insurance_pipeline.compiled.model import CompiledModel, Predictions
from insurance_pipeline.compiled.native import NativeUnavailable, native_library, with_library
from insurance_pipeline.domain.schema import MODEL_NAME
from insurance_pipeline.serving.logging import PredictionLog
from insurance_pipeline.serving.signature import verify_signature

log = logging.getLogger("insurance_pipeline.serving")
INITIALIZATION_FAILED = "Exception raised in service initialization."


class PredictionError(RuntimeError):
    """The model could not produce a usable prediction (already logged)."""


@dataclass(frozen=True)
class Prediction:
    """Charges in dollars (2 decimals) and, where the model has one, the interval around
    them: lower <= charges <= upper holds after rounding (rounding keeps order)."""

    charges: float
    level: float | None = None
    lower: float | None = None
    upper: float | None = None


def charges_body(prediction: Prediction) -> bytes:
    """The response body of a single prediction: the original's `charges`, then our
    `interval`, which clients of the original ignore."""
    if prediction.level is None:
        return b'{"charges":%r}' % prediction.charges
    return b'{"charges":%r,"interval":{"level":%r,"lower":%r,"upper":%r}}' % (
        prediction.charges,
        prediction.level,
        prediction.lower,
        prediction.upper,
    )


def batch_body(predictions: Sequence[Prediction] | Batch) -> bytes:
    """The response body of a batch: a JSON array of single bodies, in order."""
    if isinstance(predictions, Batch):
        return predictions.body()
    return b"[" + b",".join(map(charges_body, predictions)) + b"]"


@dataclass(frozen=True)
class Batch:
    """A batch's predictions as columns (each value a Python float, rounded as a single
    prediction's is): its body is made without an object per row."""

    charges: list[float]
    lower: list[float] | None = None
    upper: list[float] | None = None
    level: float | None = None

    def __len__(self) -> int:
        return len(self.charges)

    def __getitem__(self, i: int) -> Prediction:
        if self.level is None:
            return Prediction(self.charges[i])
        return Prediction(self.charges[i], self.level, self.lower[i], self.upper[i])

    def body(self) -> bytes:
        """The same bytes as `batch_body` of the single predictions, in order."""
        if self.level is None:
            parts = [b'{"charges":%r}' % c for c in self.charges]
        else:
            row = b'{"charges":%r,"interval":{"level":%r,"lower":%r,"upper":%r}}'
            level = self.level
            parts = [
                row % (c, level, lo, hi)
                for c, lo, hi in zip(self.charges, self.lower, self.upper, strict=True)
            ]
        return b"[" + b",".join(parts) + b"]"


@dataclass(frozen=True, eq=False)
class ServedModel:
    """A verified model, ready to predict, and its prediction records."""

    model: CompiledModel
    manifest: Manifest
    log: PredictionLog

    @property
    def version(self) -> str:
        return str(self.manifest.version)

    def predictions(self, rows: Sequence[Mapping]) -> list[Prediction] | Batch:
        """Charges (and intervals) in dollars, 2 decimals, for validated input rows: a list of
        one for one row, a `Batch` for more."""
        interval = self.model.interval
        if len(rows) == 1:
            point, low, high = (float(v) for v in self.model.predict_row(rows[0]))
            if not math.isfinite(point) or (interval and not math.isfinite(low + high)):
                raise ValueError("the model produced a non-finite prediction")
            if interval is None:
                return [Prediction(round(point, 2))]
            return [Prediction(round(point, 2), interval.level, round(low, 2), round(high, 2))]
        return self.as_batch(self.model.predict(rows))

    def as_batch(self, found: Predictions) -> Batch:
        """The model's arrays for many rows as the answer's columns (checked finite, rounded
        to cents with Python's rounding, as a single prediction is)."""
        interval = self.model.interval
        checked = found.charges if interval is None else found.charges + found.lower + found.upper
        if not np.isfinite(checked).all():
            raise ValueError("the model produced a non-finite prediction")
        charges = [round(v, 2) for v in found.charges.tolist()]
        if interval is None:
            return Batch(charges)
        lower = [round(v, 2) for v in found.lower.tolist()]
        upper = [round(v, 2) for v in found.upper.tolist()]
        return Batch(charges, lower, upper, interval.level)

    def predict_logged(self, inputs: Mapping | list[Mapping]) -> Prediction | Batch:
        """One row (-> Prediction) or a batch (-> list), with its two prediction records."""
        self.log.requested(inputs)
        single = isinstance(inputs, Mapping)
        try:
            found = self.predictions([inputs] if single else inputs)
        except Exception as error:
            self.log.failed(error)
            raise PredictionError(f"prediction failed: {error}") from error
        if single or isinstance(found, list):  # one row (a batch of one included)
            self.log.created(found[0].charges if single else [p.charges for p in found])
        else:
            self.log.created(found.charges)
        return found[0] if single else found


@dataclass
class ServiceState:
    model: ServedModel | None = None
    error: str | None = None  # why there is no model
    started: bool = False
    draining: bool = False

    @property
    def ready(self) -> bool:
        return self.model is not None and not self.draining

    @property
    def unavailable(self) -> str:
        """Why there is no model, as a client may be told: the problem, never the artifact's
        path or hashes (those are in the "Exception raised in service initialization." record)."""
        if self.error is not None:
            return "model not loaded: artifact refused"
        return "model not loaded: starting" if not self.started else "model not loaded"


def load_model(
    artifact_dir: Path,
    expected_sha256: str | None = None,
    log_inputs: bool = True,
    trusted_key: Path | None = None,
    production: bool = False,
    native: NativeChoice | None = None,
) -> ServiceState:
    """A started state with the verified model, or with the reason it was refused (the
    process keeps running and says so on its health endpoints). With `trusted_key` the
    folder's OpenSSF signature must verify under it; in `production` the key, the pin and
    the signature are all required. `native` says whether (and from which library) its
    forests run as native code."""
    state = ServiceState(started=True)
    try:
        if production and not (trusted_key and expected_sha256):
            raise ArtifactError(
                "INSURANCE_DEPLOYMENT=production: MODEL_TRUSTED_KEY and MODEL_SHA256 are "
                "required (the folder's signature and pin are checked before it is served)"
            )
        if trusted_key is not None:
            verify_signature(artifact_dir, trusted_key)
        loaded = load_artifact(artifact_dir, expected_sha256)
        manifest = loaded.manifest
        if manifest.model_name != MODEL_NAME:
            raise ArtifactError(
                f"{artifact_dir}: manifest names model {manifest.model_name!r}, "
                f"this service serves {MODEL_NAME!r}"
            )
        model, path = with_native_forests(loaded, native or NativeChoice())
        records = PredictionLog(MODEL_NAME, str(manifest.version), log_inputs)
        state.model = ServedModel(model, manifest, records)
        log.info(
            "Loaded %s model.",
            MODEL_NAME,
            extra={
                "model_version": manifest.version,
                "sha256": manifest.sha256,
                "trees": manifest.trees,
                "forests": path,
                "artifact_dir": str(artifact_dir),
            },
        )
        log.info("Added %s decorator to %s model.", type(records).__name__, MODEL_NAME)
    except ArtifactError as error:
        state.error = str(error)
        _refused(state.error, artifact_dir)
    except Exception as error:  # noqa: BLE001 - a broken artifact must not crash the service
        state.error = f"{type(error).__name__}: {error}"
        _refused(state.error, artifact_dir)
    return state


def _refused(reason: str, artifact_dir: Path) -> None:
    """The original's failure record, with why (`reason`) and which folder."""
    log.error(INITIALIZATION_FAILED, extra={"reason": reason, "artifact_dir": str(artifact_dir)})


@dataclass(frozen=True)
class NativeChoice:
    """Whether the forests may run as native code, and a library built with the image."""

    enabled: bool = True
    library: Path | None = None


def with_native_forests(loaded, choice: NativeChoice) -> tuple[CompiledModel, str]:
    """The model with native forests when they can be built (or were) and reproduce the
    reference rows; else the numpy model. The second item says which path serves, and why."""
    if not choice.enabled:
        return loaded.model, "numpy (SERVING_NATIVE=false)"
    if loaded.native_source is None:
        return loaded.model, "numpy (this version has no model.c)"
    try:
        library = native_library(loaded.native_source, choice.library)
        model = with_library(loaded.model, library)
    except NativeUnavailable as error:
        log.warning("native forests unavailable, numpy serves: %s", error)
        return loaded.model, f"numpy ({error})"
    problem = reference_problem(model, loaded.references)
    if problem:
        log.error("native forests refused, numpy serves: %s", problem)
        return loaded.model, "numpy (the native forests failed the reference rows)"
    return model, f"native ({library.path.name})"
