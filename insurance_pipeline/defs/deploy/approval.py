"""What a deployer believes about a registered version, and the bytes it ships.

The deploy sensor, the `deployment` asset, the image build and `export-champion` ask the same
questions: does the version's approval verify under a trusted key, for this very version and
run, with every gate passed (and, in production, under a policy no weaker than this
deployment's)? Do the files fetched from MLflow hash to the digests that approval signed,
and does the folder's OpenSSF signature verify? Only then is anything built, copied or
loaded; a failure names the version and the file and changes nothing.
"""

import shutil
import tempfile
from pathlib import Path

from insurance_pipeline.core.gates.decision import VersionApproval, version_approval
from insurance_pipeline.core.gates.policy import GatePolicy
from insurance_pipeline.core.trust.files import check_files, verify_folder
from insurance_pipeline.core.trust.keys import TrustError
from insurance_pipeline.resources import MlflowResource, TrustResource
from insurance_pipeline.resources.mlflow import APPROVAL_TAG, SERVING_ARTIFACT_PATH
from insurance_pipeline.serving.artifact import ARTIFACT_FILES, MANIFEST_FILE, SIGNATURE_FILE

# The files an approval signs, by their path in the model's MLflow run.
PICKLE_PATH = "model/model.pkl"
SERVED_PATHS = {name: f"{SERVING_ARTIFACT_PATH}/{name}" for name in ARTIFACT_FILES}


def verified_approval(
    mlflow: MlflowResource,
    version,
    trust: TrustResource,
    required_policy: GatePolicy | None = None,
) -> VersionApproval:
    return version_approval(
        statement=version.tags.get(APPROVAL_TAG),
        verifier=trust.verifier(),
        model_name=mlflow.model_name,
        version=version.version,
        run_id=version.run_id,
        required_policy=required_policy,
    )


def served_digest(approval: VersionApproval) -> str:
    """The version's pin for the service and the image (MODEL_SHA256): its manifest's
    sha256, as the approval signed it."""
    return approval.files[SERVED_PATHS[MANIFEST_FILE]]


def fetch_serving_artifact(
    mlflow: MlflowResource,
    version,
    approval: VersionApproval,
    trust: TrustResource,
    dest: Path,
) -> Path:
    """The version's serving folder in `dest`, once every file verified (staged beside
    `dest` first: a refused download leaves `dest` as it was)."""
    what = f"version {version.version}"
    if not approval.approved:
        raise TrustError(f"{what} is not deployable: {approval.summary()}")
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=dest.parent))
    try:
        folder = mlflow.download(version.run_id, SERVING_ARTIFACT_PATH, staging)
        expected = {
            name: approval.files.get(path, "unsigned") for name, path in SERVED_PATHS.items()
        }
        check_files(folder, expected, what)
        verify_folder(folder, trust.verifier(), what)
        for name in (*ARTIFACT_FILES, SIGNATURE_FILE):
            (folder / name).replace(dest / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def load_approved_model(mlflow: MlflowResource, version, approval: VersionApproval):
    """The version's trained pipeline (and its training rows), unpickled only once its bytes
    hash to the digest the approval signed."""
    if not approval.approved:
        raise TrustError(f"version {version.version} is not trusted: {approval.summary()}")
    return mlflow.load_pickle(
        version.run_id, approval.files.get(PICKLE_PATH, "unsigned"), f"version {version.version}"
    )
