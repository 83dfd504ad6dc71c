from pathlib import Path

import pytest
import yaml

from insurance_pipeline.serving.app import create_app
from insurance_pipeline.serving.settings import ServiceSettings
from tooling.contract import CONTRACT

pytestmark = pytest.mark.pure

PATHS = {
    "/api/models/insurance_charges_model/prediction": "post",
    "/api/models/insurance_charges_model/predictions": "post",
    "/api/models": "get",
    "/api/models/{model_qualified_name}/metadata": "get",
    "/api/health": "get",
    "/api/health/ready": "get",
    "/api/health/startup": "get",
}


def test_service_contract_file_matches_the_app():
    on_disk = yaml.safe_load(CONTRACT.read_text())
    assert on_disk == create_app(ServiceSettings(artifact_dir=Path("/nonexistent"))).openapi(), (
        "service_contract.yaml drifted from the app: run `make contract` and review the diff"
    )


def test_contract_has_the_original_paths_and_input_schema():
    spec = yaml.safe_load(CONTRACT.read_text())
    for path, method in PATHS.items():
        assert method in spec["paths"][path], path
    schema = spec["components"]["schemas"]["InsuranceChargesModelInput"]
    assert set(schema["required"]) == {"age", "sex", "bmi", "children", "smoker", "region"}
    assert schema["additionalProperties"] is False
    assert (schema["properties"]["age"]["minimum"], schema["properties"]["age"]["maximum"]) == (
        18,
        65,
    )


def test_every_status_the_service_can_return_is_documented():
    spec = yaml.safe_load(CONTRACT.read_text())
    single = spec["paths"]["/api/models/insurance_charges_model/prediction"]["post"]["responses"]
    # 400 undecodable body, 408 slow body, 413 oversized, 422 invalid or unparsable JSON,
    # 500 model failure, 503 no model
    assert {"200", "400", "408", "413", "422", "500", "503"} <= set(single)
    for status in ("400", "408", "413", "500", "503"):
        schema = single[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}, status
    error = spec["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"type", "messages"}
    assert "Additions to the original contract" in spec["info"]["description"]
