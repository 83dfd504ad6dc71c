"""What Dagster's Helm chart makes of deploy/dagster/values.yaml, computed offline (the chart
cannot be fetched here): the instance's dagster.yaml that the chart writes into its instance
ConfigMap, and the run launcher's configuration. The mapping follows the chart's instance
templates for the sections the project sets (storage, run launcher, run coordinator,
concurrency, compute logs, run monitoring, sensors and schedules, telemetry); a values key the
mapping does not know is an error, so a values file cannot silently set nothing.

`validate_instance_config` checks the result with Dagster's own config schemas: the instance
schema, the concurrency rules, and the config schema of each class it names (PostgreSQL
storage, K8sRunLauncher, QueuedRunCoordinator, S3ComputeLogManager).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tooling.environ import patched_environ

CHECKOUT = Path(__file__).resolve().parents[1]
VALUES = CHECKOUT / "deploy" / "dagster" / "values.yaml"
RELEASE = {"name": "dagster", "namespace": "dagster"}
# The sections of the values the mapping reads; anything else at the top level is refused.
KNOWN_SECTIONS = {
    "global",
    "dagsterWebserver",
    "dagster-user-deployments",
    "runLauncher",
    "postgresql",
    "generatePostgresqlPasswordSecret",
    "computeLogManager",
    "dagsterDaemon",
    "concurrency",
    "telemetry",
}


class ChartValuesError(ValueError):
    """The values set something the mapping does not know, or are inconsistent."""


def load_values(path: Path = VALUES) -> dict[str, Any]:
    values = yaml.safe_load(path.read_text())
    unknown = set(values) - KNOWN_SECTIONS
    if unknown:
        raise ChartValuesError(f"{path}: sections not mapped: {', '.join(sorted(unknown))}")
    return values


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _snake_keys(mapping: dict[str, Any]) -> dict[str, Any]:
    return {_snake(k): v for k, v in mapping.items() if v is not None}


def fullname() -> str:
    return RELEASE["name"]  # the chart's fullname for a release named like the chart


def _postgres(values: dict) -> dict:
    pg = values["postgresql"]
    if pg.get("enabled"):
        raise ChartValuesError("postgresql.enabled: the project uses an external PostgreSQL")
    db = {
        "username": pg["postgresqlUsername"],
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": pg["postgresqlHost"],
        "db_name": pg["postgresqlDatabase"],
        "port": pg["service"]["port"],
        "params": pg.get("postgresqlParams") or {},
    }
    if pg.get("postgresqlScheme"):
        db["scheme"] = pg["postgresqlScheme"]
    return {"postgres_db": db}


def _image_name(image: dict) -> str:
    return f"{image['repository']}:{image['tag']}"


def run_launcher_config(values: dict) -> dict:
    launcher = values["runLauncher"]
    if launcher["type"] != "K8sRunLauncher":
        raise ChartValuesError(f"runLauncher.type {launcher['type']!r}: expected K8sRunLauncher")
    k8s = dict(launcher["config"]["k8sRunLauncher"])
    config: dict[str, Any] = {
        "load_incluster_config": k8s.pop("loadInclusterConfig"),
        "job_namespace": k8s.pop("jobNamespace", None) or RELEASE["namespace"],
        "image_pull_policy": k8s.pop("imagePullPolicy"),
        "service_account_name": values["global"]["serviceAccountName"],
        "dagster_home": {"env": "DAGSTER_HOME"},
        "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
        "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
        "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}]
        + [c["name"] for c in k8s.pop("envConfigMaps", []) or []],
    }
    if "kubeconfigFile" in k8s:
        config["kubeconfig_file"] = k8s.pop("kubeconfigFile")
    if "image" in k8s:
        config["job_image"] = _image_name(k8s.pop("image"))
    secrets = [s["name"] for s in k8s.pop("envSecrets", []) or []]
    if secrets:
        config["env_secrets"] = secrets
    for key in ("envVars", "volumeMounts", "volumes", "labels", "runK8sConfig"):
        if k8s.get(key):
            config[_snake(key)] = k8s.pop(key)
    if "failPodOnRunFailure" in k8s:
        config["fail_pod_on_run_failure"] = k8s.pop("failPodOnRunFailure")
    if k8s:
        raise ChartValuesError(f"runLauncher.config.k8sRunLauncher: not mapped: {sorted(k8s)}")
    return {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": config}


def _compute_logs(values: dict) -> dict:
    manager = values["computeLogManager"]
    if manager["type"] != "S3ComputeLogManager":
        raise ChartValuesError(f"computeLogManager.type {manager['type']!r}: expected S3")
    return {
        "module": "dagster_aws.s3.compute_log_manager",
        "class": "S3ComputeLogManager",
        "config": _snake_keys(manager["config"]["s3ComputeLogManager"]),
    }


def _concurrency(values: dict) -> dict:
    concurrency = values.get("concurrency") or {}
    rendered: dict[str, Any] = {}
    pools = _snake_keys(concurrency.get("pools") or {})
    if pools:
        rendered["pools"] = pools
    runs = concurrency.get("runs") or {}
    if runs.get("maxConcurrentRuns") is not None or runs.get("tagConcurrencyLimits"):
        rendered["runs"] = _snake_keys(runs)
    return rendered


def instance_config(values: dict) -> dict:
    """The dagster.yaml the chart writes into `<release>-instance` for these values."""
    storage = _postgres(values)
    daemon = values["dagsterDaemon"]
    config: dict[str, Any] = {
        "scheduler": {
            "module": "dagster._core.scheduler",
            "class": "DagsterDaemonScheduler",
        },
        "schedule_storage": {
            "module": "dagster_postgres.schedule_storage",
            "class": "PostgresScheduleStorage",
            "config": storage,
        },
        "run_launcher": run_launcher_config(values),
        "run_storage": {
            "module": "dagster_postgres.run_storage",
            "class": "PostgresRunStorage",
            "config": storage,
        },
        "event_log_storage": {
            "module": "dagster_postgres.event_log",
            "class": "PostgresEventLogStorage",
            "config": storage,
        },
        "compute_logs": _compute_logs(values),
        "telemetry": {"enabled": bool(values["telemetry"]["enabled"])},
    }
    if daemon["enabled"] and daemon["runCoordinator"]["enabled"]:
        queued = daemon["runCoordinator"]["config"].get("queuedRunCoordinator") or {}
        config["run_coordinator"] = {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            **({"config": _snake_keys(queued)} if queued else {}),
        }
    monitoring = daemon.get("runMonitoring") or {}
    if daemon["enabled"] and monitoring.get("enabled"):
        config["run_monitoring"] = _snake_keys(monitoring)
    for name in ("sensors", "schedules"):
        if daemon["enabled"] and (daemon.get(name) or {}).get("useThreads"):
            config[name] = _snake_keys(daemon[name])
    concurrency = _concurrency(values)
    if concurrency:
        config["concurrency"] = concurrency
    return config


def _configurable(entry: dict, where: str) -> list[str]:
    """The config of one `module`/`class` entry against that class's own config schema."""
    import importlib

    from dagster._config import process_config

    # `dagster.core.*` is the public spelling Dagster resolves to its `dagster._core` modules
    module = re.sub(r"^dagster\.core\.", "dagster._core.", entry["module"])
    cls = getattr(importlib.import_module(module), entry["class"])
    result = process_config(cls.config_type(), entry.get("config") or {})
    if result.success:
        return []
    return [f"{where}: {error.message}" for error in result.errors]


