"""The service's contract over real HTTP on 127.0.0.1."""

import json

import httpx
import pandas as pd
import pytest

from insurance_pipeline.serving.schemas import EXAMPLE_INPUT

pytestmark = pytest.mark.servers

PREDICT = "/api/models/insurance_charges_model/prediction"
BATCH = "/api/models/insurance_charges_model/predictions"
VALID = EXAMPLE_INPUT


def post(service, path, body=None, content=None, headers=None):
    return httpx.post(service.url + path, json=body, content=content, headers=headers, timeout=30)


def expected_charges(trained_pipeline, item: dict) -> float:
    frame = pd.DataFrame([{**item, "smoker": "yes" if item["smoker"] else "no"}])
    return round(float(trained_pipeline.predict(frame)[0]), 2)


def test_prediction_matches_the_trained_pipeline(service, trained_pipeline):
    for item in (
        VALID,
        {**VALID, "smoker": True, "children": 0, "age": 18, "bmi": 15},
        {**VALID, "age": 65, "bmi": 50, "children": 5, "region": "northwest"},
    ):
        response = post(service, PREDICT, item)
        assert response.status_code == 200
        assert response.json()["charges"] == expected_charges(trained_pipeline, item)


def test_model_list_and_probes(service):
    models = httpx.get(service.url + "/api/models").json()["models"]
    assert models == [
        {
            "display_name": "Insurance Charges Model",
            "qualified_name": "insurance_charges_model",
            "description": models[0]["description"],
            "version": "3",
        }
    ]
    for path in (
        "/api/health",
        "/api/health/ready",
        "/api/health/startup",
        "/docs",
        "/openapi.json",
    ):
        assert httpx.get(service.url + path).status_code == 200, path


@pytest.mark.parametrize(
    "field, value",
    [
        ("age", 17),
        ("age", 66),
        ("age", 30.5),
        ("age", "30"),
        ("age", True),
        ("sex", "other"),
        ("bmi", 14.9),
        ("bmi", 50.1),
        ("bmi", "big"),
        ("bmi", "30.5"),
        ("children", -1),
        ("children", 6),
        ("smoker", "yes"),
        ("smoker", 1),
        ("region", "midwest"),
        ("age", None),
        ("age", 10**100),
        ("bmi", 1e308),
    ],
)
def test_each_schema_violation_is_422_naming_the_field(service, field, value):
    response = post(service, PREDICT, {**VALID, field: value})
    assert response.status_code == 422
    assert ["body", field] in [e["loc"] for e in response.json()["detail"]]


def test_integral_numbers_are_integers_as_in_json_schema(service, trained_pipeline):
    item = {**VALID, "age": 40.0, "children": 2.0}
    response = post(service, PREDICT, item)
    assert response.status_code == 200, response.text
    assert response.json()["charges"] == expected_charges(trained_pipeline, item)


def test_missing_and_unknown_fields(service):
    missing = {k: v for k, v in VALID.items() if k != "region"}
    assert ["body", "region"] in [
        e["loc"] for e in post(service, PREDICT, missing).json()["detail"]
    ]
    extra = post(service, PREDICT, {**VALID, "income": 1})
    assert extra.status_code == 422
    assert ["body", "income"] in [e["loc"] for e in extra.json()["detail"]]


