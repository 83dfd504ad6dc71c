"""The release: the one owner of approving a version, the champion record, the verified
fetch of what is served or unpickled, and the policy a deployer holds approvals to.

Every stage and the CLI ask it the same questions, and none of them imports another stage:

- **Approving** (`register`): a model whose gates all passed (`core.gates.decision`) gets a
  registered version, its serving folder (written, signed with OpenSSF model signing, logged)
  and a signed approval binding its name, number, run, model key, data, policy, verdicts and
  the sha256 of every file that will be served or unpickled.
- **The champion** (`champion`, `make_champion`, `promote`): the version named by the latest
  valid signed champion record (`core.gates.champion`); the `champion` alias only mirrors it,
  and an alias that disagrees (moved, or deleted) is refused as tampering, naming both.
- **Trusting a version** (`approval`): its approval verifies under a trusted key, for this
  very version and run, with every gate passed, and, in `production`, under a policy no
  weaker than the environment's (INSURANCE_GATE_*; never run config).
- **Fetching** (`fetch_served`, `load_model`): files are used only once they hash to the
  digests the approval signed (and the folder's OpenSSF signature verifies); a pickle is
  never loaded before that.

The trust it relies on (keys, policy, registry) comes from the operator's environment only.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from insurance_pipeline.compiled.artifact import (
    ARTIFACT_FILES,
    MANIFEST_FILE,
    REQUIRED_FILES,
    SIGNATURE_FILE,
    write_artifact,
)
from insurance_pipeline.core.data.split import Split
from insurance_pipeline.core.export import ServingExport
from insurance_pipeline.core.gates.champion import (
    ChampionError,
    ChampionRecord,
    check_alias,
    next_record,
    record_tag,
    scan_records,
)
from insurance_pipeline.core.gates.decision import (
    Decision,
    VersionApproval,
    approval_statement,
    version_approval,
)
from insurance_pipeline.core.gates.policy import ChampionRef, GatePolicy
from insurance_pipeline.core.modeling.challenger import ChampionComparison, compare
from insurance_pipeline.core.modeling.model import TrainedModel
from insurance_pipeline.core.redact import redact
from insurance_pipeline.core.trust.files import (
    check_files,
    sha256_of,
    sign_folder,
    signed_sha256,
    verify_folder,
)
from insurance_pipeline.core.trust.keys import TrustError
from insurance_pipeline.resources.mlflow import (
    APPROVAL_TAG,
    APPROVED_PARAMETERS,
    CHAMPION_ALIAS,
    DATA_SHA_TAG,
    PICKLE_ARTIFACT,
    PICKLE_TAG,
    SERVING_ARTIFACT_PATH,
    SERVING_SHA_TAG,
    MlflowResource,
    pickle_subject,
)
from insurance_pipeline.resources.trust import TrustResource

# The files an approval signs, by their path in the model's MLflow run.
SERVED_PATHS = {name: f"{SERVING_ARTIFACT_PATH}/{name}" for name in ARTIFACT_FILES}
REGISTERED = "registered: every gate passed"


class ReleaseError(TrustError):
    """A version cannot be approved, trusted, promoted or fetched; the message says why."""


@dataclass(frozen=True)
class Champion:
    """The champion, as the latest valid signed record names it, and its registered
    version (MLflow's `ModelVersion`)."""

    record: ChampionRecord
    version: Any

    @property
    def ref(self) -> ChampionRef:
        return ChampionRef(version=self.record.version, model_key=self.record.model_key)


@dataclass(frozen=True)
class Candidate:
    """A model registration approved (`decision.approved`) and what it ships."""

    model: TrainedModel
    decision: Decision
    export: ServingExport
    policy: GatePolicy
    workdir: Path  # where its serving folder is written before MLflow has it


@dataclass(frozen=True)
class Registered:
    version: int
    created: bool  # a new version (False: the model was registered before)
    previous_champion: int | None
    served_sha256: str  # the pin for the service and the image (MODEL_SHA256)
    record: ChampionRecord


@dataclass(frozen=True)
class Release:
    mlflow: MlflowResource
    trust: TrustResource
    # What every approval is held to (in production, the environment's policy), or None.
    required_policy: GatePolicy | None = None

    @classmethod
    def of(cls, mlflow: MlflowResource, trust: TrustResource) -> Release:
        """For this environment: in `production` every approval is held to INSURANCE_GATE_*."""
        from insurance_pipeline.settings import required_policy

        return cls(mlflow, trust, required_policy())

    # --- trusting a version -----------------------------------------------------------------
    def approval(self, version, policy: GatePolicy | None = None) -> VersionApproval:
        """The version's signed approval, re-checked (see the module docstring); `policy`
        replaces the environment's where a caller holds it to another."""
        return version_approval(
            statement=version.tags.get(APPROVAL_TAG),
            verifier=self.trust.verifier(),
            model_name=self.mlflow.model_name,
            version=version.version,
            run_id=version.run_id,
            required_policy=policy or self.required_policy,
        )

    def trusted(self, version_number: int) -> tuple[Any, VersionApproval]:
        """The registered version and its approval, or `ReleaseError` naming why not."""
        try:
            version = self.mlflow.get_version(version_number)
        except LookupError as error:
            raise ReleaseError(str(error)) from None
        approval = self.approval(version)
        if not approval.approved:
            raise ReleaseError(f"version {version_number} is not deployable: {approval.summary()}")
        return version, approval

    # --- the champion -----------------------------------------------------------------------
    def champion(self) -> Champion | None:
        """The champion the latest valid record names (None: no record and no alias yet).
        `ChampionError` when the alias disagrees with the record; registry errors propagate
        (they are not "no champion")."""
        tags, aliases = self.mlflow.registered_state()
        scan = scan_records(tags, self.mlflow.model_name, self.trust.verifier())
        check_alias(scan.latest, aliases.get(CHAMPION_ALIAS), CHAMPION_ALIAS)
        if scan.latest is None:
            return None
        return Champion(scan.latest, self.mlflow.get_version(scan.latest.version))

    def champion_to_beat(self, model_key: str) -> ChampionRef | None:
        """The champion a model must be compared with: None when there is none, or when this
        model already is the champion."""
        try:
            champion = self.champion()
        except ChampionError:
            raise  # tampering: named as such, not as a registry failure
        except Exception as error:  # noqa: BLE001 - any registry failure, named and redacted
            raise ReleaseError(
                redact(
                    f"cannot tell which model is {CHAMPION_ALIAS}: the registry "
                    f"{self.mlflow.where} failed with {type(error).__name__}: {error}"
                )
            ) from None
        if champion is None or champion.record.model_key == model_key:
            return None
        return champion.ref

    def make_champion(self, version, approval: VersionApproval, reason: str) -> ChampionRecord:
        """Sign the record that makes `version` (whose `approval` verified) champion after
        the current one, store it, then move the alias to it."""
        tags, _ = self.mlflow.registered_state()
        latest = scan_records(tags, self.mlflow.model_name, self.trust.verifier()).latest
        record = next_record(
            latest,
            model_name=self.mlflow.model_name,
            version=int(version.version),
            model_key=approval.model_key,
            approval_statement=version.tags[APPROVAL_TAG],
            reason=reason,
        )
        self.mlflow.set_registered_tag(
            record_tag(record.sequence), record.sign(self.trust.signer())
        )
        self.mlflow.set_alias(CHAMPION_ALIAS, record.version)
        return record

    def promote(self, version_number: int, reason: str) -> ChampionRecord:
        """Make a registered version champion by hand (a rollback, say): only one whose
        approval verifies under the current policy, and only with a reason."""
        if not reason.strip():
            raise ReleaseError(
                "promote needs a reason (--reason TEXT): it is signed into the record"
            )
        version, approval = self.trusted(version_number)
        return self.make_champion(version, approval, f"promoted: {reason}")

    # --- approving --------------------------------------------------------------------------
    def signed_pickle(self, model_key: str, run_id: str) -> str:
        """The sha256 of the model's pickle, as the statement signed when it was logged says."""
        statement = self.mlflow.run_tag(run_id, PICKLE_TAG)
        try:
            return signed_sha256(
                statement, pickle_subject(model_key, run_id), self.trust.verifier()
            )
        except TrustError as error:
            raise ReleaseError(
                f"model {model_key} was not registered: its logged pickle has no trusted "
                f"statement of its sha256 ({error})"
            ) from None

    def register(self, candidate: Candidate) -> Registered:
        """Register an approved model, publish and approve its version (kept when a trusted
        approval for the same parameters is there), and make it champion."""
        model = candidate.model
        if not candidate.decision.approved:
            raise ReleaseError(
                f"model {model.model_key} was not registered: "
                + candidate.decision.approval.summary()
            )
        run_id = self.mlflow.run_for(model.model_key)
        self.signed_pickle(model.model_key, run_id)  # before the registry changes
        version, created = self.mlflow.register(
            run_id, model.model_key, tags={DATA_SHA_TAG: model.data_version}
        )
        self._approve(candidate, version, run_id)
        self.mlflow.mark_release(model.model_key, int(version.version))
        version = self.mlflow.get_version(int(version.version))  # with its approval tag
        served = self.approval(version, candidate.policy)
        if not served.approved:
            raise ReleaseError(f"version {version.version}: {served.summary()}")
        before = self.champion()
        record = (
            before.record
            if before is not None and before.record.version == int(version.version)
            else self.make_champion(version, served, REGISTERED)
        )
        return Registered(
            version=int(version.version),
            created=created,
            previous_champion=before.record.version if before else None,
            served_sha256=served.files[SERVED_PATHS[MANIFEST_FILE]],
            record=record,
        )

    def _approve(self, candidate: Candidate, version, run_id: str) -> None:
        """Keep the version's approval when it is trusted and for the same parameters; else
        publish the serving folder again and sign a new one."""
        found = self.approval(version, candidate.policy)
        if found.approved and found.parameters == candidate.decision.required:
            return
        model = candidate.model
        files = {PICKLE_ARTIFACT: self.signed_pickle(model.model_key, run_id)}
        files |= self._publish_serving_folder(candidate, int(version.version), run_id)
        statement = approval_statement(
            candidate.decision,
            model_name=self.mlflow.model_name,
            version=int(version.version),
            run_id=run_id,
            model_key=model.model_key,
            data_version=model.data_version,
            policy=candidate.policy,
            files=files,
            signer=self.trust.signer(),
        )
        self.mlflow.set_version_tag(version.version, APPROVAL_TAG, statement)
        readable = json.dumps(candidate.decision.required, sort_keys=True)
        self.mlflow.set_version_tag(version.version, APPROVED_PARAMETERS, readable)
        self.mlflow.set_version_tag(
            version.version, SERVING_SHA_TAG, files[SERVED_PATHS[MANIFEST_FILE]]
        )

    def _publish_serving_folder(self, candidate: Candidate, version: int, run_id: str) -> dict:
        """Write the version's serving folder, sign it (OpenSSF model signing) and log it to
        the model's run; the sha256 of each file the service reads, by run path."""
        folder = candidate.workdir / f"v{version}"
        write_artifact(
            candidate.export.model,
            candidate.export.references,
            folder,
            model_name=self.mlflow.model_name,
            version=version,
            library_versions=candidate.model.library_versions,
            model_key=candidate.model.model_key,
        )
        sign_folder(folder, self.trust.signer())
        for name in (*ARTIFACT_FILES, SIGNATURE_FILE):
            self.mlflow.log_artifact(run_id, folder / name, artifact_path=SERVING_ARTIFACT_PATH)
        return {path: sha256_of(folder / name) for name, path in SERVED_PATHS.items()}

    # --- fetching ---------------------------------------------------------------------------
    @staticmethod
    def served_digest(approval: VersionApproval) -> str:
        """The version's pin for the service and the image (MODEL_SHA256): its manifest's
        sha256, as the approval signed it."""
        return approval.files[SERVED_PATHS[MANIFEST_FILE]]

    def fetch_served(self, version, approval: VersionApproval, dest: Path) -> Path:
        """The version's serving folder in `dest`, once every file verified (staged beside
        `dest` first: a refused download leaves `dest` as it was)."""
        what = f"version {version.version}"
        if not approval.approved:
            raise ReleaseError(f"{what} is not deployable: {approval.summary()}")
        dest.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".download-", dir=dest.parent))
        try:
            folder = self.mlflow.download(version.run_id, SERVING_ARTIFACT_PATH, staging)
            # every file the approval signed (a version from before model.c has none), and
            # the files every version has, signed or not
            expected = {
                name: approval.files.get(path, "unsigned")
                for name, path in SERVED_PATHS.items()
                if name in REQUIRED_FILES or path in approval.files
            }
            check_files(folder, expected, what)
            verify_folder(folder, self.trust.verifier(), what)
            for name in (*expected, SIGNATURE_FILE):
                (folder / name).replace(dest / name)
            for stale in set(ARTIFACT_FILES) - set(expected):
                (dest / stale).unlink(missing_ok=True)  # a file of another version
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return dest

    def signing_key_pem(self, folder: Path, what: str) -> str:
        """The trusted public key (PEM) the folder's signature verifies under: the key the
        service is given to check it again at start."""
        return verify_folder(folder, self.trust.verifier(), what).decode()

    def load_model(self, version, approval: VersionApproval):
        """The version's trained pipeline (and its training rows), unpickled only once its
        bytes hash to the digest the approval signed."""
        if not approval.approved:
            raise ReleaseError(f"version {version.version} is not trusted: {approval.summary()}")
        return self.mlflow.load_pickle(
            version.run_id,
            approval.files.get(PICKLE_ARTIFACT, "unsigned"),
            f"version {version.version}",
        )

    def compare_with_champion(
        self, model: TrainedModel, split: Split, champion: ChampionRef | None, max_rows: int
    ) -> ChampionComparison:
        """The challenger/champion comparison (`core.modeling.challenger.compare`), the
        champion's pipeline loaded only once its approval and pickle verified."""
        pipeline = None
        if champion is not None:
            version = self.mlflow.get_version(champion.version)
            approval = self.approval(version)
            try:
                pipeline, _ = self.load_model(version, approval)
            except (TrustError, ValueError) as error:
                raise ReleaseError(
                    f"champion v{champion.version} cannot be compared with: {error}"
                ) from None
        return compare(model, split, champion, pipeline, max_rows)
