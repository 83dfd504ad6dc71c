"""The batch fast path validates the raw body in pydantic's JSON mode; the FastAPI route
decodes it, then validates the objects. Both must accept exactly the same bodies, with the
same values and types, or the fast path would answer what the contract refuses."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from insurance_pipeline.serving.fast_path import BATCH
from insurance_pipeline.serving.schemas import EXAMPLE_INPUT

pytestmark = pytest.mark.pure

VARIANTS = {
    "age": [35, 35.0, 35.5, True, "35", None, 17, 66, 1e300, -0.0, 18.0000000001, 2**70],
    "bmi": [27, 27.5, "27.5", True, None, 15, 50.0, 14.99, 1e400],
    "children": [0, 0.0, False, "1", 5, 6, 2.0],
    "smoker": [False, True, 0, 1, "true", "false", "yes", None, 0.0],
    "sex": ["female", "Female", "FEMALE", 1, "male ", None],
    "region": ["southeast", "SouthEast", "south east", 3],
}
CASES = [(field, value) for field, values in VARIANTS.items() for value in values]


def accepted(validate) -> list[tuple] | None:
    try:
        return [tuple((k, type(v), v) for k, v in item.__dict__.items()) for item in validate()]
    except (ValidationError, ValueError):
        return None


@pytest.mark.parametrize("field, value", CASES, ids=[f"{f}={v!r}" for f, v in CASES])
def test_json_mode_accepts_what_decoding_then_validating_accepts(field, value):
    text = json.dumps([{**EXAMPLE_INPUT, field: value}]).replace("Infinity", "1e400")
    assert accepted(lambda: BATCH.validate_json(text)) == accepted(
        lambda: BATCH.validate_python(json.loads(text))
    )


@pytest.mark.parametrize(
    "text",
    [
        '[{"age": 35, "age": 40, "sex": "male", "bmi": 20, "children": 0, "smoker": true, '
        '"region": "northeast"}]',
        '[{"age": NaN, "sex": "male", "bmi": 20, "children": 0, "smoker": true, '
        '"region": "northeast"}]',
        json.dumps([{**EXAMPLE_INPUT, "extra": 1}]),
        "[]",
        "{}",
    ],
)
def test_odd_bodies_are_judged_alike(text):
    assert accepted(lambda: BATCH.validate_json(text)) == accepted(
        lambda: BATCH.validate_python(json.loads(text))
    )
