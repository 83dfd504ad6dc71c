"""The artifact is pinned by sha256; a missing or tampered file never becomes ready."""

import shutil

import httpx
import numpy as np
import pytest

from insurance_pipeline.data.contract import FEATURE_COLUMNS
from insurance_pipeline.serving.artifact import ArtifactError, load_artifact, write_artifact
from insurance_pipeline.serving.plain import to_serving_pipeline
from insurance_pipeline.serving.predictor import Predictor, _frame, probe_rows
from insurance_pipeline.serving.schemas import EXAMPLE_INPUT
from insurance_pipeline_tests.serving.conftest import start_service, stop

VALID = EXAMPLE_INPUT


def copy_of(artifact_dir, tmp_path):
    target = tmp_path / "artifact"
    shutil.copytree(artifact_dir, target)
    return target


def test_served_pipeline_equals_the_trained_one_on_every_row(trained_pipeline, insurance_frame):
    served = to_serving_pipeline(trained_pipeline)
    X = insurance_frame[list(FEATURE_COLUMNS)]
    np.testing.assert_allclose(served.predict(X), trained_pipeline.predict(X), rtol=0, atol=1e-9)
    # the training object is untouched
    assert (
        type(
            trained_pipeline.named_steps["features"].named_transformers_["dfs"].named_steps["dfs"]
        ).__name__
        == "DeepFeatureSynthesis"
    )


def test_compiled_predictor_equals_the_pipeline(trained_pipeline, insurance_frame):
    served = to_serving_pipeline(trained_pipeline)
    predictor = Predictor(served)
    assert predictor.compiled
    rows = [
        {**r, "smoker": r["smoker"] == "yes"}
        for r in insurance_frame[list(FEATURE_COLUMNS)].to_dict("records")
    ] + probe_rows()
    np.testing.assert_allclose(
        predictor.predict(rows), served.predict(_frame(rows)), rtol=0, atol=1e-9
    )


def test_load_checks_the_sha256(artifact_dir, tmp_path):
    folder = copy_of(artifact_dir, tmp_path)
    model, manifest = load_artifact(folder)
    assert manifest.version == 3 and hasattr(model, "predict")
    with open(folder / "model.joblib", "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ArtifactError, match="sha256 .* but the manifest pins"):
        load_artifact(folder)
    (folder / "model.joblib").unlink()
    with pytest.raises(ArtifactError, match="model file not found"):
        load_artifact(folder)
    (folder / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="manifest not found"):
        load_artifact(folder)


def test_unreadable_model_is_refused(tmp_path):
    folder = tmp_path / "artifact"
    write_artifact({"not": "a model"}, folder, model_name="insurance_charges_model", version=1)
    (folder / "model.joblib").write_bytes(b"garbage")
    manifest = (folder / "manifest.json").read_text()
    from insurance_pipeline.data.hashing import file_sha256

    old_sha = manifest.split('"sha256": "')[1].split('"')[0]
    (folder / "manifest.json").write_text(
        manifest.replace(old_sha, file_sha256(folder / "model.joblib"))
    )
    with pytest.raises(ArtifactError, match="could not be loaded"):
        load_artifact(folder)


@pytest.mark.parametrize("damage", ["tamper", "delete"])
def test_service_with_a_bad_artifact_stays_unready_and_says_why(artifact_dir, tmp_path, damage):
    folder = copy_of(artifact_dir, tmp_path)
    if damage == "tamper":
        with open(folder / "model.joblib", "r+b") as handle:
            handle.seek(100)
            handle.write(b"\x00\x01")
    else:
        (folder / "model.joblib").unlink()
    service = start_service(folder, tmp_path / "service.log", wait_ready=False)
    try:
        ready = httpx.get(service.url + "/api/health/ready")
        assert ready.status_code == 503
        assert httpx.get(service.url + "/api/health").status_code == 200
        predict = httpx.post(
            service.url + "/api/models/insurance_charges_model/prediction", json=VALID
        )
        assert predict.status_code == 503
        assert httpx.get(service.url + "/api/models").json() == {"models": []}
        refusals = [r for r in service.logs() if r["message"].startswith("model refused")]
        assert refusals and refusals[0]["levelname"] == "ERROR"
        expected = "but the manifest pins" if damage == "tamper" else "model file not found"
        assert expected in refusals[0]["message"]
        assert service.process.poll() is None  # still running
    finally:
        stop(service)


@pytest.mark.parametrize("family", ["lightgbm", "xgboost", "blend", "forest"])
def test_compiled_regressors_equal_their_predict(trained_pipeline, insurance_frame, family):
    from lightgbm import LGBMRegressor
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor, VotingRegressor
    from xgboost import XGBRegressor

    from insurance_pipeline.data.contract import TARGET_COLUMN
    from insurance_pipeline.modeling.model import assemble_model
    from insurance_pipeline.serving.predictor import compile_regressor

    features = trained_pipeline.named_steps["features"]
    X = features.transform(insurance_frame[list(FEATURE_COLUMNS)])
    y = insurance_frame[TARGET_COLUMN]
    lgbm = LGBMRegressor(objective="huber", alpha=5000, n_estimators=50, verbose=-1)
    regressor = {
        "lightgbm": lgbm,
        "xgboost": XGBRegressor(n_estimators=30, max_depth=3),
        "blend": VotingRegressor(
            [("gbr", GradientBoostingRegressor(loss="huber", n_estimators=40)), ("lgbm", lgbm)],
            weights=[0.7, 0.3],
        ),
        "forest": RandomForestRegressor(n_estimators=10, random_state=0),  # not compiled
    }[family].fit(X, y)
    np.testing.assert_allclose(
        compile_regressor(regressor)(X), regressor.predict(X), rtol=1e-6, atol=1e-6
    )
    predictor = Predictor(to_serving_pipeline(assemble_model(features, regressor)))
    assert predictor.compiled
    rows = [
        {**r, "smoker": r["smoker"] == "yes"}
        for r in insurance_frame[list(FEATURE_COLUMNS)].to_dict("records")
    ]
    np.testing.assert_allclose(predictor.predict(rows), regressor.predict(X), rtol=1e-6, atol=1e-6)


def test_a_manifest_model_file_outside_its_folder_is_refused(artifact_dir, tmp_path):
    import json

    artifact = copy_of(artifact_dir, tmp_path)
    outside = tmp_path / "elsewhere.joblib"
    shutil.copy(artifact / "model.joblib", outside)  # a valid file, same sha256, wrong place
    manifest = json.loads((artifact / "manifest.json").read_text())
    manifest["model_file"] = "../elsewhere.joblib"
    (artifact / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="points outside"):
        load_artifact(artifact)


def test_model_sha256_mismatch_is_refused_over_http(artifact_dir, tmp_path):
    from insurance_pipeline.serving.artifact import read_manifest

    pinned = read_manifest(artifact_dir).sha256
    other = "0" * 64
    service = start_service(
        artifact_dir, tmp_path / "service.log", env={"MODEL_SHA256": other}, wait_ready=False
    )
    try:
        response = httpx.get(service.url + "/api/health/ready")
        assert response.status_code == 503
        assert (
            httpx.post(
                service.url + "/api/models/insurance_charges_model/prediction", json=VALID
            ).status_code
            == 503
        )
        errors = [r for r in service.logs() if r["levelname"] == "ERROR"]
        assert any(pinned in r["message"] and other in r["message"] for r in errors), errors
    finally:
        stop(service)
    # the matching hash is accepted
    service = start_service(artifact_dir, tmp_path / "ok.log", env={"MODEL_SHA256": pinned})
    stop(service)
