"""Stage `deploy`: build, push and roll out one registered model version."""

import datetime as dt
import time
from dataclasses import dataclass, field

from dagster import (
    AssetExecutionContext,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
)
from pydantic import Field

from insurance_pipeline.core.gates.decision import VersionApproval
from insurance_pipeline.core.trust.keys import TrustError
from insurance_pipeline.defs._steps import versioned_asset
from insurance_pipeline.defs.deploy.approval import (
    fetch_serving_artifact,
    served_digest,
    verified_approval,
)
from insurance_pipeline.defs.jobs import DEPLOY_POOL
from insurance_pipeline.deploy.plan import (
    MODEL_DIR,
    DeployInputError,
    build_command,
    helm_values,
    image_tag,
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
from insurance_pipeline.resources import (
    GatesResource,
    InsuranceDataResource,
    MlflowResource,
    TrustResource,
)
from insurance_pipeline.resources.deploy import CommandRecord, DeployRunnerResource
from insurance_pipeline.resources.mlflow import DEPLOYED_ALIAS


class DeployConfig(Config):
    model_version: int = Field(description="Registered version of insurance_charges_model")


def approved(
    mlflow: MlflowResource, deployer: DeployRunnerResource, gates, trust, version: int
) -> tuple[object, VersionApproval]:
    """The version and its verified approval (in production, under a policy no weaker than
    this deployment's), as the sensor checks them."""
    try:
        registered = mlflow.get_version(version)
    except LookupError as error:
        raise Failure(f"cannot deploy: {error}") from error
    policy = gates.policy() if deployer.enforces_policy else None
    decision = verified_approval(mlflow, registered, trust, required_policy=policy)
    if not decision.approved:
        raise Failure(f"version {version} will not be deployed: {decision.summary()}")
    return registered, decision


def checked_chart(deployer: DeployRunnerResource, target, version: int, model_sha: str) -> list:
    """The chart rendered and validated with the real helm, before anything leaves here."""
    objects = render_chart(
        helm_values(target, version, model_sha),
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


def ship(commands: CommandLog, deployer, target, version: int, model_sha: str, workdir) -> None:
    """Build, push, read the digest back, roll out by digest; stop at the first failure."""
    model_dir, digest_file = workdir / "context" / MODEL_DIR, workdir / "pushed.digest"
    binary = deployer.builder_binary()
    commands.run(
        build_command(
            target,
            version=version,
            model_sha256=model_sha,
            context_dir=model_dir.parent,
            binary=binary,
            created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            revision=source_revision(),
            source=source_revision(ask=("remote", "get-url", "origin"), default=""),
        )
    )
    push = commands.run(
        push_command(target, version=version, digest_file=digest_file, binary=binary)
    )
    digest = read_digest(push, target, digest_file, version, commands.metadata)
    values = helm_values(target, version, model_sha, digest)
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
    gates: GatesResource,
    trust: TrustResource,
    data: InsuranceDataResource,
) -> MaterializeResult:
    version = config.model_version
    registered, approval = approved(mlflow, deployer, gates, trust, version)
    model_sha = served_digest(approval)  # the manifest's sha256: it pins model.npz
    target = deployer.target()
    try:
        validate_inputs(target, version, model_sha)
    except DeployInputError as error:
        raise Failure(f"deploy of version {version} refused: {error}") from error
    objects = checked_chart(deployer, target, version, model_sha)
    # The build context holds exactly this version's artifact, every byte verified.
    workdir = data.workdir("images", f"v{version}")
    try:
        fetch_serving_artifact(
            mlflow, registered, approval, trust, stage_build_context(workdir / "context")
        )
    except TrustError as error:
        raise Failure(f"deploy of version {version} refused: {error}") from None
    (workdir / "pushed.digest").unlink(missing_ok=True)
    started = time.perf_counter()
    metadata = {
        "model_version": version,
        "mode": deployer.mode,
        "builder": target.builder,
        "image": f"{target.repository}:{image_tag(version)}",
        "rendered_objects": MetadataValue.json(
            [f"{o['kind']}/{o['metadata']['name']}" for o in objects]
        ),
    }
    commands = CommandLog(context, deployer, version, metadata)
    ship(commands, deployer, target, version, model_sha, workdir)
    commands.metadata["seconds"] = round(time.perf_counter() - started, 3)
    record_outcome(deployer.mode, mlflow, version, commands.metadata)
    return MaterializeResult(metadata=commands.metadata)