def pod_environment(values: dict) -> dict[str, str]:
    """What the chart sets in the environment of its Dagster pods, which the instance config
    reads (`env:` sources); the password comes from the PostgreSQL secret."""
    return {
        "DAGSTER_HOME": values["global"]["dagsterHome"],
        "DAGSTER_K8S_INSTANCE_CONFIG_MAP": f"{fullname()}-instance",
        "DAGSTER_K8S_PG_PASSWORD_SECRET": values["global"]["postgresqlSecretName"],
        "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP": f"{fullname()}-pipeline-env",
        "DAGSTER_PG_PASSWORD": "<from the secret>",
    }


def validate_instance_config(config: dict, environment: dict[str, str]) -> list[str]:
    """Problems Dagster finds in an instance config, in a pod's `environment` (empty: none)."""
    with patched_environ(environment):
        return _problems(config)


def _problems(config: dict) -> list[str]:
    from dagster._config import process_config
    from dagster._core.errors import DagsterInvalidConfigError
    from dagster._core.instance.config import (
        dagster_instance_config_schema,
        validate_concurrency_config,
    )

    result = process_config(dagster_instance_config_schema(), config)
    problems = [error.message for error in result.errors or []] if not result.success else []
    try:
        validate_concurrency_config(config)
    except DagsterInvalidConfigError as error:
        problems.append(str(error))
    for section in ("run_launcher", "run_coordinator", "compute_logs", "run_storage"):
        if section in config:
            problems += _configurable(config[section], section)
    return problems


def code_location(values: dict) -> dict:
    """The project's user deployment (the code location the chart runs)."""
    deployments = values["dagster-user-deployments"]["deployments"]
    if len(deployments) != 1:
        raise ChartValuesError("dagster-user-deployments: expected the one pipeline deployment")
    return deployments[0]


def container_context(deployment: dict) -> dict:
    """What `includeConfigInLaunchedRuns` hands each run from the code location's pod."""
    env = deployment.get("env") or []
    return {
        "k8s": {
            "env_vars": [f"{e['name']}={e['value']}" for e in env],
            "env_secrets": [s["name"] for s in deployment.get("envSecrets") or []],
            "volume_mounts": deployment.get("volumeMounts") or [],
            "volumes": deployment.get("volumes") or [],
        }
    }


