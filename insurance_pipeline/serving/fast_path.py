"""The single-prediction fast path: a well-formed request answered without FastAPI's routing,
dependency and serialisation layers, which cost more than the model itself.

It takes only what the FastAPI route would accept on its happy path: POST to the prediction
path, a JSON body (no content type, or application/json), valid for the same pydantic model
in the same mode, with a model loaded. It answers with the same body and the same prediction
records (`ServedModel.predict_logged`, `charges_body`). Anything else, including every
error, goes on to the FastAPI app unchanged, which answers it as documented. So the contract
has one definition, and this is only a shorter way through it.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from pydantic import ValidationError

from insurance_pipeline.serving.errors import error_body
from insurance_pipeline.serving.schemas import InsuranceChargesModelInput
from insurance_pipeline.serving.state import PredictionError, ServiceState, charges_body

JSON_TYPES = (b"", b"application/json")


class PredictionFastPath:
    def __init__(self, app, path: str, state: Callable[[], ServiceState]):
        self.app, self.path, self.state = app, path, state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        model = self.state().model
        content_type = dict(scope["headers"]).get(b"content-type", b"")
        if model is None or content_type.split(b";")[0].strip().lower() not in JSON_TYPES:
            return await self.app(scope, receive, send)
        message = await receive()  # BodyLimits has read the whole body: one message
        body = message.get("body", b"")
        try:
            row = InsuranceChargesModelInput.model_validate(json.loads(body)).__dict__
        except (ValueError, ValidationError):  # not JSON, or invalid: the app says why
            return await self.app(scope, _replay(message, receive), send)
        try:
            status, payload = 200, charges_body(model.predict_logged(row))  # one Prediction
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
