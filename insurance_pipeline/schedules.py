"""The retraining schedule: weekly, requesting only the training assets that are stale.

Stale = never materialized, its code version changed, or an upstream's current data version
differs from the one it was built from (the CSV's current sha256 for the raw data). Because
every data version here is a content hash, this is exact; downstream of a stale asset is
stale too.
"""

from collections.abc import Mapping

from dagster import (
    AssetKey,
    AssetSelection,
    DagsterInstance,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from insurance_pipeline.assets._cached import DATA_VERSION_TAG
from insurance_pipeline.data.hashing import file_sha256
from insurance_pipeline.settings import get_settings

INPUT_VERSION_TAG_PREFIX = "dagster/input_data_version/"
CODE_VERSION_TAG = "dagster/code_version"
RAW_DATA = AssetKey("raw_insurance_data")


def stale_assets(
    instance: DagsterInstance,
    deps: Mapping[AssetKey, set[AssetKey]],
    code_versions: Mapping[AssetKey, str | None],
    expected_versions: Mapping[AssetKey, str],
) -> list[AssetKey]:
    """Keys of `deps` that need rebuilding. `expected_versions` pins what an asset's data
    version must be to count as current (the raw data's must equal the file's sha256)."""
    stale: set[AssetKey] = set()
    current: dict[AssetKey, str | None] = {}

    def visit(key: AssetKey) -> None:
        if key in current:
            return
        upstreams = [u for u in deps[key] if u in deps]  # external sources have no record here
        for upstream in upstreams:
            visit(upstream)
        event = instance.get_latest_materialization_event(key)
        if event is None or event.asset_materialization is None:
            stale.add(key)
            current[key] = None
            return
        tags = event.asset_materialization.tags or {}
        current[key] = tags.get(DATA_VERSION_TAG)
        if key in expected_versions and current[key] != expected_versions[key]:
            stale.add(key)
        if code_versions.get(key) and tags.get(CODE_VERSION_TAG) != code_versions[key]:
            stale.add(key)
        for upstream in upstreams:
            recorded = tags.get(INPUT_VERSION_TAG_PREFIX + upstream.to_user_string())
            if upstream in stale or current[upstream] != recorded:
                stale.add(key)

    for key in sorted(deps, key=lambda k: k.to_user_string()):
        visit(key)
    return sorted(stale, key=lambda k: k.to_user_string())


def build_retraining_schedule(job, selection: AssetSelection, cron: str | None = None):
    @schedule(
        job=job,
        cron_schedule=cron or get_settings().retrain_cron,
        name="weekly_retraining",
        description="Re-materializes only the stale training assets (INSURANCE_RETRAIN_CRON).",
    )
    def weekly_retraining(context: ScheduleEvaluationContext):
        graph = context.repository_def.asset_graph
        keys = [k for k in selection.resolve(graph) if graph.get(k).is_materializable]
        deps = {k: set(graph.get(k).parent_keys) for k in keys}
        code_versions = {k: graph.get(k).code_version for k in keys}
        expected = {RAW_DATA: file_sha256(get_settings().data_path)}
        stale = stale_assets(context.instance, deps, code_versions, expected)
        if not stale:
            return SkipReason("every training asset is up to date")
        return RunRequest(asset_selection=stale, tags={"trigger": "weekly_retraining"})

    return weekly_retraining