def code_server_environment(values: dict, secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The environment of the code location's pod as the chart makes it: the pod settings,
    its `env`, and every key of each of its `envSecrets` (whose contents `secrets` gives, by
    secret name: a missing one is an error, as a pod would not start)."""
    deployment = code_location(values)
    env = dict(pod_environment(values))
    env.pop("DAGSTER_PG_PASSWORD")
    for source in deployment.get("envSecrets") or []:
        if source["name"] not in secrets:
            raise ChartValuesError(f"secret {source['name']} is referenced but not given")
        env |= secrets[source["name"]]
    env |= {item["name"]: item["value"] for item in deployment.get("env") or []}
    return env


def code_server_mounts(values: dict) -> dict[str, str]:
    """The code location pod's mounts: volume name -> path in the container."""
    return {m["name"]: m["mountPath"] for m in code_location(values).get("volumeMounts") or []}


def referenced_objects(values: dict) -> set[tuple[str, str]]:
    """Every (kind, name) of a Secret or ConfigMap the values reference."""
    found = {("secret", values["global"]["postgresqlSecretName"])}
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    deployment = code_location(values)
    holders = [values["dagsterWebserver"], values["dagsterDaemon"], deployment, launcher]
    for holder in holders:
        found |= {("secret", s["name"]) for s in holder.get("envSecrets") or []}
        found |= {("configmap", c["name"]) for c in holder.get("envConfigMaps") or []}
        for volume in holder.get("volumes") or []:
            if "secret" in volume:
                found.add(("secret", volume["secret"]["secretName"]))
            if "configMap" in volume:
                found.add(("configmap", volume["configMap"]["name"]))
    return found


class RecordedJobs:
    """Kubernetes' batch API at the true edge (there is no cluster here): each Job dagster-k8s
    would create, recorded exactly as it would have been sent."""

    def __init__(self):
        self.created: list[tuple[str, Any]] = []

    def create_namespaced_job(self, body, namespace, **_request_options):
        self.created.append((namespace, body))
        return body


def _offline_kubeconfig(folder: Path) -> Path:
    """A kubeconfig naming a cluster that is never contacted (the launcher loads one)."""
    path = folder / "kubeconfig"
    cluster = {"server": "https://127.0.0.1:9", "insecure-skip-tls-verify": True}
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "offline", "cluster": cluster}],
                "users": [{"name": "offline", "user": {"token": "unused"}}],
                "contexts": [
                    {"name": "offline", "context": {"cluster": "offline", "user": "offline"}}
                ],
                "current-context": "offline",
            }
        )
    )
    return path


def run_pod_job(values: dict, job_def, workdir: Path) -> tuple[str, dict]:
    """(namespace, Job) that the K8sRunLauncher these values configure creates for a run of
    `job_def` from the project's code location: dagster-k8s's own launch path, from
    `launch_run` to the Job it sends, against a real (temporary) Dagster instance."""
    from dagster import DagsterInstance
    from dagster._config import process_config
    from dagster._core.code_pointer import ModuleCodePointer
    from dagster._core.launcher import LaunchRunContext
    from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
    from dagster_k8s import K8sRunLauncher
    from kubernetes.client import ApiClient

    entry = run_launcher_config(values)
    # outside a pod: the same launcher, with its cluster credentials from a file
    config = {
        **entry["config"],
        "load_incluster_config": False,
        "kubeconfig_file": str(_offline_kubeconfig(workdir)),
    }
    deployment = code_location(values)
    origin = JobPythonOrigin(
        job_def.name,
        RepositoryPythonOrigin(
            executable_path="/opt/venv/bin/python",
            code_pointer=ModuleCodePointer(
                "insurance_pipeline.definitions", "defs", working_directory="/app"
            ),
            container_image=_image_name(deployment["image"]),
            entry_point=["dagster"],
            container_context=container_context(deployment),
        ),
    )
    jobs = RecordedJobs()
    with patched_environ(pod_environment(values)):
        processed = process_config(K8sRunLauncher.config_type(), config)
        if not processed.success:
            raise ChartValuesError("; ".join(e.message for e in processed.errors))
        launcher = K8sRunLauncher(**processed.value, k8s_client_batch_api=jobs)
        (workdir / "instance").mkdir(exist_ok=True)
        with DagsterInstance.local_temp(str(workdir / "instance")) as instance:
            launcher.register_instance(instance)
            run = instance.create_run_for_job(job_def, job_code_origin=origin)
            launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    [(namespace, job)] = jobs.created
    return namespace, ApiClient().sanitize_for_serialization(job)


if __name__ == "__main__":
    chart_values = load_values()
    rendered = instance_config(chart_values)
    found = validate_instance_config(rendered, pod_environment(chart_values))
    print(yaml.safe_dump(rendered, sort_keys=False))
    if found:
        raise SystemExit("\n".join(found))
