"""The whole graph, materialized for real (tiny TPOT budget), then the cache at work."""

import json
from pathlib import Path

import pytest

from insurance_pipeline.core.modeling import search
from insurance_pipeline.core.trust.files import signed_sha256
from insurance_pipeline.domain.hashing import file_sha256
from insurance_pipeline.resources.mlflow import (
    PICKLE_TAG,
    TEST_DATASET,
    TRAIN_DATASET,
    pickle_subject,
)
from insurance_pipeline_tests.helpers import (
    TRAINING_ASSETS,
    materialize,
    metadata_by_asset,
    mlflow,
    registry_state,
    release,
    tiny_run_config,
    trust,
)

pytestmark = pytest.mark.dagster

ISOLATED_CACHE = True  # asserts cold misses, then exactly which steps miss
ASSETS = TRAINING_ASSETS
CACHED = ASSETS[:-1]
FLOOR = {"gates": {"r2_floor": 0.5}}  # this test is about caching, not the gate


@pytest.fixture(scope="module")
def first_run(workspace):
    result = materialize(tiny_run_config(**FLOOR))
    assert result.success
    return metadata_by_asset(result), result


@pytest.fixture
def search_calls(monkeypatch):
    calls = []
    real = search.run_search

    def counting_run_search(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(search, "run_search", counting_run_search)
    return calls


def test_first_run_materializes_every_asset_with_its_metadata(first_run, workspace):
    meta, result = first_run
    assert list(meta) == ASSETS
    assert all(meta[a]["cache"] == "miss" for a in CACHED)
    assert all(e.passed for e in result.get_asset_check_evaluations())
    assert len(result.get_asset_check_evaluations()) == 6  # with interval_coverage
    assert meta["champion_comparison"]["champion_version"] is None  # first model: no champion
    segments = meta["validation_metrics"]["segments"]
    for segment in ("smoker=yes", "smoker=no", "region=southwest", "sex=female"):
        assert f"| {segment} |" in segments

    assert meta["raw_insurance_data"]["sha256"] == file_sha256(workspace.csv)
    assert meta["raw_insurance_data"]["rows"] == 1338
    profile = Path(meta["insurance_data_profile"]["file"])
    assert profile.is_file() and "ydata" in profile.read_text().lower()
    assert meta["insurance_data_profile"]["duplicate_rows"] == 1
    split = meta["train_test_split"]
    assert (split["train_rows"], split["test_rows"], split["duplicates_dropped"]) == (1069, 268, 1)
    assert meta["feature_transformer"]["n_features"] == 33
    assert len(meta["feature_transformer"]["feature_names"]) == 33
    assert meta["tpot_pipeline"]["pipeline"].split("(")[0] in {
        "VotingRegressor",
        "GradientBoostingRegressor",
        "LGBMRegressor",
        "XGBRegressor",
    }
    assert 0 < meta["tpot_pipeline"]["cv_score"] < 1  # r2 - MAE/100000

    model = meta["trained_model"]
    metrics = meta["validation_metrics"]
    assert 0.5 < metrics["r2"] <= 1 and metrics["test_rows"] == 268
    assert metrics["rmse"] == pytest.approx(metrics["mse"] ** 0.5, rel=1e-3)
    report = Path(meta["validation_report"]["file"]).read_text()
    assert report.count("data:image/png;base64,") == 3 and "r2" in report  # + the interval
    assert "Prediction interval" in report and "smoker=yes" in report
    assert 0.8 <= metrics["interval_coverage"] <= 0.97
    assert metrics["interval_mean_width"] > 0 and meta["prediction_interval"]["level"] == 0.9
    assert "Metrics per segment" in report and "smoker" in report
    assert "![residuals](data:image/png;base64," in meta["validation_report"]["plots"]

    registered = meta["registered_model"]
    assert (registered["version"], registered["alias"], registered["new_version"]) == (
        1,
        "champion",
        True,
    )
    assert registry_state() == ([1], 1)

    # the MLflow run carries params, tags and metrics
    run = mlflow().client().get_run(model["mlflow_run_id"])
    assert run.data.tags["data_sha256"] == file_sha256(workspace.csv)
    subject = pickle_subject(model["model_key"], model["mlflow_run_id"])
    assert len(signed_sha256(run.data.tags[PICKLE_TAG], subject, trust().verifier())) == 64
    assert run.data.params["split_seed"] == "42"
    assert "lib.scikit-learn" in run.data.params
    assert run.data.metrics["holdout_r2"] == pytest.approx(metrics["r2"], abs=1e-4)
    # the TPOT budget, and the data as dataset inputs (the MLflow UI's lineage)
    budget = meta["tpot_pipeline"]["budget"]
    for key in ("generations", "population_size", "cv", "random_state", "search_space", "scorer"):
        assert run.data.params[f"tpot.{key}"] == str(budget[key])
    datasets = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(datasets) == {TRAIN_DATASET, TEST_DATASET}
    contexts = {name: {t.key: t.value for t in d.tags} for name, d in datasets.items()}
    assert contexts[TRAIN_DATASET]["mlflow.data.context"] == "training"
    assert contexts[TEST_DATASET]["mlflow.data.context"] == "test"
    train_set = datasets[TRAIN_DATASET].dataset
    assert str(workspace.csv) in train_set.source and train_set.digest
    assert json.loads(train_set.profile)["num_rows"] == 1069
    # as the MLflow guide logs a run: each hyperparameter flat (get_params' names), the raw
    # CSV beside its dataset inputs, a signature from the domain schema, and its three tags
    steps = {k.split("__")[0] for k in run.data.params if "__" in k}
    assert steps and all(step in run.data.params["pipeline"].lower() for step in steps)
    raw = mlflow().client().list_artifacts(model["mlflow_run_id"], "data")
    assert [a.path for a in raw] == [f"data/{workspace.csv.name}"]
    from mlflow.models import get_model_info

    info = get_model_info(f"runs:/{model['mlflow_run_id']}/model")
    columns = {c["name"]: c["type"] for c in info.signature.inputs.to_dict()}
    assert columns == {
        "age": "long",
        "sex": "string",
        "bmi": "double",
        "children": "long",
        "smoker": "string",
        "region": "string",
    }
    assert run.data.tags["engineering"] == "insurance_pipeline"
    assert run.data.tags["release.candidate"] == "true"
    assert run.data.tags["release.version"] == "1"
    version = mlflow().get_version(1)
    assert (version.tags["release.candidate"], version.tags["release.version"]) == ("true", "1")


def test_every_check_records_its_figures_as_numbers(first_run):
    """Numeric check metadata is what Dagster's check page plots across runs."""
    from dagster import FloatMetadataValue, IntMetadataValue

    _, result = first_run
    checks = {e.check_name: e.metadata for e in result.get_asset_check_evaluations()}
    numeric = (FloatMetadataValue, IntMetadataValue)
    for name in ("r2_above_floor", "predictions_finite", "test_rows_as_expected"):
        assert isinstance(checks[name]["r2"], FloatMetadataValue), name
        assert isinstance(checks[name]["mae"], FloatMetadataValue)
        assert isinstance(checks[name]["rows"], IntMetadataValue)
    coverage = checks["interval_coverage"]
    for figure in ("coverage", "mean_width", "median_width"):
        assert isinstance(coverage[figure], FloatMetadataValue), figure
    assert 0.8 <= coverage["coverage"].value <= 0.97
    comparison = checks["challenger_not_worse"]
    assert isinstance(comparison["rows"], numeric)
    assert isinstance(checks["raw_insurance_data_contract"]["rows"], IntMetadataValue)


def test_second_run_is_all_cache_hits_without_search_or_new_version(first_run, search_calls):
    meta, _ = first_run
    again = metadata_by_asset(materialize(tiny_run_config(**FLOOR)))
    assert {a: again[a]["cache"] for a in CACHED} == {a: "hit" for a in CACHED}
    assert search_calls == []
    assert again["trained_model"]["model_key"] == meta["trained_model"]["model_key"]
    assert again["registered_model"]["version"] == 1
    assert again["registered_model"]["new_version"] is False
    assert registry_state() == ([1], 1)


def test_new_seed_misses_the_split_and_downstream_while_the_profile_hits(first_run, search_calls):
    result = materialize(tiny_run_config(train_test_split={"seed": 7}, **FLOOR))
    assert result.success
    meta = metadata_by_asset(result)
    assert meta["raw_insurance_data"]["cache"] == "hit"
    assert meta["insurance_data_profile"]["cache"] == "hit"
    for asset in CACHED[2:]:
        assert meta[asset]["cache"] == "miss", asset
    assert search_calls == [1]
    assert registry_state() == ([1, 2], 2)


def test_champion_serving_artifact_is_compiled_pinned_and_equivalent(first_run, tmp_path):
    import numpy as np

    from insurance_pipeline.compiled.artifact import load_artifact, manifest_digest
    from insurance_pipeline.core.data.contract import read_insurance_csv, to_typed_frame
    from insurance_pipeline.core.trust.files import verify_folder
    from insurance_pipeline.domain.schema import FEATURE_COLUMNS
    from insurance_pipeline.resources.mlflow import SERVING_SHA_TAG

    meta, _ = first_run
    keys, releases = trust(), release()
    champion = releases.champion().version
    approval = releases.approval(champion)
    assert approval.approved, approval.summary()
    folder = releases.fetch_served(champion, approval, tmp_path / "served")
    verify_folder(folder, keys.verifier(), "the export")  # OpenSSF model signing
    served_digest = releases.served_digest(approval)
    loaded = load_artifact(folder, served_digest)  # the reference rows too
    manifest = loaded.manifest
    assert manifest.version == int(champion.version) == registry_state()[1]
    assert manifest.model_name == "insurance_charges_model"
    assert manifest_digest(folder) == champion.tags[SERVING_SHA_TAG] == served_digest
    assert len(loaded.model.encoder.dfs.ops) == 30 and manifest.trees > 0
    rows = to_typed_frame(read_insurance_csv(Path(meta["raw_insurance_data"]["file"])))
    X = rows[list(FEATURE_COLUMNS)]
    # Compare with the champion's own trained pipeline, as logged to its MLflow run.
    trained, _ = releases.load_model(champion, approval)
    served_rows = [{**r, "smoker": r["smoker"] == "yes"} for r in X.to_dict("records")]
    np.testing.assert_allclose(
        loaded.model.predict(served_rows).charges, trained.predict(X), rtol=0, atol=1e-6
    )


def test_a_training_run_observes_the_csv_first(first_run, workspace):
    """The UI shows the CSV's version as the run read it, never "Never observed"."""
    from dagster import AssetKey, DagsterInstance

    from insurance_pipeline.defs.training.schedule import current_data_version

    _, result = first_run
    observed = [
        e.asset_observation_data.asset_observation.asset_key
        for e in result.all_events
        if e.is_asset_observation
    ]
    assert observed == [AssetKey("insurance_csv")]
    with DagsterInstance.get() as instance:
        assert current_data_version(instance, AssetKey("insurance_csv")) == file_sha256(
            workspace.csv
        )


def test_registration_waits_for_its_pool_slot_whoever_holds_it(first_run):
    """The registry pool has one slot, held here as another machine's run would hold it: the
    run (any launch path: the pool is the instance's) waits, then registers once it is free."""
    import threading
    import time

    from dagster import DagsterInstance

    from insurance_pipeline.defs.jobs import REGISTRY_POOL

    with DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default(REGISTRY_POOL)
        assert storage.get_concurrency_info(REGISTRY_POOL).slot_count == 1
        claim = storage.claim_concurrency_slot(REGISTRY_POOL, "other-run", "registered_model")
        assert claim.is_claimed
        done = {}
        runner = threading.Thread(
            target=lambda: done.update(result=materialize(tiny_run_config(**FLOOR)))
        )
        runner.start()
        deadline = time.monotonic() + 120
        while not storage.get_concurrency_info(REGISTRY_POOL).pending_run_ids:
            assert time.monotonic() < deadline and runner.is_alive(), done
            time.sleep(0.5)
        time.sleep(2)
        assert runner.is_alive() and "result" not in done  # held at registration
        storage.free_concurrency_slots_for_run("other-run")
        runner.join(timeout=300)
    assert done["result"].success
    assert metadata_by_asset(done["result"])["registered_model"]["new_version"] is False


def test_the_large_data_methods_run_when_their_thresholds_are_lowered(first_run):
    """Each statistical step's many-rows method, on this small table with its threshold
    lowered in config: what ran and on how many rows is in the step's metadata."""
    config = tiny_run_config(
        **FLOOR,
        insurance_data_profile={"max_rows": 500},
        tpot_pipeline={"max_search_rows": 500},
        prediction_interval={"cross_conformal_max_rows": 500},
        champion_comparison={"cross_validated_max_rows": 500},
    )
    result = materialize(config)
    assert result.success
    meta = metadata_by_asset(result)
    train_rows = meta["train_test_split"]["train_rows"]
    assert meta["insurance_data_profile"]["profiled_rows"] == 500
    assert meta["insurance_data_profile"]["rows"] > 500
    search_meta = meta["tpot_pipeline"]
    assert (search_meta["rows_searched"], search_meta["rows_fitted"]) == (500, train_rows)
    assert search_meta["search_method"].startswith("stratified sample")
    assert search_meta["candidates_timed_out"] == 0
    assert meta["prediction_interval"]["method"] == "split conformal"
    assert meta["prediction_interval"]["calibration_rows"] < train_rows
    comparison = meta["champion_comparison"]
    assert comparison["champion_version"] == 1 and comparison["method"] == "holdout"
    assert comparison["rows_compared"] == meta["train_test_split"]["test_rows"]
