"""The original model service's contract, replayed over real HTTP: every path, status, body
shape and log record a client or a log pipeline of the original reads."""

import os

import httpx
import pytest

from insurance_pipeline.serving.schemas import EXAMPLE_INPUT
from insurance_pipeline_tests.helpers import start_service, stop

pytestmark = pytest.mark.servers

MODEL = "insurance_charges_model"
PREDICT = f"/api/models/{MODEL}/prediction"
IDENTITY = {
    "node_ip": "10.0.0.7",
    "pod_name": "pod-a",
    "node_name": "node-1",
    "app_name": "insurance-charges-model",
}
LOG_FIELDS = {"asctime", "name", "levelname", "message", *IDENTITY}
MODEL_FIELDS = {"display_name", "qualified_name", "description", "version"}


def get(service, path, **kwargs):
    return httpx.get(service.url + path, timeout=10, **kwargs)


def test_root_redirects_to_the_docs(service):
    response = get(service, "/", follow_redirects=False)
    assert response.status_code in (302, 307) and response.headers["location"] == "/docs"
    assert get(service, "/docs").status_code == 200


@pytest.mark.parametrize(
    "path, key, value",
    [
        ("/api/health", "health_status", "HEALTHY"),
        ("/api/health/ready", "readiness_status", "ACCEPTING_TRAFFIC"),
        ("/api/health/startup", "startup_status", "STARTED"),
    ],
)
def test_probes_answer_the_original_bodies(service, path, key, value):
    response = get(service, path)
    assert (response.status_code, response.json()) == (200, {key: value})


def test_probes_of_a_service_without_a_model_are_503_with_the_same_shapes(tmp_path):
    service = start_service(tmp_path / "missing", tmp_path / "service.log", wait_ready=False)
    try:
        assert get(service, "/api/health").json() == {"health_status": "NOT_HEALTHY"}
        assert get(service, "/api/health").status_code == 503
        ready = get(service, "/api/health/ready")
        assert (ready.status_code, ready.json()) == (503, {"readiness_status": "REFUSING_TRAFFIC"})
        started = get(service, "/api/health/startup")
        assert (started.status_code, started.json()) == (200, {"startup_status": "STARTED"})
        assert get(service, "/api/models").json() == {"models": []}
        refused = httpx.post(service.url + PREDICT, json=EXAMPLE_INPUT)
        assert refused.status_code == 503
        assert refused.json()["type"] == "ModelNotLoaded" and refused.json()["messages"]
    finally:
        stop(service)


def test_the_enums_are_documented_with_unknown(service):
    schemas = get(service, "/openapi.json").json()["components"]["schemas"]
    assert set(schemas["HealthStatus"]["enum"]) == {"HEALTHY", "NOT_HEALTHY", "UNKNOWN"}
    assert set(schemas["ReadinessStatus"]["enum"]) == {
        "ACCEPTING_TRAFFIC",
        "REFUSING_TRAFFIC",
        "UNKNOWN",
    }
    assert set(schemas["StartupStatus"]["enum"]) == {"STARTED", "NOT_STARTED", "UNKNOWN"}


def test_models_list_holds_four_required_strings(service):
    body = get(service, "/api/models").json()
    assert list(body) == ["models"] and len(body["models"]) == 1
    model = body["models"][0]
    assert set(model) == MODEL_FIELDS and all(isinstance(v, str) for v in model.values())
    assert model["qualified_name"] == MODEL
    schema = get(service, "/openapi.json").json()["components"]["schemas"]["ModelDetails"]
    assert set(schema["required"]) == MODEL_FIELDS


def test_metadata_has_the_model_fields_and_both_json_schemas(service):
    response = get(service, f"/api/models/{MODEL}/metadata")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == MODEL_FIELDS | {"input_schema", "output_schema"}
    assert body["version"] == get(service, "/api/models").json()["models"][0]["version"]
    inputs = body["input_schema"]
    assert inputs["type"] == "object"
    assert set(inputs["required"]) == {"age", "sex", "bmi", "children", "smoker", "region"}
    assert body["output_schema"]["properties"]["charges"]["type"] == "number"


