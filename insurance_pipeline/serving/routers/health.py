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

router = APIRouter(prefix="/api/health", tags=["health"])


def _answer(ok: bool, key: str, yes: str, no: str) -> JSONResponse:
    return JSONResponse(status_code=200 if ok else 503, content={key: yes if ok else no})


@router.get(
    "", response_model=HealthStatusResponse, responses={503: {"model": HealthStatusResponse}}
)
async def health(state: StateDep):
    ok = state.model is not None or not state.started
    return _answer(ok, "health_status", HealthStatus.HEALTHY, HealthStatus.NOT_HEALTHY)


@router.get(
    "/ready", response_model=ReadinessResponse, responses={503: {"model": ReadinessResponse}}
)
async def readiness(state: StateDep):
    return _answer(
        state.ready,
        "readiness_status",
        ReadinessStatus.ACCEPTING_TRAFFIC,
        ReadinessStatus.REFUSING_TRAFFIC,
    )


@router.get("/startup", response_model=StartupResponse, responses={503: {"model": StartupResponse}})
async def startup(state: StateDep):
    return _answer(
        state.started, "startup_status", StartupStatus.STARTED, StartupStatus.NOT_STARTED
    )
