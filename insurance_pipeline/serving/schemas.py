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


def _bounded(field: str):
    rule = SERVICE_RULES[field]
    text = FIELD_TEXT[field]
    if rule.integer:
        return Annotated[
            int,
            Field(strict=True, ge=rule.low, le=rule.high, **text),
            BeforeValidator(_integral),
        ]
    return Annotated[
        float,
        Field(strict=True, ge=rule.low, le=rule.high, allow_inf_nan=False, **text),
    ]


# The original's titles and descriptions, field by field (its schemas module).
FIELD_TEXT = {
    "age": {"title": "Age", "description": "Age of primary beneficiary in years."},
    "sex": {"title": "Sex", "description": "Gender of beneficiary."},
    "bmi": {"title": "Body Mass Index", "description": "Body mass index of beneficiary."},
    "children": {
        "title": "Children",
        "description": "Number of children covered by health insurance.",
    },
    "smoker": {"title": "Smoker", "description": "Whether beneficiary is a smoker."},
    "region": {"title": "Region", "description": "Region where beneficiary lives."},
    "charges": {
        "title": "Charges",
        "description": "Individual medical costs billed by health insurance to customer in "
        "US dollars.",
    },
}


class InsuranceChargesModelInput(BaseModel):
    """One person. Unknown fields, NaN/Infinity, strings for numbers and out-of-range values
    are rejected."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, json_schema_extra={"examples": [EXAMPLE_INPUT]}
    )

    age: _bounded("age")
    sex: SexEnum = Field(**FIELD_TEXT["sex"])
    bmi: _bounded("bmi")
    children: _bounded("children")
    smoker: bool = Field(strict=True, **FIELD_TEXT["smoker"])
    region: RegionEnum = Field(**FIELD_TEXT["region"])


class PredictionInterval(BaseModel):
    """Our addition: a conformal interval that holds the charges with probability `level`."""

    level: float = Field(description="Coverage the interval was calibrated for, e.g. 0.9")
    lower: float = Field(description="Lower bound in dollars, 2 decimals (<= charges)")
    upper: float = Field(description="Upper bound in dollars, 2 decimals (>= charges)")


class InsuranceChargesModelOutput(BaseModel):
    charges: float = Field(**FIELD_TEXT["charges"])
    interval: PredictionInterval | None = Field(
        default=None, description="Our addition (clients of the original ignore it)"
    )


# The service's own schemas, named and described as the original's (rest_model_service).


class ModelDetails(BaseModel):
    """Metadata of a model."""

    display_name: str = Field(description="The display name of the model.")
    qualified_name: str = Field(description="The qualified name of the model.")
    description: str = Field(description="The description of the model.")
    version: str = Field(description="The version of the model.")


class ModelDetailsCollection(BaseModel):
    """Collection of model details."""

    models: list[ModelDetails] = Field(description="Collection of model details.")


class ModelMetadata(ModelDetails):
    """Metadata of a model, includes all information in ModelDetails plus input and output
    schemas of the model."""

    input_schema: dict[str, Any] = Field(
        description="Input schema of a model, as a JSON Schema object."
    )
    output_schema: dict[str, Any] = Field(
        description="Output schema of a model, as a JSON Schema object."
    )


class HealthStatus(StrEnum):
    """Health status of the service."""

    HEALTHY = "HEALTHY"
    NOT_HEALTHY = "NOT_HEALTHY"
    UNKNOWN = "UNKNOWN"


class ReadinessStatus(StrEnum):
    """Readiness status of the service."""

    ACCEPTING_TRAFFIC = "ACCEPTING_TRAFFIC"
    REFUSING_TRAFFIC = "REFUSING_TRAFFIC"
    UNKNOWN = "UNKNOWN"


class StartupStatus(StrEnum):
    """Startup status of the service."""

    STARTED = "STARTED"
    NOT_STARTED = "NOT_STARTED"
    UNKNOWN = "UNKNOWN"


class HealthStatusResponse(BaseModel):
    """Health status response."""

    health_status: HealthStatus = Field(description="Health status of the service.")


class ReadinessStatusResponse(BaseModel):
    """Readiness status response."""

    readiness_status: ReadinessStatus = Field(description="Readiness status of the service.")


class StartupStatusResponse(BaseModel):
    """Startup status response."""

    startup_status: StartupStatus = Field(description="Startup status of the service.")


class Error(BaseModel):
    """Error details."""

    type: str = Field(description="The type of error.")
    messages: list[str] = Field(description="List of error messages.")
