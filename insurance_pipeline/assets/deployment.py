"""The deployment asset: build, push and roll out one registered model version."""

import time

from dagster import (
    AssetExecutionContext,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
)
from pydantic import Field

from insurance_pipeline.assets._cached import versioned_asset
from insurance_pipeline.assets.registry import registered_model
from insurance_pipeline.deploy.plan import (
    DeployInputError,
    build_command,
    helm_values,
    image_tag,
    push_command,
    pushed_digest,
    render_chart,
    stage_build_context,
    upgrade_command,
    validate_inputs,
    validate_objects,
    write_values_file,
)
from insurance_pipeline.resources import InsuranceDataResource, MlflowResource
from insurance_pipeline.resources.deploy import CommandRecord, DeployRunnerResource
from insurance_pipeline.resources.mlflow import SERVING_SHA_TAG

DEPLOYED = "deployed"


class DeployConfig(Config):
    model_version: int = Field(description="Registered version of insurance_charges_model")


def approved_sha(mlflow: MlflowResource, version: int) -> str:
    """The version's serving sha256, once its verdicts are re-checked (as the sensor does)."""
    try:
        registered = mlflow.get_version(version)
    except LookupError as error:
        raise Failure(f"cannot deploy: {error}") from error
    decision = mlflow.version_approval(registered)
    if not decision.approved:
        raise Failure(f"version {version} will not be deployed: {decision.summary()}")
    model_sha = registered.tags.get(SERVING_SHA_TAG)
    if not model_sha:
        raise Failure(f"version {version} has no serving artifact: it never passed the gates")
    return model_sha


@versioned_asset(
    group_name="deploy",
    deps=[registered_model],
    description="Image build + push (by digest) + helm upgrade of one validated model version.",
)
def deployment(
    context: AssetExecutionContext,
    config: DeployConfig,
    mlflow: MlflowResource,
    deployer: DeployRunnerResource,
    data: InsuranceDataResource,
) -> MaterializeResult:
    version = config.model_version
    model_sha = approved_sha(mlflow, version)
    target = deployer.target()
    try:
        validate_inputs(target, version, model_sha)
    except DeployInputError as error:
        raise Failure(f"deploy of version {version} refused: {error}") from error

    # 1. Render and validate the chart with the real helm before anything leaves this machine.
    objects = render_chart(
        helm_values(target, version, model_sha),
        helm=deployer.helm(),
        release=target.release,
        values_files=target.values_files,
    )
    problems = validate_objects(objects)
    if problems:
        raise Failure("rendered chart is invalid: " + "; ".join(problems))

    # 2. The build context holds exactly this version's verified artifact.
    workdir = data.artifacts("images", f"v{version}")
    model_dir = stage_build_context(workdir / "context")
    mlflow.download_serving_artifact(model_dir, version=version)
    digest_file = workdir / "pushed.digest"
    digest_file.unlink(missing_ok=True)

    # 3. Build, push, read the digest back, roll out by digest; stop at the first failure.
    started = time.perf_counter()
    records: list[CommandRecord] = []
    metadata = {
        "model_version": version,
        "mode": deployer.mode,
        "builder": target.builder,
        "image": f"{target.repository}:{image_tag(version)}",
        "rendered_objects": MetadataValue.json(
            [f"{o['kind']}/{o['metadata']['name']}" for o in objects]
        ),
    }

    def run(argv: list[str]) -> CommandRecord:
        record = deployer.run(argv)
        records.append(record)
        context.log.info(
            f"{'ran' if record.executed else 'recorded'}: {' '.join(argv)}"
            + (f" -> exit {record.exit_code}" if record.executed else "")
        )
        if not record.ok:
            metadata["commands"] = MetadataValue.json([r.as_dict() for r in records])
            raise Failure(
                description=f"deploy of version {version} failed: `{' '.join(argv[:3])} …` "
                f"exited {record.exit_code}: {record.output_tail[-1500:]}",
                metadata=metadata,
            )
        return record

    binary = deployer.builder_binary()
    run(
        build_command(
            target,
            version=version,
            model_sha256=model_sha,
            context_dir=model_dir.parent,
            binary=binary,
        )
    )
    push = run(push_command(target, version=version, digest_file=digest_file, binary=binary))
    digest = None
    if push.executed:
        try:
            digest = pushed_digest(target.builder, digest_file, push.output_tail)
        except DeployInputError as error:
            raise Failure(f"push of version {version} gave no usable digest: {error}") from error
        metadata["digest"] = digest
        metadata["image_reference"] = f"{target.repository}@{digest}"
    values = helm_values(target, version, model_sha, digest)
    values_file = write_values_file(values, workdir / "values.yaml")
    metadata["helm_values"] = MetadataValue.json(values)
    run(upgrade_command(target, values_file, deployer.helm()))
    metadata["commands"] = MetadataValue.json([r.as_dict() for r in records])
    metadata["seconds"] = round(time.perf_counter() - started, 3)
    if deployer.mode == "execute":
        mlflow.set_alias(DEPLOYED, version)  # what the cluster serves, next to `champion`
        metadata["status"] = "deployed"
        metadata["alias"] = DEPLOYED
    else:
        # Recorded as dry-run-deployed so the sensor does not ask again for this version;
        # only a real rollout moves `deployed`.
        metadata["status"] = "dry-run-deployed"
        metadata["alias"] = "not moved (dry-run: nothing was rolled out)"
    return MaterializeResult(metadata=metadata)
