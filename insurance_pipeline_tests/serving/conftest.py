"""A real serving artifact and a real service process on 127.0.0.1, run by the serving-only
install (`.venv-serving`, as `make serve` and the image run it) when `make install` made it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.ensemble import GradientBoostingRegressor

from insurance_pipeline.core.features.transformer import fit_feature_transformer
from insurance_pipeline.core.modeling.pipeline import FEATURES_STEP, REGRESSOR_STEP, assemble_model
from insurance_pipeline.domain.schema import FEATURE_COLUMNS, TARGET_COLUMN
from insurance_pipeline_tests.helpers import export_artifact, start_service, stop


@pytest.fixture(scope="session")
def trained_pipeline(insurance_frame):
    """The training pipeline shape: fitted featuretools transformer + a fitted regressor."""
    features = fit_feature_transformer(insurance_frame[list(FEATURE_COLUMNS)])
    regressor = GradientBoostingRegressor(n_estimators=60, max_depth=3, random_state=0)
    regressor.fit(
        features.transform(insurance_frame[list(FEATURE_COLUMNS)]), insurance_frame[TARGET_COLUMN]
    )
    return assemble_model(features, regressor)


@pytest.fixture(scope="session")
def trained_interval(insurance_frame, trained_pipeline):
    """A real conformal interval for the fixture's model (3 folds: quick)."""
    from insurance_pipeline.core.modeling.intervals import IntervalConfig, fit_conformal_interval

    X = trained_pipeline.named_steps[FEATURES_STEP].transform(
        insurance_frame[list(FEATURE_COLUMNS)]
    )
    spec = trained_pipeline.named_steps[REGRESSOR_STEP]
    return fit_conformal_interval(insurance_frame, X, spec, IntervalConfig(folds=3))


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory, trained_pipeline, trained_interval) -> Path:
    folder = tmp_path_factory.mktemp("artifact")
    export_artifact(trained_pipeline, folder, version=3, interval=trained_interval)
    return folder


@pytest.fixture(scope="module")
def service(artifact_dir, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("logs") / "service.log"
    running = start_service(
        artifact_dir,
        log_path,
        env={
            "NODE_IP": "10.0.0.7",
            "POD_NAME": "pod-a",
            "NODE_NAME": "node-1",
            "APP_NAME": "insurance-charges-model",
        },
    )
    yield running
    stop(running)
