"""Stage `deploy`: build, push and roll out one registered model version."""

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetKey,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
)
from pydantic import Field

from insurance_pipeline.core.gates.champion import check_not_replayed
from insurance_pipeline.core.gates.decision import VersionApproval
from insurance_pipeline.core.trust.keys import TrustError
from insurance_pipeline.defs._steps import versioned_asset
from insurance_pipeline.defs.jobs import DEPLOY_POOL
from insurance_pipeline.deploy.plan import (
    MODEL_DIR,
    DeployInputError,
    build_command,
    helm_values,
    image_tag,
    published_source,
    push_command,
    pushed_digest,
    render_chart,
    restricted_violations,
    source_revision,
    stage_build_context,
    upgrade_command,
    validate_inputs,
    validate_objects,
    write_values_file,
)
from insurance_pipeline.release import Release
from insurance_pipeline.resources import InsuranceDataResource, MlflowResource, TrustResource
from insurance_pipeline.resources.deploy import CommandRecord, DeployRunnerResource
from insurance_pipeline.resources.mlflow import DEPLOYED_ALIAS


class DeployConfig(Config):
    model_version: int = Field(
        description="Registered version of insurance_charges_model: the champion, as its "
        "signed record names it (roll back with `cli promote`)"
    )


DEPLOYMENT = AssetKey("deployment")


def deployed(instance) -> tuple[int | None, int | None]:
    """(version, champion record) of the latest successful `deployment` materialization in
    this instance: what this environment last rolled out (or recorded, in dry-run)."""
    event = instance.get_latest_materialization_event(DEPLOYMENT)
    if event is None or event.asset_materialization is None:
        return None, None
    metadata = event.asset_materialization.metadata
    found = [metadata.get(name) for name in ("model_version", "champion_record")]
    version, record = (int(v.value) if v is not None else None for v in found)
    return version, record


def approved(release: Release, instance, version: int) -> tuple[object, VersionApproval, int]:
    """The version, its verified approval (in production, under a policy no weaker than the
    environment's) and the champion record that names it; only the champion is deployed."""
    try:
        registered, approval = release.trusted(version)
        champion = release.champion()
        _, acted_on = deployed(instance)
        check_not_replayed(champion and champion.record, acted_on, "this environment's deploys")
    except TrustError as error:
        raise Failure(f"version {version} will not be deployed: {error}") from None
    if champion is None or champion.record.version != version:
        names = champion.record.describe() if champion else "no version"
        raise Failure(
            f"version {version} will not be deployed: the signed champion record names "
            f"{names}; make it champion first (`python -m insurance_pipeline.cli promote "
            f"--version {version} --reason ...`)"
        )
    return registered, approval, champion.record.sequence


@dataclass(frozen=True)
class Shipment:
    """One approved version on its way out: its pin, the key that signed it, its files."""

    version: int
    model_sha: str  # the manifest's sha256 (MODEL_SHA256): it pins model.npz
    trusted_key: str  # PEM: the pod checks the folder's signature under it
    workdir: Path  # the build context (every byte verified) and the values file

    def values(self, target, digest: str | None = None) -> dict:
        return helm_values(target, self.version, self.model_sha, digest, self.trusted_key)


def checked_chart(deployer: DeployRunnerResource, target, shipment: Shipment) -> list:
    """The chart rendered and validated with the real helm, before anything leaves here."""
    objects = render_chart(
        shipment.values(target),
        helm=deployer.helm(),
        release=target.release,
        values_files=target.values_files,
    )
    problems = validate_objects(objects)
    if problems:
        raise Failure("rendered chart is invalid: " + "; ".join(problems))
    loosened = restricted_violations(objects)
    if loosened:
        raise Failure(
            "rendered chart breaks the restricted Pod Security profile: " + "; ".join(loosened)
        )
    return objects


def prepared(release: Release, registered, approval, workdir: Path) -> Shipment:
    """The build context holds exactly this version's serving folder, every byte verified,
    and the key its signature verified under."""
    version = int(registered.version)
    try:
        folder = release.fetch_served(
            registered, approval, stage_build_context(workdir / "context")
        )
        key = release.signing_key_pem(folder, f"version {version}")
    except TrustError as error:
        raise Failure(f"deploy of version {version} refused: {error}") from None
    (workdir / "pushed.digest").unlink(missing_ok=True)
    return Shipment(version, release.served_digest(approval), key, workdir)


