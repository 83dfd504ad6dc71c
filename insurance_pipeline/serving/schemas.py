"""Request and response schemas: the original service's contract, strictly validated."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

MAX_BATCH = 1000
# The documented example request (OpenAPI), also what tests and benchmarks send.
EXAMPLE_INPUT = {
    "age": 35,
    "sex": "female",
    "bmi": 27.5,
    "children": 1,
    "smoker": False,
    "region": "southeast",
}


class Sex(StrEnum):
    male = "male"
    female = "female"


class Region(StrEnum):
    southwest = "southwest"
    southeast = "southeast"
    northwest = "northwest"
    northeast = "northeast"


class InsuranceChargesModelInput(BaseModel):
    """One person. Unknown fields, NaN/Infinity and out-of-range values are rejected."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, json_schema_extra={"examples": [EXAMPLE_INPUT]}
    )

    age: Annotated[int, Field(strict=True, ge=18, le=65, description="Age in years")]
    sex: Sex
    bmi: Annotated[float, Field(ge=15, le=50, allow_inf_nan=False, description="Body mass index")]
    children: Annotated[int, Field(strict=True, ge=0, le=5, description="Number of dependants")]
    smoker: Annotated[bool, Field(strict=True, description="Smokes")]
    region: Region


class InsuranceChargesModelOutput(BaseModel):
    charges: float = Field(description="Predicted yearly charges in dollars, 2 decimals")


class ModelMetadata(BaseModel):
    qualified_name: str
    display_name: str
    description: str
    version: str


class ModelCollection(BaseModel):
    models: list[ModelMetadata]


class HealthStatus(BaseModel):
    status: str
    detail: str | None = None


class ErrorResponse(BaseModel):
    detail: str
