"""The resources, chosen by environment (INSURANCE_DEPLOYMENT), as Dagster's
project_fully_featured example does: `local` (embedded; deploys are recorded, not run) or
`production` (real build, push and rollout). The graph is the same in both.

**The trust root is the operator's environment.** The resources that carry trust, identity
or a destination (the keys, the data and artifact locations, MLflow, the step cache, Dask,
the deployer) are bound with `environment_only`: their values are read from the environment
when the code location (or a run's process) loads, and their run config schema is empty, so
Dagster refuses, at launch and by every path (CLI, GraphQL, the UI's launchpad, schedules,
sensors), a run whose config names any of their keys. Only `gates` takes run config, and in
`production` only to be stricter than INSURANCE_GATE_* (`GatesResource`)."""

import dagster as dg

from insurance_pipeline.resources import (
    DaskResource,
    DeployRunnerResource,
    GatesResource,
    InsuranceDataResource,
    MlflowResource,
    StepCacheIOManager,
    StepCacheResource,
)
from insurance_pipeline.resources.trust import TrustResource
from insurance_pipeline.settings import DeploySettings, SearchSettings, StateSettings

ENVIRONMENT_ONLY = "From the operator's environment only: run config cannot set it (docs/trust.md)."


def environment_only(resource: dg.ConfigurableResource) -> dg.ResourceDefinition:
    """`resource`, configured from the environment, with a run config schema that accepts
    nothing: a run whose config sets one of its keys is refused, naming the key."""
    if isinstance(resource, dg.ConfigurableIOManager):
        return dg.IOManagerDefinition(
            resource_fn=lambda _: resource, config_schema={}, description=ENVIRONMENT_ONLY
        )
    return dg.ResourceDefinition(
        resource_fn=lambda _: resource, config_schema={}, description=ENVIRONMENT_ONLY
    )


def resources_for(state: StateSettings, deploy: DeploySettings) -> dict[str, object]:
    trust = TrustResource.from_settings(deploy.environment, state.state_dir)
    step_cache = StepCacheResource(root_dir=str(state.cache_dir), trust=trust)
    pinned = {
        "data": InsuranceDataResource(
            csv_path=str(state.data_path),
            artifacts_dir=str(state.artifacts_dir),
            scratch_dir=str(state.scratch_dir or ""),
        ),
        "mlflow": MlflowResource.from_settings(),
        "step_cache": step_cache,
        # The step cache is also the store Dagster loads asset values from: one store.
        "io_manager": StepCacheIOManager(step_cache=step_cache),
        "trust": trust,
        "dask": DaskResource(scheduler_address=SearchSettings().scheduler_address),
        "deployer": DeployRunnerResource.from_settings(),
    }
    return {
        **{name: environment_only(resource) for name, resource in pinned.items()},
        "gates": GatesResource.from_settings(),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=resources_for(StateSettings(), DeploySettings()))
