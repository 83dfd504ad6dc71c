"""What the service knows about itself: its model (once verified), why not, and whether it
is draining for shutdown. One `ServiceState` per app, read by the routers through
`dependencies`."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from insurance_pipeline.compiled.artifact import ArtifactError, Manifest, load_artifact
from insurance_pipeline.compiled.model import CompiledModel
from insurance_pipeline.domain.schema import MODEL_NAME
from insurance_pipeline.serving.logging import PredictionLog
from insurance_pipeline.serving.signature import verify_signature

log = logging.getLogger("insurance_pipeline.serving")

DISPLAY_NAME = "Insurance Charges Model"


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


def batch_body(predictions: Sequence[Prediction]) -> bytes:
    """The response body of a batch: a JSON array of single bodies, in order."""
    return b"[" + b",".join(map(charges_body, predictions)) + b"]"


@dataclass(frozen=True, eq=False)
class ServedModel:
    """A verified model, ready to predict, and its prediction records."""

    model: CompiledModel
    manifest: Manifest
    log: PredictionLog

    @property
    def version(self) -> str:
        return str(self.manifest.version)

    def predictions(self, rows: Sequence[Mapping]) -> list[Prediction]:
        """Charges (and intervals) in dollars, 2 decimals, for validated input rows."""
        if len(rows) == 1:
            triples = [self.model.predict_row(rows[0])]
        else:  # plain floats at once: cheaper than one numpy scalar at a time
            triples = zip(*(column.tolist() for column in self.model.predict(rows)), strict=True)
        interval = self.model.interval
        found = []
        for point, low, high in triples:
            point, low, high = float(point), float(low), float(high)  # never numpy scalars
            if not math.isfinite(point) or (interval and not math.isfinite(low + high)):
                raise ValueError("the model produced a non-finite prediction")
            if interval is None:
                found.append(Prediction(round(point, 2)))
            else:
                found.append(
                    Prediction(round(point, 2), interval.level, round(low, 2), round(high, 2))
                )
        return found

    def predict_logged(self, inputs: Mapping | list[Mapping]) -> Prediction | list[Prediction]:
        """One row (-> Prediction) or a batch (-> list), with its two prediction records."""
        self.log.requested(inputs)
        single = isinstance(inputs, Mapping)
        try:
            found = self.predictions([inputs] if single else inputs)
        except Exception as error:
            self.log.failed(error)
            raise PredictionError(f"prediction failed: {error}") from error
        self.log.created(found[0].charges if single else [p.charges for p in found])
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
        path or hashes (those are in the "model refused" log record)."""
        if self.error is not None:
            return "model not loaded: artifact refused"
        return "model not loaded: starting" if not self.started else "model not loaded"


def load_model(
    artifact_dir: Path,
    expected_sha256: str | None = None,
    log_inputs: bool = True,
    trusted_key: Path | None = None,
    production: bool = False,
) -> ServiceState:
    """A started state with the verified model, or with the reason it was refused (the
    process keeps running and says so on its health endpoints). With `trusted_key` the
    folder's OpenSSF signature must verify under it; in `production` the key, the pin and
    the signature are all required."""
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
        records = PredictionLog(MODEL_NAME, str(manifest.version), log_inputs)
        state.model = ServedModel(loaded.model, manifest, records)
        log.info(
            "model loaded",
            extra={
                "model_version": manifest.version,
                "sha256": manifest.sha256,
                "trees": manifest.trees,
                "artifact_dir": str(artifact_dir),
            },
        )
    except ArtifactError as error:
        state.error = str(error)
        log.error("model refused: %s", error, extra={"artifact_dir": str(artifact_dir)})
    except Exception as error:  # noqa: BLE001 - a broken artifact must not crash the service
        state.error = f"{type(error).__name__}: {error}"
        log.error("model could not be loaded: %r", error, extra={"artifact_dir": str(artifact_dir)})
    return state
