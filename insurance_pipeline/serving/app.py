"""The model service: the original REST contract, strict input handling, JSON logs."""

from __future__ import annotations

import logging
import math
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from insurance_pipeline.serving.artifact import ArtifactError, Manifest, load_artifact
from insurance_pipeline.serving.limits import BodySizeLimit
from insurance_pipeline.serving.logging import logged_prediction
from insurance_pipeline.serving.predictor import Predictor
from insurance_pipeline.serving.schemas import (
    MAX_BATCH,
    ErrorResponse,
    HealthStatus,
    InsuranceChargesModelInput,
    InsuranceChargesModelOutput,
    ModelCollection,
    ModelMetadata,
)

log = logging.getLogger("insurance_pipeline.serving")

MODEL_NAME = "insurance_charges_model"
PREDICTION_PATH = f"/api/models/{MODEL_NAME}/prediction"
BATCH_PATH = f"/api/models/{MODEL_NAME}/predictions"
SINGLE_BODY_LIMIT = 64 * 1024
BATCH_BODY_LIMIT = 1024 * 1024


@dataclass
class ModelState:
    """What the service knows about its model; `ready` only after a verified load."""

    manifest: Manifest | None = None
    predict: object | None = None  # logged predict function: list[dict] -> list[float]
    error: str | None = None

    @property
    def ready(self) -> bool:
        return self.predict is not None


def load_model(artifact_dir: Path, expected_sha256: str | None = None) -> ModelState:
    state = ModelState()
    try:
        pipeline, manifest = load_artifact(artifact_dir, expected_sha256)
        if manifest.model_name != MODEL_NAME:
            raise ArtifactError(
                f"{artifact_dir}: manifest names model {manifest.model_name!r}, "
                f"this service serves {MODEL_NAME!r}"
            )
        predictor = Predictor(pipeline)

        @logged_prediction(MODEL_NAME, str(manifest.version))
        def predict(rows: list[dict]) -> list[float]:
            values = predictor.predict(rows)
            return [round(float(v), 2) for v in values]

        state.manifest, state.predict = manifest, predict
        log.info(
            "model loaded",
            extra={
                "model_version": manifest.version,
                "sha256": manifest.sha256,
                "compiled_features": predictor.compiled,
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


def _not_ready(state: ModelState) -> JSONResponse:
    return JSONResponse(
        status_code=503, content={"detail": "model not loaded: " + (state.error or "loading")}
    )


def _charges(state: ModelState, items: list[InsuranceChargesModelInput]) -> list[float]:
    rows = [item.model_dump(mode="json") for item in items]
    values = state.predict(rows)
    if not all(math.isfinite(v) for v in values):
        raise ValueError("the model produced a non-finite prediction")
    return values


def create_app(artifact_dir: Path | str | None = None) -> FastAPI:
    if artifact_dir is None:
        from insurance_pipeline.settings import get_settings

        artifact_dir = get_settings().serving_artifact_dir
    artifact_dir = Path(artifact_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.model = load_model(artifact_dir, os.environ.get("MODEL_SHA256") or None)
        yield

    app = FastAPI(
        title="Insurance charges model service",
        version="1.0.0",
        description="Predicts yearly medical charges. Same contract as the original service.",
        lifespan=lifespan,
    )
    app.state.model = ModelState(error="starting")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError):
        # Field locations and messages only: never echo internals.
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in error.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": details})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        log.error("unhandled error: %r", error, extra={"path": request.url.path})
        return JSONResponse(status_code=500, content={"detail": "internal error"})

    responses = {
        503: {"model": ErrorResponse, "description": "Model not loaded"},
        413: {"model": ErrorResponse, "description": "Body too large"},
    }

    @app.post(
        PREDICTION_PATH,
        response_model=InsuranceChargesModelOutput,
        responses=responses,
        tags=["models"],
    )
    def prediction(body: InsuranceChargesModelInput):
        state: ModelState = app.state.model
        if not state.ready:
            return _not_ready(state)
        return InsuranceChargesModelOutput(charges=_charges(state, [body])[0])

    @app.post(
        BATCH_PATH,
        response_model=list[InsuranceChargesModelOutput],
        responses=responses,
        tags=["models"],
    )
    def batch_prediction(
        body: Annotated[list[InsuranceChargesModelInput], Body(min_length=1, max_length=MAX_BATCH)],
    ):
        """Up to 1,000 inputs, each validated as the single endpoint does (1 MiB body cap)."""
        state: ModelState = app.state.model
        if not state.ready:
            return _not_ready(state)
        return [InsuranceChargesModelOutput(charges=c) for c in _charges(state, body)]

    @app.get("/api/models", response_model=ModelCollection, tags=["models"])
    def models():
        state: ModelState = app.state.model
        manifest = state.manifest
        if manifest is None:
            return ModelCollection(models=[])
        return ModelCollection(
            models=[
                ModelMetadata(
                    qualified_name=MODEL_NAME,
                    display_name=manifest.display_name,
                    description=manifest.description,
                    version=str(manifest.version),
                )
            ]
        )

    @app.get("/api/health", response_model=HealthStatus, tags=["health"])
    def health():
        return HealthStatus(status="ok")

    @app.get("/api/health/startup", response_model=HealthStatus, tags=["health"])
    def startup():
        return HealthStatus(status="started")

    @app.get(
        "/api/health/ready",
        response_model=HealthStatus,
        responses={503: {"model": HealthStatus}},
        tags=["health"],
    )
    def ready():
        state: ModelState = app.state.model
        if state.ready:
            return HealthStatus(status="ready", detail=f"model version {state.manifest.version}")
        return JSONResponse(
            status_code=503, content={"status": "not ready", "detail": state.error or "loading"}
        )

    app.add_middleware(
        BodySizeLimit,
        limits={PREDICTION_PATH: SINGLE_BODY_LIMIT, BATCH_PATH: BATCH_BODY_LIMIT},
        default=SINGLE_BODY_LIMIT,
    )
    return app
