"""The artifact is pinned by sha256 and proves itself on its reference rows; a missing,
tampered or wrong file never becomes ready."""

import io
import json
import shutil

import httpx
import numpy as np
import pytest

from insurance_pipeline.compiled.artifact import (
    MANIFEST_FILE,
    NPZ_FILE,
    ArtifactError,
    load_artifact,
    manifest_digest,
)
from insurance_pipeline.domain.hashing import file_sha256
from insurance_pipeline.domain.schema import FEATURE_COLUMNS, MODEL_NAME
from insurance_pipeline.serving.schemas import EXAMPLE_INPUT
from insurance_pipeline.serving.state import INITIALIZATION_FAILED
from insurance_pipeline_tests.helpers import start_service, stop

pytestmark = pytest.mark.pure

VALID = EXAMPLE_INPUT


def copy_of(artifact_dir, tmp_path):
    target = tmp_path / "artifact"
    shutil.copytree(artifact_dir, target)
    return target


def rewrite_arrays(folder, change) -> None:
    """Change the stored arrays and pin the new file in the manifest (a consistent forgery)."""
    with np.load(folder / NPZ_FILE, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    change(arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (folder / NPZ_FILE).write_bytes(buffer.getvalue())
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest["sha256"] = file_sha256(folder / NPZ_FILE)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))


def test_loaded_model_equals_the_trained_pipeline_on_every_row(
    artifact_dir, trained_pipeline, insurance_frame
):
    loaded = load_artifact(artifact_dir)
    assert loaded.manifest.version == 3 and loaded.manifest.reference_rows > 1000
    frame = insurance_frame[list(FEATURE_COLUMNS)]
    rows = [{**r, "smoker": r["smoker"] == "yes"} for r in frame.to_dict("records")]
    np.testing.assert_allclose(
        loaded.model.predict(rows).charges, trained_pipeline.predict(frame), rtol=0, atol=1e-6
    )
    one = [loaded.model.predict_row(r)[0] for r in rows[:50]]
    np.testing.assert_allclose(one, loaded.model.predict(rows[:50]).charges, rtol=0, atol=1e-9)


def test_load_checks_the_sha256(artifact_dir, tmp_path):
    folder = copy_of(artifact_dir, tmp_path)
    with open(folder / NPZ_FILE, "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ArtifactError, match="sha256 .* but the manifest pins"):
        load_artifact(folder)
    (folder / NPZ_FILE).unlink()
    with pytest.raises(ArtifactError, match="model file not found"):
        load_artifact(folder)
    (folder / MANIFEST_FILE).unlink()
    with pytest.raises(ArtifactError, match="manifest not found"):
        load_artifact(folder)


def test_a_model_that_misses_its_reference_rows_is_refused(artifact_dir, tmp_path):
    folder = copy_of(artifact_dir, tmp_path)

    def nudge_one_leaf(arrays):
        values = arrays["forest0_value"].copy()
        leaf = int(np.flatnonzero(values)[0])
        values[leaf] += 1.0
        arrays["forest0_value"] = values

    rewrite_arrays(folder, nudge_one_leaf)
    with pytest.raises(ArtifactError, match="fails its reference check: .* reference rows differ"):
        load_artifact(folder)


def test_an_interval_that_misses_its_reference_bounds_is_refused(artifact_dir, tmp_path):
    folder = copy_of(artifact_dir, tmp_path)

    def widen(arrays):
        arrays["interval_quantile"] = arrays["interval_quantile"] * (1 + 1e-6)

    rewrite_arrays(folder, widen)
    with pytest.raises(ArtifactError, match=r"reference rows differ by more than 1e-06 \(lower\)"):
        load_artifact(folder)


def test_pickled_objects_in_the_file_are_refused(artifact_dir, tmp_path):
    folder = copy_of(artifact_dir, tmp_path)
    rewrite_arrays(folder, lambda a: a.update(offset=np.array([object()], dtype=object)))
    with pytest.raises(ArtifactError, match="could not be loaded: .*pickle"):
        load_artifact(folder)


def test_a_format_1_artifact_gets_a_clear_error(artifact_dir, tmp_path):
    folder = copy_of(artifact_dir, tmp_path)
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest.pop("format")
    manifest["model_file"] = "model.joblib"
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="format 1, this service reads format 2"):
        load_artifact(folder)


