"""Dependencies the routers declare: the service state, and the loaded model (or 503)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from insurance_pipeline.serving.errors import ServiceFailure
from insurance_pipeline.serving.state import ServedModel, ServiceState


async def service_state(request: Request) -> ServiceState:
    return request.app.state.service


async def served_model(request: Request) -> ServedModel:
    state: ServiceState = request.app.state.service
    if state.model is None:
        raise ServiceFailure(503, "ModelNotLoaded", state.unavailable)
    return state.model


StateDep = Annotated[ServiceState, Depends(service_state)]
ModelDep = Annotated[ServedModel, Depends(served_model)]
