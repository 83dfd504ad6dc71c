"""Error bodies as the original service wrote them: `{"type": ..., "messages": [...]}` for
400 and 500 (and our 404, 408, 413, 503); FastAPI's `{"detail": [{loc, msg, type}]}` for 422."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from insurance_pipeline.serving.schemas import Error
from insurance_pipeline.serving.state import PredictionError

log = logging.getLogger("insurance_pipeline.serving")


class ServiceFailure(Exception):
    def __init__(self, status: int, kind: str, message: str):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def error_body(kind: str, message: str) -> bytes:
    return json.dumps({"type": kind, "messages": [message]}).encode()


def error_response(status: int, kind: str, message: str) -> Response:
    return Response(error_body(kind, message), status_code=status, media_type="application/json")


def _responses(**described: str) -> dict[int, dict]:
    return {int(s.lstrip("_")): {"model": Error, "description": d} for s, d in described.items()}


# What the prediction endpoints document besides 200 and 422.
PREDICTION_ERRORS = _responses(
    _400="The body could not be decoded (not UTF-8)",
    _408="The body did not arrive in time",
    _413="The body is larger than the endpoint accepts",
    _500="The model failed to predict",
    _503="No model is loaded",
)
METADATA_ERRORS = _responses(_404="No model has this name", _503="No model is loaded")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError):
        # Field locations and messages only: never echo internals.
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in error.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": details})

    @app.exception_handler(ServiceFailure)
    async def service_failure(request: Request, error: ServiceFailure):
        return error_response(error.status, error.kind, error.message)

    @app.exception_handler(PredictionError)
    async def prediction_failed(request: Request, error: PredictionError):
        return error_response(500, "ServiceError", str(error))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        if error.status_code == 400:  # FastAPI: a body that cannot be decoded
            return error_response(400, "BodyDecodeError", str(error.detail))
        return JSONResponse(
            status_code=error.status_code,
            content={"detail": error.detail},
            headers=getattr(error, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        log.error("unhandled error: %r", error, extra={"path": request.url.path})
        return error_response(500, "ServiceError", "internal error")
