"""Glue between Dagster assets and the content-keyed step cache: the decorator that gives an
asset its code version, and `run_cached`, which looks a step up by its key or computes and
stores it. (Not a definitions module: it defines no asset.)"""

from collections.abc import Callable, Iterable
from typing import Any

from dagster import AssetExecutionContext, AssetKey, DataVersion, asset

from insurance_pipeline.cache.code_version import code_version
from insurance_pipeline.cache.store import CachedResult, step_cache_key
from insurance_pipeline.defs.jobs import DEPLOY_GROUP, TRAINING_GROUP

STAGES, DEPLOY_STAGE = "insurance_pipeline.defs", "deploy"
# Tags Dagster records on a materialization: its data version (also on observations), its
# code version, and the data version of each input (the suffix is the input's key).
DAGSTER_DATA_VERSION_TAG = "dagster/data_version"
DAGSTER_CODE_VERSION_TAG = "dagster/code_version"
DAGSTER_INPUT_VERSION_TAG = "dagster/input_data_version/"


def stage_group(module: str) -> str:
    """The group of every asset defined under a stage folder: the deploy stage's is `deploy`,
    every other stage's `training` (set here once, for all of them)."""
    stage = module.removeprefix(f"{STAGES}.").split(".")[0]
    return DEPLOY_GROUP if stage == DEPLOY_STAGE else TRAINING_GROUP


def versioned_asset(**asset_kwargs):
    """`@asset` in its stage's group, whose code_version hashes the function's source and the
    pure code it reaches (followed through imports, see `cache.code_version`), so editing
    any code the step uses makes exactly it and its downstream miss the cache and show as
    stale."""

    def decorate(fn: Callable):
        return asset(
            code_version=code_version(fn), group_name=stage_group(fn.__module__), **asset_kwargs
        )(fn)

    return decorate


def latest_data_version(context: AssetExecutionContext, key: AssetKey) -> str:
    record = context.instance.get_latest_data_version_record(key)
    if record is None:
        raise RuntimeError(f"upstream asset {key.to_user_string()} has no recorded data version")
    event = record.event_log_entry.asset_materialization or record.event_log_entry.asset_observation
    return event.tags.get(DAGSTER_DATA_VERSION_TAG, "")


def upstream_data_versions(context: AssetExecutionContext) -> dict[str, str]:
    deps = context.assets_def.asset_deps[context.asset_key]
    return {k.to_user_string(): latest_data_version(context, k) for k in sorted(deps)}


def run_cached(
    context: AssetExecutionContext,
    store,
    compute: Callable[[], Any],
    *,
    config: dict[str, Any] | None = None,
    libraries: Iterable[str] = (),
    upstream_versions: dict[str, str] | None = None,
) -> CachedResult:
    """Look the step up by its key; compute and store it on a miss. `upstream_versions`
    replaces the recorded upstream data versions (the raw step hashes its file itself)."""
    step = context.asset_key.to_user_string()
    key = step_cache_key(
        step,
        code_version=context.assets_def.code_versions_by_key[context.asset_key] or "",
        upstream_versions=upstream_versions
        if upstream_versions is not None
        else upstream_data_versions(context),
        config=config or {},
        libraries=libraries,
    )
    store.warn = context.log.warning  # a refused entry is named, then recomputed
    result = store.get_or_compute(step, key, compute)
    context.log.info(f"cache: {'hit' if result.hit else 'miss'} for {step} (key {key})")
    return result


def cache_metadata(result: CachedResult) -> dict[str, Any]:
    return {"cache": "hit" if result.hit else "miss", "cache_key": result.key}


def data_version(result: CachedResult) -> DataVersion:
    return DataVersion(result.data_version)
