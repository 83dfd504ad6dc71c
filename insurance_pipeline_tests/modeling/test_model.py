"""The trained model's file on disk: written with its sha256, reused only while it matches."""

import pytest
from sklearn.dummy import DummyRegressor
from sklearn.pipeline import Pipeline

from insurance_pipeline.data.hashing import file_sha256
from insurance_pipeline.modeling.model import save_model_file


def pipeline(value: float) -> Pipeline:
    return Pipeline(
        [("regressor", DummyRegressor(strategy="constant", constant=value).fit([[0]], [0]))]
    )


def test_the_file_is_written_with_its_recorded_sha256_and_reused(tmp_path):
    path, sha = save_model_file(pipeline(1.0), tmp_path)
    assert file_sha256(path) == sha
    assert (tmp_path / "model.joblib.sha256").read_text().strip() == sha
    again, sha_again = save_model_file(pipeline(1.0), tmp_path)
    assert (again, sha_again) == (path, sha)


def test_a_tampered_file_is_never_reused(tmp_path):
    import joblib

    path, _ = save_model_file(pipeline(1.0), tmp_path)
    joblib.dump(pipeline(99.0), path)  # swapped behind our back
    with pytest.raises(ValueError, match=f"model file {path} has sha256"):
        save_model_file(pipeline(1.0), tmp_path)