def test_a_manifest_model_file_outside_its_folder_is_refused(artifact_dir, tmp_path):
    artifact = copy_of(artifact_dir, tmp_path)
    shutil.copy(artifact / NPZ_FILE, tmp_path / "elsewhere.npz")  # same sha256, wrong place
    manifest = json.loads((artifact / MANIFEST_FILE).read_text())
    manifest["model_file"] = "../elsewhere.npz"
    (artifact / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="points outside"):
        load_artifact(artifact)


@pytest.mark.parametrize("damage", ["tamper", "delete"])
@pytest.mark.servers  # starts the service process
def test_a_damaged_artifact_keeps_the_service_up_but_not_ready(artifact_dir, tmp_path, damage):
    folder = copy_of(artifact_dir, tmp_path)
    if damage == "tamper":
        with open(folder / NPZ_FILE, "r+b") as handle:
            handle.seek(100)
            handle.write(b"\x00\x01\x02")
    else:
        (folder / NPZ_FILE).unlink()
    service = start_service(folder, tmp_path / "service.log", wait_ready=False)
    try:
        assert httpx.get(service.url + "/api/health/ready").status_code == 503
        assert httpx.get(service.url + "/api/models").json() == {"models": []}
        refusals = service.logs_until(
            lambda rs: any(r["message"] == INITIALIZATION_FAILED for r in rs)
        )
        refusals = [r for r in refusals if r["message"] == INITIALIZATION_FAILED]
        assert refusals and refusals[0]["levelname"] == "ERROR"
        expected = "but the manifest pins" if damage == "tamper" else "model file not found"
        assert expected in refusals[0]["reason"]
        assert service.process.poll() is None  # still running
    finally:
        stop(service)


@pytest.mark.servers  # starts the service process
def test_model_sha256_mismatch_is_refused_over_http(artifact_dir, tmp_path):
    pinned = manifest_digest(artifact_dir)
    other = "0" * 64
    service = start_service(
        artifact_dir, tmp_path / "service.log", env={"MODEL_SHA256": other}, wait_ready=False
    )
    try:
        assert httpx.get(service.url + "/api/health/ready").status_code == 503
        refused = httpx.post(
            service.url + "/api/models/insurance_charges_model/prediction", json=VALID
        )
        assert refused.status_code == 503 and refused.json()["type"] == "ModelNotLoaded"
        # the client is told the problem; the hashes and the path are only in the log
        assert refused.json()["messages"] == ["model not loaded: artifact refused"]
        for secret in (pinned, other, str(artifact_dir)):
            assert secret not in refused.text
        errors = service.logs_until(lambda rs: any(r["levelname"] == "ERROR" for r in rs))
        errors = [r for r in errors if r["levelname"] == "ERROR"]
        assert any(pinned in r.get("reason", "") and other in r["reason"] for r in errors), errors
    finally:
        stop(service)
    # the matching hash is accepted
    service = start_service(artifact_dir, tmp_path / "ok.log", env={"MODEL_SHA256": pinned})
    stop(service)


@pytest.mark.servers  # starts the service process
def test_a_manifest_edited_under_the_pin_is_refused_over_http(artifact_dir, tmp_path):
    """Attack G: the served manifest's version and description edited while MODEL_SHA256 is
    set: the pin covers the manifest too, so the service refuses it (503) and logs both
    hashes."""
    folder = copy_of(artifact_dir, tmp_path)
    pinned = manifest_digest(folder)
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest.update(version=99, description="the best model ever")
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    forged = manifest_digest(folder)
    service = start_service(
        folder, tmp_path / "service.log", env={"MODEL_SHA256": pinned}, wait_ready=False
    )
    try:
        assert httpx.get(service.url + "/api/health/ready").status_code == 503
        assert httpx.get(service.url + "/api/models").json() == {"models": []}
        errors = service.logs_until(lambda rs: any(r["levelname"] == "ERROR" for r in rs))
        refused = [r.get("reason", "") for r in errors if r["levelname"] == "ERROR"]
        assert any(pinned in m and forged in m and "manifest" in m for m in refused), refused
    finally:
        stop(service)


