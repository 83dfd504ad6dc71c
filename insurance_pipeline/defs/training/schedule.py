"""The retraining schedule: weekly, requesting only the training assets that are stale.

Stale means what Dagster's UI means by it, read through Dagster's public APIs: an asset is
stale when it was never materialized, its code version differs from the one its latest
materialization recorded, or an upstream's current data version differs from the input
data version that materialization recorded; and everything downstream of a stale asset is
stale too (every data version here is a content hash, which cannot be projected ahead of a
run). The one fact Dagster cannot know by itself is that the CSV changed on disk: the
schedule observes the file first (its sha256, as the `insurance_csv` source does).

Why not Dagster's declarative automation (`AutomationCondition`), measured with Dagster 1.13:
`cron_tick_passed("0 3 * * 1") & (missing() | code_version_changed() |
any_deps_updated()).since_last_handled()` on every training asset, evaluated with
`evaluate_automation_conditions` beside this resolver, requested exactly the same assets
after a run, after a warm run of cache hits, after one asset was materialized again with an
unchanged data version, and after the CSV changed (all 11). What it lacks is the CSV: Dagster
learns of the change only from an observation, and an observation requested by the same
automation lands in a later evaluation than the tick, so the weekly run would start a week
late unless the tick condition is relaxed to "since last handled", which then fires mid-week
on any code change. It would also turn `weekly_retraining` from a schedule (a stable
interface, started and stopped as one) into a sensor. Observing the file and resolving in one
evaluation keeps both.
"""

from collections.abc import Iterable, Mapping

from dagster import (
    AssetKey,
    AssetObservation,
    AssetsDefinition,
    DagsterInstance,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from insurance_pipeline.defs._steps import (
    DAGSTER_CODE_VERSION_TAG,
    DAGSTER_DATA_VERSION_TAG,
    DAGSTER_INPUT_VERSION_TAG,
)
from insurance_pipeline.defs.jobs import TRAINING_GROUP, TRAINING_JOB
from insurance_pipeline.domain.hashing import file_sha256
from insurance_pipeline.settings import ScheduleSettings, StateSettings

CSV = AssetKey("insurance_csv")


def current_data_version(instance: DagsterInstance, key: AssetKey) -> str | None:
    """The data version of the latest materialization, or of the latest observation (a
    source)."""
    event = instance.get_latest_materialization_event(key)
    if event is not None and event.asset_materialization is not None:
        return event.asset_materialization.tags.get(DAGSTER_DATA_VERSION_TAG)
    observed = instance.fetch_observations(key, limit=1).records
    if observed:
        return (observed[0].asset_observation.tags or {}).get(DAGSTER_DATA_VERSION_TAG)
    return None


def _stale_itself(instance: DagsterInstance, assets: AssetsDefinition, key: AssetKey) -> bool:
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return True  # never materialized
    tags = event.asset_materialization.tags
    spec = assets.get_asset_spec(key)
    if tags.get(DAGSTER_CODE_VERSION_TAG) != spec.code_version:
        return True
    return any(
        tags.get(DAGSTER_INPUT_VERSION_TAG + dep.asset_key.to_user_string())
        != current_data_version(instance, dep.asset_key)
        for dep in spec.deps
    )


def stale_assets(
    instance: DagsterInstance,
    assets_by_key: Mapping[AssetKey, AssetsDefinition],
    keys: Iterable[AssetKey],
) -> list[AssetKey]:
    """Among `keys`: the stale ones and everything downstream of them."""
    keys = set(keys)
    children: dict[AssetKey, set[AssetKey]] = {}
    for key in keys:
        for dep in assets_by_key[key].get_asset_spec(key).deps:
            children.setdefault(dep.asset_key, set()).add(key)
    found = {k for k in keys if _stale_itself(instance, assets_by_key[k], k)}
    pending = list(found)
    while pending:
        for child in children.get(pending.pop(), ()):
            if child not in found:
                found.add(child)
                pending.append(child)
    return sorted(found, key=lambda k: k.to_user_string())


def observe_csv(instance: DagsterInstance, sha256: str) -> bool:
    """Record the file's current version if it differs from the last observation; True if
    it did (the CSV changed since the last run looked at it)."""
    if current_data_version(instance, CSV) == sha256:
        return False
    instance.report_runless_asset_event(
        AssetObservation(CSV, tags={DAGSTER_DATA_VERSION_TAG: sha256})
    )
    return True


def training_keys(assets_by_key: Mapping[AssetKey, AssetsDefinition]) -> list[AssetKey]:
    return [
        key
        for key, assets in assets_by_key.items()
        if assets.is_materializable and assets.group_names_by_key.get(key) == TRAINING_GROUP
    ]


@schedule(
    job_name=TRAINING_JOB,
    cron_schedule=ScheduleSettings().retrain_cron,
    name="weekly_retraining",
    description="Re-materializes only the stale training assets (INSURANCE_RETRAIN_CRON).",
)
def weekly_retraining(context: ScheduleEvaluationContext):
    assets_by_key = context.repository_def.assets_defs_by_key
    observe_csv(context.instance, file_sha256(StateSettings().data_path))
    stale = stale_assets(context.instance, assets_by_key, training_keys(assets_by_key))
    if not stale:
        return SkipReason("every training asset is up to date")
    return RunRequest(asset_selection=stale, tags={"trigger": "weekly_retraining"})
