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
    build_commands,
    helm_values,
    image_tag,
    render_chart,
    stage_build_context,
    validate_objects,
)
from insurance_pipeline.resources import InsuranceDataResource, MlflowResource
from insurance_pipeline.resources.deploy import DeployRunnerResource
from insurance_pipeline.resources.mlflow import SERVING_SHA_TAG

DEPLOYED = "deployed"


class DeployConfig(Config):
    model_version: int = Field(description="Registered version of insurance_charges_model")


@versioned_asset(
    group_name="deploy",
    deps=[registered_model],
    description="Image build + push + helm upgrade of one validated model version.",
)
def deployment(
    context: AssetExecutionContext,
    config: DeployConfig,
    mlflow: MlflowResource,
    deployer: DeployRunnerResource,
    data: InsuranceDataResource,
) -> MaterializeResult:
    version = config.model_version
    try:
        registered = mlflow.get_version(version)
    except LookupError as error:
        raise Failure(f"cannot deploy: {error}") from error
    decision = mlflow.version_approval(registered)  # the same verdicts registration required
    if not decision.approved:
        raise Failure(f"version {version} will not be deployed: {decision.summary()}")
    model_sha = registered.tags.get(SERVING_SHA_TAG)
    if not model_sha:
        raise Failure(f"version {version} has no serving artifact: it never passed the gates")
    target = deployer.target()

    # 1. Render and validate the chart with the real helm before anything leaves this machine.
    values = helm_values(target, version, model_sha)
    objects = render_chart(values, helm=deployer.helm(), release=target.release)
    problems = validate_objects(objects)
    if problems:
        raise Failure("rendered chart is invalid: " + "; ".join(problems))

    # 2. The build context holds exactly this version's verified artifact.
    context_dir = data.artifacts("images", f"v{version}")
    model_dir = stage_build_context(context_dir / "context")
    mlflow.download_serving_artifact(model_dir, version=version)

    # 3. Build, push, roll out — stop at the first failure.
    commands = build_commands(
        target,
        version=version,
        model_sha256=model_sha,
        context_dir=context_dir / "context",
        docker=deployer.docker_bin,
        helm=deployer.helm(),
    )
    started = time.perf_counter()
    records = []
    for argv in commands:
        record = deployer.run(argv)
        records.append(record)
        context.log.info(
            f"{'ran' if record.executed else 'recorded'}: {' '.join(argv)}"
            + (f" -> exit {record.exit_code}" if record.executed else "")
        )
        if not record.ok:
            break
    metadata = {
        "model_version": version,
        "image": f"{target.repository}:{image_tag(version)}",
        "mode": deployer.mode,
        "commands": MetadataValue.json([r.as_dict() for r in records]),
        "rendered_objects": MetadataValue.json(
            [f"{o['kind']}/{o['metadata']['name']}" for o in objects]
        ),
        "seconds": round(time.perf_counter() - started, 3),
    }
    failed = next((r for r in records if not r.ok), None)
    if failed is not None:
        raise Failure(
            description=f"deploy of version {version} failed: `{' '.join(failed.argv[:3])} …` "
            f"exited {failed.exit_code}: {failed.output_tail[-500:]}",
            metadata=metadata,
        )
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