@pytest.fixture(scope="module")
def signed(artifact_dir, tmp_path_factory):
    """A copy of the artifact signed with OpenSSF model signing by the session's key, and
    that key's public half."""
    from insurance_pipeline.core.trust.files import sign_folder
    from insurance_pipeline.core.trust.keys import Signer
    from insurance_pipeline_tests.helpers import SESSION_KEY

    root = tmp_path_factory.mktemp("signed")
    folder = root / "artifact"
    shutil.copytree(artifact_dir, folder)
    signer = Signer(SESSION_KEY)
    sign_folder(folder, signer)
    public = root / "trusted-key.pem"
    public.write_bytes(signer.public_pem())
    return folder, public


def test_a_signed_folder_loads_under_its_key(signed):
    from insurance_pipeline.serving.state import load_model

    folder, public = signed
    state = load_model(folder, manifest_digest(folder), trusted_key=public, production=True)
    assert state.ready, state.error


def test_production_refuses_an_unsigned_or_otherwise_signed_folder(signed, tmp_path):
    from insurance_pipeline.core.trust.keys import Signer, generate_key
    from insurance_pipeline.serving.state import load_model

    folder, public = signed
    pin = manifest_digest(folder)
    unsigned = copy_of(folder, tmp_path)
    (unsigned / "model.sig").unlink()
    state = load_model(unsigned, pin, trusted_key=public, production=True)
    assert not state.ready and "model.sig is missing: an unsigned folder" in state.error
    stranger = tmp_path / "stranger.pub"
    stranger.write_bytes(Signer(generate_key(tmp_path / "stranger.pem")).public_pem())
    state = load_model(folder, pin, trusted_key=stranger, production=True)
    assert not state.ready and "the OpenSSF signature does not verify" in state.error
    state = load_model(folder, pin, trusted_key=None, production=True)
    assert not state.ready and "MODEL_TRUSTED_KEY and MODEL_SHA256 are required" in state.error
    state = load_model(folder, None, trusted_key=public, production=True)
    assert not state.ready and "required" in state.error


def test_a_file_changed_after_signing_is_refused_even_when_re_pinned(signed, tmp_path):
    from insurance_pipeline.serving.state import load_model

    folder, public = signed
    forged = copy_of(folder, tmp_path)
    rewrite_arrays(forged, lambda a: a.update(interval_quantile=a["interval_quantile"] * 2))
    state = load_model(forged, manifest_digest(forged), trusted_key=public, production=True)
    assert not state.ready and "does not verify" in state.error


@pytest.mark.servers  # starts the service process
def test_the_service_process_checks_the_signature_in_production(signed, tmp_path):
    folder, public = signed
    env = {
        "INSURANCE_DEPLOYMENT": "production",
        "MODEL_TRUSTED_KEY": str(public),
        "MODEL_SHA256": manifest_digest(folder),
    }
    running = start_service(folder, tmp_path / "service.log", env=env)
    try:
        assert (
            httpx.post(
                running.url + "/api/models/insurance_charges_model/prediction", json=VALID
            ).status_code
            == 200
        )
    finally:
        stop(running)


def test_the_forests_run_natively_where_they_can_and_the_log_says_which(artifact_dir, caplog):
    from insurance_pipeline.compiled import native
    from insurance_pipeline.serving.state import NativeChoice, load_model

    caplog.set_level("INFO")
    fast = load_model(artifact_dir)
    plain = load_model(artifact_dir, native=NativeChoice(enabled=False))
    assert fast.ready and plain.ready
    forests = [r.forests for r in caplog.records if r.getMessage() == f"Loaded {MODEL_NAME} model."]
    if native.compiler() is not None:
        assert forests[0].startswith("native (") and "NativeForest" in repr(
            fast.model.model.regressor.forests
        )
    assert forests[1] == "numpy (SERVING_NATIVE=false)"
    rows = [dict(VALID, age=age) for age in range(18, 66)]
    np.testing.assert_allclose(
        [p.charges for p in fast.model.predictions(rows)],
        [p.charges for p in plain.model.predictions(rows)],
        rtol=0,
        atol=0.01,  # both rounded to cents from prices within 1e-6 of each other
    )


def test_an_edited_model_source_is_refused_even_with_the_reference_rows(artifact_dir, tmp_path):
    from insurance_pipeline.compiled.native import SOURCE_FILE

    folder = copy_of(artifact_dir, tmp_path)
    source = folder / SOURCE_FILE
    source.write_text(source.read_text().replace("#define LANES 8", "#define LANES 4"))
    with pytest.raises(ArtifactError, match="model source .* has sha256 .* the manifest pins"):
        load_artifact(folder)