@dataclass
class CommandLog:
    """Runs the deploy's commands in order; the first failure stops the deploy with every
    command so far (and its output) in the failure's metadata."""

    context: AssetExecutionContext
    deployer: DeployRunnerResource
    version: int
    metadata: dict
    records: list[CommandRecord] = field(default_factory=list)

    def run(self, argv: list[str]) -> CommandRecord:
        record = self.deployer.run(argv)
        self.records.append(record)
        self.context.log.info(
            f"{'ran' if record.executed else 'recorded'}: {' '.join(argv)}"
            + (f" -> exit {record.exit_code}" if record.executed else "")
        )
        self.metadata["commands"] = MetadataValue.json([r.as_dict() for r in self.records])
        if not record.ok:
            raise Failure(
                description=f"deploy of version {self.version} failed: `{' '.join(argv[:3])} …` "
                f"exited {record.exit_code}: {record.output_tail[-1500:]}",
                metadata=self.metadata,
            )
        return record


def read_digest(push: CommandRecord, target, digest_file, version: int, metadata: dict):
    """The pushed image's digest (None when the push was only recorded, in dry-run)."""
    if not push.executed:
        return None
    try:
        digest = pushed_digest(target.builder, digest_file, push.output_tail)
    except DeployInputError as error:
        raise Failure(f"push of version {version} gave no usable digest: {error}") from error
    metadata |= {"digest": digest, "image_reference": f"{target.repository}@{digest}"}
    return digest


def record_outcome(mode: str, mlflow: MlflowResource, version: int, metadata: dict) -> None:
    if mode == "execute":
        mlflow.set_alias(DEPLOYED_ALIAS, version)  # what the cluster serves, beside `champion`
        metadata["status"] = "deployed"
        metadata["alias"] = DEPLOYED_ALIAS
    else:
        # Recorded as dry-run-deployed so the sensor does not ask again for this version;
        # only a real rollout moves `deployed`.
        metadata["status"] = "dry-run-deployed"
        metadata["alias"] = "not moved (dry-run: nothing was rolled out)"


def ship(commands: CommandLog, deployer, target, shipment: Shipment) -> None:
    """Build, push, read the digest back, roll out by digest; stop at the first failure."""
    workdir, version = shipment.workdir, shipment.version
    model_dir, digest_file = workdir / "context" / MODEL_DIR, workdir / "pushed.digest"
    binary = deployer.builder_binary()
    commands.run(
        build_command(
            target,
            version=version,
            model_sha256=shipment.model_sha,
            context_dir=model_dir.parent,
            binary=binary,
            created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            revision=source_revision(),
            source=published_source(),
        )
    )
    push = commands.run(
        push_command(target, version=version, digest_file=digest_file, binary=binary)
    )
    digest = read_digest(push, target, digest_file, version, commands.metadata)
    values = shipment.values(target, digest)
    commands.metadata["helm_values"] = MetadataValue.json(values)
    commands.run(
        upgrade_command(target, write_values_file(values, workdir / "values.yaml"), deployer.helm())
    )


@versioned_asset(
    deps=["registered_model"],  # by key: this module's assets are the deploy group
    pool=DEPLOY_POOL,  # never two rollouts at once, however they were launched
    description="Image build + push (by digest) + helm upgrade of one validated model version.",
)
def deployment(
    context: AssetExecutionContext,
    config: DeployConfig,
    mlflow: MlflowResource,
    deployer: DeployRunnerResource,
    trust: TrustResource,
    data: InsuranceDataResource,
) -> MaterializeResult:
    version = config.model_version
    release = Release.of(mlflow, trust)
    registered, approval, sequence = approved(release, context.instance, version)
    target = deployer.target()
    try:
        validate_inputs(target, version, release.served_digest(approval))
    except DeployInputError as error:
        raise Failure(f"deploy of version {version} refused: {error}") from error
    shipment = prepared(release, registered, approval, data.workdir("images", f"v{version}"))
    objects = checked_chart(deployer, target, shipment)
    started = time.perf_counter()
    metadata = {
        "model_version": version,
        "champion_record": sequence,
        "mode": deployer.mode,
        "builder": target.builder,
        "image": f"{target.repository}:{image_tag(version)}",
        "rendered_objects": MetadataValue.json(
            [f"{o['kind']}/{o['metadata']['name']}" for o in objects]
        ),
    }
    commands = CommandLog(context, deployer, version, metadata)
    ship(commands, deployer, target, shipment)
    commands.metadata["seconds"] = round(time.perf_counter() - started, 3)
    record_outcome(deployer.mode, mlflow, version, commands.metadata)
    return MaterializeResult(metadata=commands.metadata)
