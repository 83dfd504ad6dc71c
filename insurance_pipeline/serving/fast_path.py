"""The prediction fast path: a well-formed request answered without FastAPI's routing,
dependency and serialisation layers, which cost more than the model itself.

It takes only what the FastAPI routes would accept on their happy path: POST to a prediction
path, a JSON body (no content type, or application/json), valid for the same pydantic models
in the same mode, with a model loaded. It answers with the same body and the same prediction
records (`ServedModel.predict_logged`, `charges_body`, `batch_body`). Anything else, including
every error, goes on to the FastAPI app unchanged, which answers it as documented (a body
nested too deeply to decode included: 400). So the contract has one definition, and this is
only a shorter way through it.

A single row is sub-millisecond and is answered on the event loop. A batch (up to 1,000 rows)
is decoded, validated, predicted and serialised on the model threads, so that the event loop,
and with it the probes, never waits for model work.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import Executor

from pydantic import TypeAdapter, ValidationError

from insurance_pipeline.serving.errors import error_body
from insurance_pipeline.serving.schemas import MAX_BATCH, InsuranceChargesModelInput
from insurance_pipeline.serving.state import (
    PredictionError,
    ServedModel,
    ServiceState,
    batch_body,
    charges_body,
)

JSON_TYPES = (b"", b"application/json")
# What a body that is not the happy path raises while it is decoded and validated.
NOT_HAPPY = (ValueError, ValidationError, RecursionError, TypeError)
BATCH = TypeAdapter(list[InsuranceChargesModelInput])


class _Declined(Exception):
    """Not for the fast path: the FastAPI app answers it."""


def single_body(model: ServedModel, body: bytes) -> bytes:
    try:
        row = InsuranceChargesModelInput.model_validate(json.loads(body)).__dict__
    except NOT_HAPPY:
        raise _Declined from None
    return charges_body(model.predict_logged(row))  # one Prediction


def many_body(model: ServedModel, body: bytes) -> bytes:
    """A batch's response body. The body is decoded and validated in one pass (pydantic's
    JSON mode), which accepts exactly what decoding then validating the objects (what the
    FastAPI route does) accepts, with the same values: `test_fast_path` holds them to it."""
    try:
        items = BATCH.validate_json(body)
    except NOT_HAPPY:
        raise _Declined from None
    if not 1 <= len(items) <= MAX_BATCH:
        raise _Declined
    return batch_body(model.predict_logged([item.__dict__ for item in items]))


class PredictionFastPath:
    def __init__(
        self,
        app,
        single: str,
        batch: str,
        state: Callable[[], ServiceState],
        executor: Callable[[], Executor],
    ):
        self.app, self.state, self.executor = app, state, executor
        self.single, self.batch = single, batch

    async def __call__(self, scope, receive, send):
        path = scope.get("path")
        if scope["type"] != "http" or path not in (self.single, self.batch):
            return await self.app(scope, receive, send)
        if scope["method"] != "POST":
            return await self.app(scope, receive, send)
        model = self.state().model
        content_type = dict(scope["headers"]).get(b"content-type", b"")
        if model is None or content_type.split(b";")[0].strip().lower() not in JSON_TYPES:
            return await self.app(scope, receive, send)
        message = await receive()  # BodyLimits has read the whole body: one message
        body = message.get("body", b"")
        try:
            if path == self.single:
                status, payload = 200, single_body(model, body)
            else:
                loop = asyncio.get_running_loop()
                status = 200
                payload = await loop.run_in_executor(self.executor(), many_body, model, body)
        except _Declined:  # not JSON, or invalid: the app says why
            return await self.app(scope, _replay(message, receive), send)
        except PredictionError as error:
            status, payload = 500, error_body("ServiceError", str(error))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-length", b"%d" % len(payload)),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _replay(message: dict, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return message
        return await receive()

    return replay
