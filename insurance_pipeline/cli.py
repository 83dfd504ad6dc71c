"""`python -m insurance_pipeline.cli run`: materialize the training assets and summarize.

This is what `make run` calls. It runs the `training` job in this process against the
instance in DAGSTER_HOME, prints what each step did (cache hit or miss), the holdout metrics,
the report path and the registered version, and exits 1 with the failed checks' messages when
a gate blocks the model.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path
from typing import Any

from insurance_pipeline.domain.schema import CHAMPION_ALIAS


def build_run_config(args: argparse.Namespace) -> dict[str, Any]:
    ops: dict[str, Any] = {}
    search = {
        k: v
        for k, v in {
            "generations": args.generations,
            "population_size": args.population_size,
            "cv": args.cv,
            "n_jobs": args.n_jobs,
            "max_time_mins": args.max_time_mins,
        }.items()
        if v is not None
    }
    if search:
        ops["tpot_pipeline"] = {"config": search}
    if args.seed is not None:
        ops["train_test_split"] = {"config": {"seed": args.seed}}
    config: dict[str, Any] = {
        "ops": ops,
        "loggers": {"console": {"config": {"log_level": args.log_level}}},
    }
    if args.r2_floor is not None:
        config["resources"] = {"gates": {"config": {"r2_floor": args.r2_floor}}}
    return config


def _metadata(event) -> dict[str, Any]:
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def summarize(result) -> tuple[list[str], bool]:
    """Lines to print and whether every step and blocking check passed (read from the run's
    events through the result's public accessors)."""
    materialized = {
        e.asset_key.to_user_string(): _metadata(e)
        for e in result.get_asset_materialization_events()
    }
    lines = ["steps:"]
    for name, meta in materialized.items():
        if "cache" in meta:
            lines.append(f"  {name:<24} cache: {meta['cache']}")
        else:  # registration is not cached: it looks its version up by model key instead
            lines.append(f"  {name:<24} new version: {meta.get('new_version')}")
    failed_checks = [e for e in result.get_asset_check_evaluations() if not e.passed]
    failed_steps = result.get_step_failure_events()
    lines += _results(materialized)
    for check in failed_checks:
        lines.append(
            f"FAILED CHECK {check.asset_key.to_user_string()}:{check.check_name}: "
            f"{check.description}"
        )
    for step in failed_steps:
        lines.append(f"FAILED STEP {step.step_key}: {failure_cause(step.step_failure_data.error)}")
    registered = materialized.get("registered_model")
    ok = result.success and not failed_checks and not failed_steps and registered is not None
    if not ok and not failed_checks and not failed_steps:
        lines.append("FAILED: the model was not registered")
    return lines, ok


def failure_cause(error) -> str:
    """What went wrong, not Dagster's "Error occurred while executing op ..." wrapper: the
    step's own error (its type and message, and so the path or the endpoint), and its root
    cause where that says more."""
    chain = []
    while error is not None:
        chain.append(error)
        error = error.cause or error.context
    if not chain:
        return "unknown error"
    told = [e for e in chain if "Error occurred while executing" not in e.message]
    first, root = (told or chain)[0], chain[-1]
    said = _said(first)
    if root is not first and root.message.strip() not in said:
        said += f" (caused by {_said(root)})"
    return said


def _said(error) -> str:
    message = error.message.strip()
    return message if message.startswith(f"{error.cls_name}:") else f"{error.cls_name}: {message}"


def _results(materialized: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    search = materialized.get("tpot_pipeline")
    if search and "searched_on" in search:
        lines.append(
            f"search: {search.get('pipelines_evaluated')} pipelines on {search['searched_on']}, "
            f"{search.get('rows_searched', 0):,} of {search.get('rows_fitted', 0):,} training "
            f"rows; {search.get('candidates_timed_out', 0)} candidate(s) timed out, "
            f"{search.get('candidates_invalid', 0)} failed"
        )
    metrics = materialized.get("validation_metrics")
    if metrics:
        lines.append(
            "holdout metrics: "
            + ", ".join(f"{k}={metrics[k]}" for k in ("r2", "mse", "rmse", "mae") if k in metrics)
        )
        if "interval_coverage" in metrics:
            lines.append(f"interval: covers {metrics['interval_coverage']} of the holdout rows")
    report = materialized.get("validation_report")
    if report:
        lines.append(f"validation report: {report['file']}")
    registered = materialized.get("registered_model")
    if registered:
        lines.append(
            f"registered model: {registered['model_name']} version {registered['version']} "
            f"(alias {registered['alias']}, new version: {registered['new_version']})"
        )
    return lines


RUN_LOCK = "insurance-pipeline-run.lock"
# Tags on each run `make run` starts: where its process lives.
HOST_TAG, PID_TAG = "insurance_pipeline/host", "insurance_pipeline/pid"


def release_abandoned_runs(instance) -> list[str]:
    """Runs this host's `make run` started whose process is gone (killed mid-run): marked
    failed and their pool slots freed, so that the next run is not held behind them. Called
    under the run lock, when no other `make run` of this state is alive.

    Dagster's run monitoring does this for runs its run launcher started, in the daemon
    (`run_monitoring` in deploy/dagster/dagster.yaml: `make stack`, Kubernetes). It cannot
    here: `make run` executes in process, with no daemon running, and no launcher that could
    check a worker it did not start; a killed run would stay STARTED, holding its slot."""
    from dagster import DagsterRunStatus, RunsFilter

    released = []
    records = instance.get_run_records(
        RunsFilter(statuses=[DagsterRunStatus.STARTED], tags={HOST_TAG: socket.gethostname()})
    )
    for record in records:
        run = record.dagster_run
        pid = int(run.tags.get(PID_TAG, "0"))
        if pid and _alive(pid):
            continue
        instance.report_run_failed(run, "its `make run` process is gone (killed?)")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        released.append(run.run_id)
    return released


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def checked_policy(args: argparse.Namespace) -> str | None:
    """Why the gate settings given on the command line are refused, if they are: out of
    range, or, in production, weaker than the environment's policy (INSURANCE_GATE_*)."""
    from dataclasses import asdict, replace

    from insurance_pipeline.core.gates.policy import PolicyError
    from insurance_pipeline.settings import environment_policy, required_policy

    if args.r2_floor is None:
        return None
    try:
        policy = replace(environment_policy(), r2_floor=args.r2_floor)
        floor = required_policy()
    except PolicyError as error:
        return f"--r2-floor: {error}"
    weaker = policy.weaker_than(floor) if floor else []
    if weaker:
        return (
            "--r2-floor: run config may only tighten this production deployment's policy "
            f"({asdict(floor)}); weaker: " + ", ".join(weaker)
        )
    return None


def instance_problem() -> str | None:
    """In production, DAGSTER_HOME must hold the production instance's config (PostgreSQL
    storage, deploy/dagster/dagster.yaml), never a local SQLite one."""
    import yaml

    from insurance_pipeline.settings import DeploySettings

    if not DeploySettings().production:
        return None
    config = Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml"
    try:
        storage = (yaml.safe_load(config.read_text()) or {}).get("storage") or {}
    except (OSError, yaml.YAMLError) as error:
        return f"INSURANCE_DEPLOYMENT=production, but {config} cannot be read: {error}"
    if "postgres" not in storage:
        return (
            f"INSURANCE_DEPLOYMENT=production, but {config} is not the production instance "
            "config (no PostgreSQL storage): copy deploy/dagster/dagster.yaml there"
        )
    return None


def run(args: argparse.Namespace) -> int:
    if not os.environ.get("DAGSTER_HOME"):
        print("DAGSTER_HOME is not set; `make run` sets it to .dagster/", file=sys.stderr)
        return 2
    refused = checked_policy(args) or instance_problem()
    if refused:
        print(f"run refused before any step: {refused}", file=sys.stderr)
        return 2
    if args.scheduler_address:  # the operator's own environment for the run it starts
        os.environ["DASK_SCHEDULER_ADDRESS"] = args.scheduler_address
    from dagster import DagsterInstance

    from insurance_pipeline.definitions import build_definitions
    from insurance_pipeline.resources.locks import exclusive

    job = build_definitions().resolve_job_def("training")
    # One run per state at a time: a second `make run` waits here, then finds every step in
    # the cache, instead of creating the instance's storage twice or racing the registry.
    lock = Path(os.environ["DAGSTER_HOME"]) / RUN_LOCK
    with exclusive(lock, announce=True), DagsterInstance.get() as instance:
        for run_id in release_abandoned_runs(instance):
            print(f"released run {run_id}: its process is gone", file=sys.stderr)
        result = job.execute_in_process(
            run_config=build_run_config(args),
            instance=instance,
            raise_on_error=False,
            tags={HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())},
        )
    lines, ok = summarize(result)
    print("\n".join([*lines, trust_line()]), flush=True)
    return 0 if ok else 1


def trust_line() -> str:
    """What signing and verifying cost this run (`make bench` reads it)."""
    from insurance_pipeline.core.trust.keys import STATS

    return f"trust: {STATS.signed} signed, {STATS.verified} verified, {STATS.seconds * 1000:.0f} ms"


def clean_cache(args: argparse.Namespace) -> int:
    from insurance_pipeline.cache.store import StepCache
    from insurance_pipeline.settings import StateSettings

    cache = StepCache(StateSettings().cache_dir)
    before = cache.size_bytes()
    cache.prune(bytes_limit=args.max_bytes, max_age_days=args.max_age_days)
    after = cache.size_bytes()
    print(f"step cache {cache.root}: {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")
    return 0


def pin_path(dest: Path) -> Path:
    """Where `export-champion` writes the exported folder's pin (its manifest's sha256, as
    the approval signed it), beside the folder: `make serve` passes it as MODEL_SHA256."""
    return dest.with_name(dest.name + ".sha256")


def _release():
    from insurance_pipeline.release import Release
    from insurance_pipeline.resources import MlflowResource, TrustResource

    return Release.of(MlflowResource.from_settings(), TrustResource.from_settings())


def export_champion(args: argparse.Namespace) -> int:
    """Put the champion's serving folder where the service reads it (the service itself never
    talks to MLflow), once the signed champion record, the alias, the approval (in
    production, under the environment's policy) and every file verified; then its pin."""
    from insurance_pipeline.core.trust.keys import TrustError
    from insurance_pipeline.serving.settings import ServiceSettings

    dest = Path(args.dest) if args.dest else ServiceSettings().artifact_dir
    try:
        release = _release()
        version = exported_version(release, args.alias)
        approval = release.approval(version)
        release.fetch_served(version, approval, dest)
        pin_path(dest).write_text(release.served_digest(approval) + "\n")
    except (LookupError, ValueError, TrustError) as error:
        print(f"export-champion: {error}", file=sys.stderr)
        return 1
    print(f"{args.alias}: version {version.version} -> {dest}")
    return 0


def exported_version(release, alias: str):
    """`champion`: the version of the latest valid signed record (the alias must agree);
    another alias (`deployed`): the version it points at, trusted only by its approval."""
    if alias == CHAMPION_ALIAS:
        champion = release.champion()
        if champion is None:
            raise LookupError(
                f"{release.mlflow.model_name} has no champion yet; run `make run` first"
            )
        return champion.version
    found = release.mlflow.alias_version(alias)
    if found is None:
        raise LookupError(f"no version of {release.mlflow.model_name} has the alias {alias!r}")
    return found


def promote(args: argparse.Namespace) -> int:
    """Make a registered version champion by hand (a rollback): a new signed champion record
    for a version whose approval verifies under the current policy."""
    from insurance_pipeline.core.trust.keys import TrustError

    try:
        record = _release().promote(args.version, args.reason)
    except (LookupError, ValueError, TrustError) as error:
        print(f"promote: {error}", file=sys.stderr)
        return 1
    print(f"champion: version {record.version} (record {record.sequence}, {record.reason})")
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    parser = argparse.ArgumentParser(prog="insurance_pipeline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="materialize every training asset")
    p_run.add_argument("--generations", type=int)
    p_run.add_argument("--population-size", type=int)
    p_run.add_argument("--cv", type=int)
    p_run.add_argument("--n-jobs", type=int)
    p_run.add_argument("--max-time-mins", type=float)
    p_run.add_argument(
        "--scheduler-address", help="a Dask scheduler for the search (DASK_SCHEDULER_ADDRESS)"
    )
    p_run.add_argument("--seed", type=int, help="train/test split seed")
    p_run.add_argument("--r2-floor", type=float)
    p_run.add_argument("--log-level", default="INFO")
    p_clean = sub.add_parser("clean-cache", help="prune the step cache (everything by default)")
    p_clean.add_argument("--max-bytes", type=int, help="keep the most recently used entries")
    p_clean.add_argument("--max-age-days", type=float, help="drop entries older than this")
    p_export = sub.add_parser("export-champion", help="fetch the served version's artifact")
    p_export.add_argument("--alias", default=CHAMPION_ALIAS)
    p_export.add_argument("--dest", help="default SERVING_ARTIFACT_DIR")
    p_promote = sub.add_parser(
        "promote", help="make a registered version champion (a signed record; e.g. a rollback)"
    )
    p_promote.add_argument("--version", type=int, required=True)
    p_promote.add_argument("--reason", required=True, help="why: signed into the record")
    args = parser.parse_args(argv)
    commands = {
        "run": run,
        "clean-cache": clean_cache,
        "export-champion": export_champion,
        "promote": promote,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
