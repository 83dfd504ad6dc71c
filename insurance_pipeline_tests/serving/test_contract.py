import yaml

from insurance_pipeline.serving.app import create_app
from insurance_pipeline.serving.contract import CONTRACT

PATHS = {
    "/api/models/insurance_charges_model/prediction": "post",
    "/api/models/insurance_charges_model/predictions": "post",
    "/api/models": "get",
    "/api/health": "get",
    "/api/health/ready": "get",
    "/api/health/startup": "get",
}


def test_service_contract_file_matches_the_app():
    on_disk = yaml.safe_load(CONTRACT.read_text())
    assert on_disk == create_app(artifact_dir="/nonexistent").openapi(), (
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
