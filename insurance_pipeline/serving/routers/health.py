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
    ReadinessResponse,
    ReadinessStatus,
    StartupResponse,
    StartupStatus,
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


@router.get(
    "", response_model=HealthStatusResponse, responses={503: {"model": HealthStatusResponse}}
)
async def health(state: StateDep):
    return _response(PREFIX, state)


@router.get(
    "/ready", response_model=ReadinessResponse, responses={503: {"model": ReadinessResponse}}
)
async def readiness(state: StateDep):
    return _response(PREFIX + "/ready", state)


@router.get("/startup", response_model=StartupResponse, responses={503: {"model": StartupResponse}})
async def startup(state: StateDep):
    return _response(PREFIX + "/startup", state)
