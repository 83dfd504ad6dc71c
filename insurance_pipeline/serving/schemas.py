"""Request and response bodies: the original service's contract, strictly validated.

Bounds and categories come from `data.schema`, their one owner.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from insurance_pipeline.domain.schema import CATEGORIES, SERVICE_RULES

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

SexEnum = StrEnum("SexEnum", {value: value for value in CATEGORIES["sex"]})
RegionEnum = StrEnum("RegionEnum", {value: value for value in CATEGORIES["region"]})


def _integral(value: Any) -> Any:
    """JSON Schema counts 18.0 as an integer; so does this service."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _bounded(field: str, description: str):
    rule = SERVICE_RULES[field]
    if rule.integer:
        return Annotated[
            int,
            Field(strict=True, ge=rule.low, le=rule.high, description=description),
            BeforeValidator(_integral),
        ]
    return Annotated[
        float,
        Field(strict=True, ge=rule.low, le=rule.high, allow_inf_nan=False, description=description),
    ]


class InsuranceChargesModelInput(BaseModel):
    """One person. Unknown fields, NaN/Infinity, strings for numbers and out-of-range values
    are rejected."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, json_schema_extra={"examples": [EXAMPLE_INPUT]}
    )

    age: _bounded("age", "Age in years")
    sex: SexEnum = Field(description="Sex")
    bmi: _bounded("bmi", "Body mass index")
    children: _bounded("children", "Number of children covered")
    smoker: bool = Field(strict=True, description="Whether the person smokes")
    region: RegionEnum = Field(description="Region of residence in the US")


class PredictionInterval(BaseModel):
    """Our addition: a conformal interval that holds the charges with probability `level`."""

    level: float = Field(description="Coverage the interval was calibrated for, e.g. 0.9")
    lower: float = Field(description="Lower bound in dollars, 2 decimals (<= charges)")
    upper: float = Field(description="Upper bound in dollars, 2 decimals (>= charges)")


class InsuranceChargesModelOutput(BaseModel):
    charges: float = Field(description="Predicted yearly charges in dollars, 2 decimals")
    interval: PredictionInterval | None = Field(
        default=None, description="Our addition (clients of the original ignore it)"
    )


class ModelDetails(BaseModel):
    display_name: str
    qualified_name: str
    description: str
    version: str


class ModelCollection(BaseModel):
    models: list[ModelDetails]


class ModelMetadata(ModelDetails):
    input_schema: dict[str, Any] = Field(description="JSON Schema of a prediction request")
    output_schema: dict[str, Any] = Field(description="JSON Schema of a prediction response")


class HealthStatus(StrEnum):
    HEALTHY = "HEALTHY"
    NOT_HEALTHY = "NOT_HEALTHY"
    UNKNOWN = "UNKNOWN"


class ReadinessStatus(StrEnum):
    ACCEPTING_TRAFFIC = "ACCEPTING_TRAFFIC"
    REFUSING_TRAFFIC = "REFUSING_TRAFFIC"
    UNKNOWN = "UNKNOWN"


class StartupStatus(StrEnum):
    STARTED = "STARTED"
    NOT_STARTED = "NOT_STARTED"
    UNKNOWN = "UNKNOWN"


class HealthStatusResponse(BaseModel):
    health_status: HealthStatus


class ReadinessResponse(BaseModel):
    readiness_status: ReadinessStatus


class StartupResponse(BaseModel):
    startup_status: StartupStatus


class Error(BaseModel):
    """The original service's error body."""

    type: str
    messages: list[str]