def test_metadata_of_an_unknown_model_is_an_error_body_not_a_500(service):
    response = get(service, "/api/models/no_such_model/metadata")
    assert response.status_code == 404
    body = response.json()
    assert set(body) == {"type", "messages"} and isinstance(body["messages"], list)


@pytest.mark.parametrize(
    "field, low, high",
    [("age", 18, 65), ("bmi", 15, 50), ("children", 0, 5)],
)
def test_prediction_input_bounds_are_the_originals(service, field, low, high):
    for value, status in ((low, 200), (high, 200)):
        response = httpx.post(service.url + PREDICT, json={**EXAMPLE_INPUT, field: value})
        assert response.status_code == status, (field, value, response.text)
    below = low - 1 if field != "bmi" else low - 0.01
    above = high + 1 if field != "bmi" else high + 0.01
    for value in (below, above):
        response = httpx.post(service.url + PREDICT, json={**EXAMPLE_INPUT, field: value})
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert all(set(d) == {"loc", "msg", "type"} for d in detail)
        assert ["body", field] in [d["loc"] for d in detail]


def test_categories_are_the_originals(service):
    spec = get(service, "/openapi.json").json()["components"]["schemas"]
    assert set(spec["SexEnum"]["enum"]) == {"male", "female"}
    assert set(spec["RegionEnum"]["enum"]) == {"southwest", "southeast", "northwest", "northeast"}
    inputs = spec["InsuranceChargesModelInput"]["properties"]
    assert inputs["smoker"]["type"] == "boolean"
    assert inputs["age"]["type"] == inputs["children"]["type"] == "integer"
    assert inputs["bmi"]["type"] == "number"


def test_prediction_body_and_its_two_log_records(service):
    item = {**EXAMPLE_INPUT, "age": 44, "region": "northwest"}
    response = httpx.post(service.url + PREDICT, json=item)
    assert response.status_code == 200
    body = response.json()
    # the original's field first; our `interval` after it (clients of the original ignore it)
    assert list(body)[0] == "charges" and isinstance(body["charges"], float)
    assert set(body) <= {"charges", "interval"}

    def mine(records):
        requested = [
            r for r in records if r["message"] == "Prediction requested." and r.get("age") == 44
        ]
        created = [
            r
            for r in records
            if r["message"] == "Prediction created." and r.get("charges") == body["charges"]
        ]
        return requested, created

    records = service.logs_until(lambda rs: all(mine(rs)))
    requested, created = mine(records)
    assert len(requested) == 1 and len(created) == 1, records[-6:]
    first, second = requested[0], created[0]
    assert records.index(first) < records.index(second)
    for record in (first, second):
        assert LOG_FIELDS <= set(record)
        assert record["name"] == "insurance_charges_model_logger"
        assert record["levelname"] == "INFO"
        assert {k: record[k] for k in IDENTITY} == IDENTITY
    assert first["action"] == "predict"
    assert first["model_qualified_name"] == MODEL
    assert first["model_version"] == "3"
    assert {k: first[k] for k in item} == item
    assert second["status"] == "success" and second["charges"] == body["charges"]
    # every record the service wrote is one JSON object with the pod identity
    assert all({k: r[k] for k in IDENTITY} == IDENTITY for r in records)


def test_inputs_can_be_left_out_of_the_records(artifact_dir, tmp_path):
    service = start_service(
        artifact_dir, tmp_path / "service.log", env={"LOG_PREDICTION_INPUTS": "false"}
    )
    try:
        charges = httpx.post(service.url + PREDICT, json=EXAMPLE_INPUT).json()["charges"]
        records = service.logs_until(lambda rs: any(r.get("charges") == charges for r in rs))
        requested = [r for r in records if r["message"] == "Prediction requested."]
        assert requested and requested[0]["model_qualified_name"] == MODEL
        assert not set(EXAMPLE_INPUT) & set(requested[0])
    finally:
        stop(service)