TEMPLATE = '{"age": 35, "sex": "female", "bmi": %s, "children": 1, "smoker": false, "region": "se"}'


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_nan_infinity_and_huge_numbers_are_422(service, number):
    raw = (TEMPLATE % number).replace('"se"', '"southeast"').encode()
    response = post(service, PREDICT, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert ["body", "bmi"] in [e["loc"] for e in response.json()["detail"]]


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2", b"null", b'"text"', b"[]"])
def test_wrong_json_is_422_without_a_trace(service, raw):
    response = post(service, PREDICT, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert set(response.json()) == {"detail"}
    assert "Traceback" not in response.text and 'File "' not in response.text


def test_a_body_that_cannot_be_decoded_is_400_with_the_error_body(service):
    response = post(
        service,
        PREDICT,
        content=b'{"age": "\xff\xfe\x80"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "BodyDecodeError" and isinstance(body["messages"], list)


def test_single_body_over_64_kib_is_413(service):
    big = json.dumps({**VALID, "pad": "x" * (64 * 1024)}).encode()
    assert (
        post(
            service, PREDICT, content=big, headers={"content-type": "application/json"}
        ).status_code
        == 413
    )

    # chunked, no Content-Length
    def chunks():
        for _ in range(70):
            yield b" " * 1024

    response = httpx.post(
        service.url + PREDICT, content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_batch_of_1000_and_its_limits(service, trained_pipeline):
    items = [
        {**VALID, "age": 18 + i % 48, "children": i % 6, "smoker": bool(i % 2)} for i in range(1000)
    ]
    response = post(service, BATCH, items)
    assert response.status_code == 200
    charges = [p["charges"] for p in response.json()]
    frame = pd.DataFrame([{**i, "smoker": "yes" if i["smoker"] else "no"} for i in items])
    expected = [round(float(v), 2) for v in trained_pipeline.predict(frame)]
    assert charges == pytest.approx(expected, abs=0.011)
    too_many = post(service, BATCH, items + [VALID])
    assert too_many.status_code == 422
    bad_item = post(service, BATCH, [VALID, {**VALID, "age": 99}])
    assert bad_item.status_code == 422
    assert ["body", 1, "age"] in [e["loc"] for e in bad_item.json()["detail"]]
    assert post(service, BATCH, []).status_code == 422
    huge = json.dumps([{**VALID, "pad": "x" * 2000}] * 600).encode()  # > 1 MiB
    assert len(huge) > 1024 * 1024
    assert (
        post(service, BATCH, content=huge, headers={"content-type": "application/json"}).status_code
        == 413
    )


def test_a_batch_writes_one_pair_of_records_with_lists(service):
    items = [{**VALID, "age": 21}, {**VALID, "age": 22, "smoker": True}]
    charges = [p["charges"] for p in post(service, BATCH, items).json()]
    records = service.logs_until(lambda rs: any(r.get("charges") == charges for r in rs))
    requested = [
        r for r in records if r["message"] == "Prediction requested." and r.get("age") == [21, 22]
    ]
    created = [
        r for r in records if r["message"] == "Prediction created." and r.get("charges") == charges
    ]
    assert len(requested) == 1 and len(created) == 1
    assert requested[0]["smoker"] == [False, True]


def test_the_interval_is_the_trained_one_and_holds_the_charges(
    service, trained_pipeline, trained_interval
):
    items = [
        VALID,
        {**VALID, "smoker": True, "age": 60, "bmi": 38.0},
        {**VALID, "age": 18, "bmi": 15, "children": 0},
    ]
    single = [post(service, PREDICT, item).json() for item in items]
    batch = post(service, BATCH, items).json()
    assert single == batch
    frame = pd.DataFrame([{**i, "smoker": "yes" if i["smoker"] else "no"} for i in items])
    point = trained_pipeline.predict(frame)
    X = trained_pipeline.named_steps["features"].transform(frame)
    lower, upper = trained_interval.bounds(point, X)
    for body, low, high in zip(single, lower, upper, strict=True):
        interval = body["interval"]
        assert interval["level"] == 0.9
        assert interval["lower"] <= body["charges"] <= interval["upper"]
        assert (interval["lower"], interval["upper"]) == (round(low, 2), round(high, 2))
    widths = [b["interval"]["upper"] - b["interval"]["lower"] for b in single]
    assert len(set(widths)) == len(widths)  # adaptive: each row its own width


def test_the_fastapi_route_answers_as_the_fast_path_does(artifact_dir, trained_pipeline):
    """The route that documents the endpoint, on its success path: the same status, body
    and records as the fast path that usually answers first."""
    import io
    import logging

    from fastapi.testclient import TestClient

    from insurance_pipeline.serving.app import create_app
    from insurance_pipeline.serving.logging import configure_logging, flush_logs
    from insurance_pipeline.serving.settings import ServiceSettings

    answers, records = {}, {}
    for fast in (True, False):
        stream = io.StringIO()
        configure_logging(stream=stream)
        try:
            app = create_app(ServiceSettings(artifact_dir=artifact_dir), fast_path=fast)
            with TestClient(app) as client:
                answers[fast] = client.post(PREDICT, json=VALID)
            flush_logs()
        finally:
            logging.getLogger().handlers[:] = []
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        records[fast] = [
            {k: v for k, v in r.items() if k != "asctime"}
            for r in lines
            if r["name"] == "insurance_charges_model_logger"
        ]
    assert answers[False].status_code == 200
    assert answers[False].content == answers[True].content
    assert answers[False].json()["charges"] == expected_charges(trained_pipeline, VALID)
    assert [r["message"] for r in records[False]] == [
        "Prediction requested.",
        "Prediction created.",
    ]
    assert records[False] == records[True]
