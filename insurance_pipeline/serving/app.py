"""The model service: the original REST contract, strict input handling, JSON logs.

`create_app` assembles the routers, the error handlers and the body limits around one
`ServiceState`, whose model is loaded and verified at startup.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from insurance_pipeline.domain.schema import MODEL_NAME
from insurance_pipeline.serving.errors import install_error_handlers
from insurance_pipeline.serving.front import FrontDoor
from insurance_pipeline.serving.limits import BodyLimits
from insurance_pipeline.serving.logging import flush_logs
from insurance_pipeline.serving.memory import ModelThreads, trim_heap
from insurance_pipeline.serving.routers import health, models
from insurance_pipeline.serving.settings import ServiceSettings
from insurance_pipeline.serving.state import NativeChoice, ServiceState, load_model

DESCRIPTION = """Predicts yearly medical charges, with the original model service's contract:
its paths, bodies, health states and log records.

## Additions to the original contract

- `POST /api/models/insurance_charges_model/predictions`: up to 1,000 inputs in one request,
  each validated as the single endpoint does. It writes one "Prediction requested." /
  "Prediction created." pair per request, with the inputs and the charges as lists.
- Statuses the original left undocumented, each with the original's error body
  `{"type", "messages"}`: 400 (a body that cannot be decoded), 404 (metadata of an unknown
  model), 408 (a body that did not arrive within SERVICE_BODY_TIMEOUT_SECONDS), 413 (a body
  over 64 KiB, or 1 MiB for the batch), 503 (no verified model is loaded).
- `interval` in every prediction, after `charges`: `{"level": 0.9, "lower": …, "upper": …}`,
  a conformal interval calibrated at training (lower <= charges <= upper, in cents).
- Integral numbers (`18.0`) are accepted for integer fields, as JSON Schema counts them.
- Extra fields in log records: both prediction records carry `action`,
  `model_qualified_name` and `model_version`; LOG_PREDICTION_INPUTS=false leaves the inputs
  out of "Prediction requested." (they are health data). The startup records
  ("Loaded insurance_charges_model model.", "Exception raised in service initialization.")
  carry the artifact's version, sha256 and folder, or the reason it was refused.
"""
SERVICE_TITLE = "Insurance Charges Model Service"  # the original's service_title
SERVICE_VERSION = "0.1.0"  # the API's version, the original's; the model's is the registry's
SINGLE_BODY_LIMIT = 64 * 1024
BATCH_BODY_LIMIT = 1024 * 1024
BODY_LIMITS = {models.PREDICTION_PATH: SINGLE_BODY_LIMIT, models.BATCH_PATH: BATCH_BODY_LIMIT}
log = logging.getLogger("insurance_pipeline.serving")


def _lifespan(settings: ServiceSettings):
    """Load and check the model at startup (the original's "Loaded …", "Created endpoint …"
    records, or its refusal); drain the model threads and write the last records at the end."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.service = load_model(
            settings.artifact_dir,
            settings.model_sha256,
            settings.log_prediction_inputs,
            trusted_key=settings.trusted_key,
            production=settings.deployment == "production",
            native=NativeChoice(settings.native, settings.native_library),
        )
        if app.state.service.model is not None:
            log.info("Created endpoint for %s model.", MODEL_NAME)
        trim_heap()  # what loading and checking the model freed goes back to the system
        app.state.model_threads = ModelThreads(settings.model_threads)
        yield
        app.state.service.draining = True
        app.state.model_threads.shutdown(wait=True)
        flush_logs()

    return lifespan


def create_app(
    settings: ServiceSettings | Path | str | None = None,
    *,
    fast_path: bool = True,
    service_title: str | None = None,
) -> FastAPI | FrontDoor:
    """The service for `settings` (or an artifact folder, other settings from the
    environment): the FastAPI app behind its front door (`serving.front`: probes and
    predictions on their happy path). `fast_path=False` gives the FastAPI app alone, which
    answers every request through its routes. `service_title` (the REST_CONFIG file's, as the
    original's) titles the API."""
    if not isinstance(settings, ServiceSettings):
        settings = ServiceSettings(**({"artifact_dir": settings} if settings else {}))
    title = service_title or SERVICE_TITLE

    log.info("Creating FastAPI app for: '%s'.", title)
    app = FastAPI(
        title=title,
        version=SERVICE_VERSION,
        description=DESCRIPTION,
        lifespan=_lifespan(settings),
    )
    app.state.service = ServiceState()
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(models.router)

    @app.get("/", include_in_schema=False)
    async def root():
        return RedirectResponse("/docs")

    app.add_middleware(
        BodyLimits,
        limits=BODY_LIMITS,
        default=SINGLE_BODY_LIMIT,
        timeout=settings.body_timeout,
    )
    if not fast_path:
        return app
    return FrontDoor(
        app,
        single=models.PREDICTION_PATH,
        batch=models.BATCH_PATH,
        limits=BODY_LIMITS,
        timeout=settings.body_timeout,
    )