def test_the_openapi_document_has_the_originals_names_and_version(service):
    document = get(service, "/openapi.json").json()
    assert document["info"]["version"] == "0.1.0"
    names = set(document["components"]["schemas"])
    assert {
        "HealthStatusResponse",
        "ReadinessStatusResponse",
        "StartupStatusResponse",
        "ModelDetailsCollection",
        "SexEnum",
        "RegionEnum",
        "ModelDetails",
        "ModelMetadata",
        "Error",
    } <= names
    assert not names & {"HealthResponse", "ReadinessResponse", "ModelCollection", "Sex"}
    inputs = document["components"]["schemas"]["InsuranceChargesModelInput"]["properties"]
    assert inputs["bmi"]["title"] == "Body Mass Index"
    assert inputs["age"]["description"] == "Age of primary beneficiary in years."
    output = document["components"]["schemas"]["InsuranceChargesModelOutput"]["properties"]
    assert output["charges"]["description"].startswith("Individual medical costs billed")
    models = get(service, "/api/models").json()["models"]
    assert models[0]["description"] == "Model to predict the insurance charges of a customer."
    assert models[0]["display_name"] == "Insurance Charges Model"
    metadata = document["components"]["schemas"]["ModelMetadata"]  # the metadata endpoint's
    assert {"input_schema", "output_schema"} <= set(metadata["properties"])


def test_startup_writes_the_originals_messages_in_order(service):
    wanted = [
        "Creating FastAPI app for: 'Insurance Charges Model Service'.",
        "Loaded insurance_charges_model model.",
        "Added PredictionLog decorator to insurance_charges_model model.",
        "Created endpoint for insurance_charges_model model.",
    ]
    records = service.logs_until(lambda rs: wanted[-1] in [r["message"] for r in rs])
    messages = [r["message"] for r in records]
    assert [m for m in messages if m in wanted] == wanted
    loaded = records[messages.index(wanted[1])]
    assert loaded["model_version"] == 3 and len(loaded["sha256"]) == 64


def test_a_rest_config_file_configures_logging_and_the_title(artifact_dir, tmp_path):
    """The original's REST_CONFIG: a YAML file with `service_title` and a dictConfig."""
    import yaml

    from insurance_pipeline_tests.serving.test_logging import REST_CONFIG_FILE

    document = yaml.safe_load(REST_CONFIG_FILE.read_text())
    document["service_title"] = "Charges (staging)"
    document["logging"]["formatters"]["json_formatter"]["fmt"] = "%(levelname)s %(message)s"
    config = tmp_path / "rest_config.yaml"
    config.write_text(yaml.safe_dump(document))
    service = start_service(
        artifact_dir, tmp_path / "service.log", env={"REST_CONFIG": str(config)}
    )
    try:
        assert get(service, "/openapi.json").json()["info"]["title"] == "Charges (staging)"
        records = service.logs_until(
            lambda rs: any(r["message"].startswith("Created endpoint") for r in rs)
        )
        assert records[0]["message"] == "Creating FastAPI app for: 'Charges (staging)'."
        assert list(records[0])[:2] == ["levelname", "message"]  # the file's format
        assert {"node_ip", "pod_name", "node_name", "app_name"} <= set(records[0])  # its filter
    finally:
        stop(service)


def test_a_broken_rest_config_stops_the_service_naming_the_file(artifact_dir, tmp_path):
    import subprocess

    from insurance_pipeline_tests.helpers import SERVICE_PYTHON

    config = tmp_path / "rest_config.yaml"
    config.write_text("logging: {version: 1, root: {handlers: [missing]}}")
    done = subprocess.run(
        [SERVICE_PYTHON, "-m", "insurance_pipeline.serving", "--artifact-dir", str(artifact_dir)],
        env={**os.environ, "REST_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and str(config) in done.stderr
