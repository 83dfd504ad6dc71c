"""The model routes: the list, one model's metadata and schemas, and predictions.

A single prediction is sub-millisecond, so it runs on the event loop (no thread hop); a batch
runs on a worker thread, so the probes never wait for it. Both write their two records (see
`PredictionLog`) and answer with pre-serialised JSON. A model failure is a `PredictionError`,
answered 500 by `errors`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from insurance_pipeline.domain.schema import MODEL_DESCRIPTION, MODEL_DISPLAY_NAME, MODEL_NAME
from insurance_pipeline.serving.dependencies import ModelDep, StateDep
from insurance_pipeline.serving.errors import METADATA_ERRORS, PREDICTION_ERRORS, ServiceFailure
from insurance_pipeline.serving.schemas import (
    MAX_BATCH,
    InsuranceChargesModelInput,
    InsuranceChargesModelOutput,
    ModelDetails,
    ModelDetailsCollection,
    ModelMetadata,
)
from insurance_pipeline.serving.state import ServedModel, batch_body, charges_body

router = APIRouter(prefix="/api/models", tags=["models"])
PREDICTION_PATH = f"/api/models/{MODEL_NAME}/prediction"
BATCH_PATH = f"/api/models/{MODEL_NAME}/predictions"


def _metadata(model: ServedModel) -> ModelDetails:
    return ModelDetails(
        display_name=MODEL_DISPLAY_NAME,
        qualified_name=MODEL_NAME,
        description=MODEL_DESCRIPTION,
        version=model.version,
    )


@router.get("", response_model=ModelDetailsCollection)
async def get_models(state: StateDep):
    """List of models available.

    This endpoint returns details about all the models currently loaded in the service (none
    until the model is loaded and verified).
    """
    listed = [] if state.model is None else [_metadata(state.model)]
    return ModelDetailsCollection(models=listed)


@router.get(
    "/{model_qualified_name}/metadata", response_model=ModelMetadata, responses=METADATA_ERRORS
)
async def get_model_metadata(
    model_qualified_name: Annotated[str, Path(examples=[MODEL_NAME])], state: StateDep
):
    """Return metadata about a single model.

    This endpoint returns metadata about the model loaded in the service, with its input and
    output schemas.
    """
    if model_qualified_name != MODEL_NAME:
        raise ServiceFailure(404, "ModelNotFound", f"no model named {model_qualified_name!r}")
    if state.model is None:
        raise ServiceFailure(503, "ModelNotLoaded", state.unavailable)
    return ModelMetadata(
        **_metadata(state.model).model_dump(),
        input_schema=InsuranceChargesModelInput.model_json_schema(),
        output_schema=InsuranceChargesModelOutput.model_json_schema(),
    )


@router.post(
    f"/{MODEL_NAME}/prediction",
    response_model=InsuranceChargesModelOutput,
    responses=PREDICTION_ERRORS,
    name="PredictionController",  # the original's, so its operation id and summary
    description=MODEL_DESCRIPTION,
)
async def prediction(body: InsuranceChargesModelInput, model: ModelDep):
    """The fast path (`serving.fast_path`) answers well-formed requests before they get here;
    this route documents the endpoint and answers everything else."""
    prediction = model.predict_logged(body.__dict__)  # the fields, as model_dump() gives them
    return Response(content=charges_body(prediction), media_type="application/json")


@router.post(
    f"/{MODEL_NAME}/predictions",
    response_model=list[InsuranceChargesModelOutput],
    responses=PREDICTION_ERRORS,
)
async def batch_prediction(
    body: Annotated[list[InsuranceChargesModelInput], Body(min_length=1, max_length=MAX_BATCH)],
    model: ModelDep,
):
    """Up to 1,000 inputs, each validated as the single endpoint does (1 MiB body cap). One
    "Prediction requested."/"Prediction created." pair for the request, as lists."""
    found = await run_in_threadpool(model.predict_logged, [item.__dict__ for item in body])
    return Response(content=batch_body(found), media_type="application/json")
