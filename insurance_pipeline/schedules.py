"""The retraining schedule: weekly, requesting only the training assets that are stale.

Staleness is Dagster's own (the status the UI shows): an asset is stale when it was never
materialized, its code version changed, or an upstream's data version differs from the one
it was built from, transitively. Every data version here is a content hash, so this is exact.
The one fact Dagster cannot know by itself is that the CSV changed on disk: the schedule
observes the file first (its sha256, as the `insurance_csv` source does), so a new file makes
everything downstream of it stale.
"""

from collections.abc import Iterable

from dagster import (
    AssetKey,
    AssetObservation,
    AssetSelection,
    DagsterInstance,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._time import get_current_datetime

from insurance_pipeline.assets._cached import DATA_VERSION_TAG
from insurance_pipeline.data.hashing import file_sha256
from insurance_pipeline.settings import get_settings

CSV = AssetKey("insurance_csv")
NEEDS_RUN = (StaleStatus.STALE, StaleStatus.MISSING)


def stale_assets(
    instance: DagsterInstance, asset_graph, keys: Iterable[AssetKey]
) -> list[AssetKey]:
    """The keys Dagster's stale-status resolver reports as stale or missing, and everything
    downstream of them among `keys`: rebuilding an asset gives its dependents new inputs
    (our data versions are content hashes, which Dagster cannot project ahead of a run)."""
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=asset_graph,
    )
    resolver = CachingStaleStatusResolver(instance, asset_graph, view)
    keys = set(keys)
    found = {k for k in keys if resolver.get_status(k) in NEEDS_RUN}
    todo = list(found)
    while todo:
        for child in asset_graph.get(todo.pop()).child_keys:
            if child in keys and child not in found:
                found.add(child)
                todo.append(child)
    return sorted(found, key=lambda k: k.to_user_string())


def observe_csv(instance: DagsterInstance, sha256: str) -> bool:
    """Record the file's current version if it differs from the last observation; True if
    it did (the CSV changed since the last run looked at it)."""
    record = instance.get_latest_data_version_record(CSV)
    event = record.event_log_entry.asset_observation if record else None
    if event is not None and (event.tags or {}).get(DATA_VERSION_TAG) == sha256:
        return False
    instance.report_runless_asset_event(AssetObservation(CSV, tags={DATA_VERSION_TAG: sha256}))
    return True


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
        observe_csv(context.instance, file_sha256(get_settings().data_path))
        stale = stale_assets(context.instance, graph, keys)
        if not stale:
            return SkipReason("every training asset is up to date")
        return RunRequest(asset_selection=stale, tags={"trigger": "weekly_retraining"})

    return weekly_retraining
