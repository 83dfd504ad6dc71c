"""The prediction fast path (taken by `serving.front`): a well-formed request answered without
FastAPI's routing, dependency and serialisation layers, which cost more than the model itself.

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

import json

from pydantic import TypeAdapter, ValidationError

from insurance_pipeline.serving.schemas import MAX_BATCH, InsuranceChargesModelInput
from insurance_pipeline.serving.state import ServedModel, batch_body, charges_body

# What a body that is not the happy path raises while it is decoded and validated.
NOT_HAPPY = (ValueError, ValidationError, RecursionError, TypeError)
BATCH = TypeAdapter(list[InsuranceChargesModelInput])


class Declined(Exception):
    """Not for the fast path: the FastAPI app answers it."""


def single_body(model: ServedModel, body: bytes) -> bytes:
    try:
        row = InsuranceChargesModelInput.model_validate(json.loads(body)).__dict__
    except NOT_HAPPY:
        raise Declined from None
    return charges_body(model.predict_logged(row))  # one Prediction


def many_body(model: ServedModel, body: bytes) -> bytes:
    """A batch's response body. The body is decoded and validated in one pass (pydantic's
    JSON mode), which accepts exactly what decoding then validating the objects (what the
    FastAPI route does) accepts, with the same values: `test_fast_path` holds them to it."""
    try:
        items = BATCH.validate_json(body)
    except NOT_HAPPY:
        raise Declined from None
    if not 1 <= len(items) <= MAX_BATCH:
        raise Declined
    return batch_body(model.predict_logged([item.__dict__ for item in items]))
