"""A model that fails to predict: "Prediction exception." and a 500 error body, through both
the fast path (single) and the FastAPI route (batch)."""

import io
import json
import logging
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from insurance_pipeline.serving.app import create_app
from insurance_pipeline.serving.logging import configure_logging, flush_logs
from insurance_pipeline.serving.schemas import EXAMPLE_INPUT
from insurance_pipeline.serving.settings import ServiceSettings

pytestmark = pytest.mark.pure


class Broken:
    """Stands in for the compiled model's predict methods only: they raise."""

    def __init__(self, model):
        self.model = model

    interval = None

    def predict(self, rows):
        raise FloatingPointError("overflow in tree 7")

    predict_row = predict


def test_a_failing_model_logs_the_exception_and_answers_500(artifact_dir):
    stream = io.StringIO()
    configure_logging(stream=stream)
    try:
        app = create_app(ServiceSettings(artifact_dir=artifact_dir))
        with TestClient(app) as client:
            served = app.state.service.model
            app.state.service.model = replace(served, model=Broken(served.model))
            single = client.post(
                "/api/models/insurance_charges_model/prediction", json=EXAMPLE_INPUT
            )
            batch = client.post(
                "/api/models/insurance_charges_model/predictions", json=[EXAMPLE_INPUT] * 2
            )
        flush_logs()
    finally:
        logging.getLogger().handlers[:] = []
    for response in (single, batch):
        assert response.status_code == 500
        assert response.json()["type"] == "ServiceError"
        assert "overflow in tree 7" in response.json()["messages"][0]
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    failures = [r for r in records if r["message"] == "Prediction exception."]
    assert len(failures) == 2
    assert all(r["status"] == "error" and "overflow" in r["error_info"] for r in failures)
    assert all(r["levelname"] == "ERROR" for r in failures)
    assert not [r for r in records if r["message"] == "Prediction created."]
