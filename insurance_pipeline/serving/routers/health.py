"""Probes, with the original bodies: 200 when the answer is yes, 503 (same shape) when no.

- `/api/health` (liveness): HEALTHY once a verified model is loaded; NOT_HEALTHY when the
  model was refused, so that an orchestrator replaces the pod while the previous one serves.
- `/api/health/ready`: ACCEPTING_TRAFFIC with a model and not shutting down.
- `/api/health/startup`: STARTED once loading has finished (either way).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from insurance_pipeline.serving.dependencies import StateDep
from insurance_pipeline.serving.schemas import (
    HealthStatus,
    HealthStatusResponse,
    ReadinessStatus,
    ReadinessStatusResponse,
    StartupStatus,
    StartupStatusResponse,
)
from insurance_pipeline.serving.state import ServiceState

PREFIX = "/api/health"
PROBE_PATHS = (PREFIX, PREFIX + "/ready", PREFIX + "/startup")
router = APIRouter(prefix=PREFIX, tags=["health"])


def probe(path: str, state: ServiceState) -> tuple[int, dict[str, str]] | None:
    """(status, body) of the probe at `path` (None: not a probe). The one owner of the
    answers: the routes below and the service's front door (`serving.front`) both ask it."""
    if path == PREFIX:
        ok = state.model is not None or not state.started
        return _answer(ok, "health_status", HealthStatus.HEALTHY, HealthStatus.NOT_HEALTHY)
    if path == PREFIX + "/ready":
        return _answer(
            state.ready,
            "readiness_status",
            ReadinessStatus.ACCEPTING_TRAFFIC,
            ReadinessStatus.REFUSING_TRAFFIC,
        )
    if path == PREFIX + "/startup":
        return _answer(
            state.started, "startup_status", StartupStatus.STARTED, StartupStatus.NOT_STARTED
        )
    return None


def _answer(ok: bool, key: str, yes, no) -> tuple[int, dict[str, str]]:
    return (200 if ok else 503), {key: (yes if ok else no).value}


def _response(path: str, state: ServiceState) -> JSONResponse:
    status, body = probe(path, state)
    return JSONResponse(status_code=status, content=body)


# The original's route names (so its operation ids and summaries) and docstrings; where this
# service answers differently, the docstring says so.


@router.get(
    "", response_model=HealthStatusResponse, responses={503: {"model": HealthStatusResponse}}
)
async def health_check(state: StateDep):
    """Check on service health.

    Indicates whether the service process is running. This endpoint will return a 200 status
    once the service has started, unless its model was refused (503, NOT_HEALTHY), so that an
    orchestrator replaces it.
    """
    return _response(PREFIX, state)


@router.get(
    "/ready",
    response_model=ReadinessStatusResponse,
    responses={503: {"model": ReadinessStatusResponse}},
)
async def readiness_check(state: StateDep):
    """Check on service readiness.

    Indicates whether the service is ready to respond to requests. This endpoint will return a
    200 status only if the model has been loaded and verified without errors, and until the
    service begins to shut down.
    """
    return _response(PREFIX + "/ready", state)


@router.get(
    "/startup",
    response_model=StartupStatusResponse,
    responses={503: {"model": StartupStatusResponse}},
)
async def startup_check(state: StateDep):
    """Check on service startup.

    Indicates whether the service is started. This endpoint will return a 200 status once
    loading the model has finished, with or without errors.
    """
    return _response(PREFIX + "/startup", state)
