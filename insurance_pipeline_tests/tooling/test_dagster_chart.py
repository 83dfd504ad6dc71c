"""deploy/dagster/values.yaml for Dagster's Helm chart, checked offline: the instance config the
chart would write, validated by Dagster's own config schemas; the run pod's Job, built by
dagster-k8s's own launch path and validated strictly against the Kubernetes schemas; and the
same settings as the production dagster.yaml that `make stack` runs."""

from __future__ import annotations

import copy

import pytest
import yaml

from insurance_pipeline.deploy.plan import validate_objects
from insurance_pipeline.domain.layout import CHECKOUT
from insurance_pipeline_tests.helpers import definitions
from tooling import dagster_chart as chart

pytestmark = pytest.mark.dagster


@pytest.fixture(scope="module")
def values():
    return chart.load_values()


@pytest.fixture(scope="module")
def rendered(values):
    return chart.instance_config(values)


def problems(values) -> list[str]:
    return chart.validate_instance_config(
        chart.instance_config(values), chart.pod_environment(values)
    )


def test_the_instance_config_passes_dagsters_own_schemas(values, rendered):
    assert problems(values) == []
    assert rendered["run_launcher"]["class"] == "K8sRunLauncher"
    assert rendered["run_storage"]["class"] == "PostgresRunStorage"
    assert rendered["run_storage"]["config"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert rendered["compute_logs"]["class"] == "S3ComputeLogManager"


def test_a_wrong_setting_is_reported_by_dagster(values):
    wrong = copy.deepcopy(values)
    launcher = wrong["runLauncher"]["config"]["k8sRunLauncher"]
    launcher["runK8sConfig"]["containerConfig"] = launcher["runK8sConfig"].pop("container_config")
    found = problems(wrong)
    assert found and "containerConfig" in " ".join(found)

    unmapped = copy.deepcopy(values)
    unmapped["runLauncher"]["config"]["k8sRunLauncher"]["imagePullSecretz"] = []
    with pytest.raises(chart.ChartValuesError, match="imagePullSecretz"):
        chart.instance_config(unmapped)


def test_the_chart_runs_the_instance_settings_make_stack_runs(rendered):
    """One set of instance settings: the chart's values and deploy/dagster/dagster.yaml agree."""
    local = yaml.safe_load((CHECKOUT / "deploy" / "dagster" / "dagster.yaml").read_text())
    assert rendered["concurrency"] == local["concurrency"]
    assert rendered["run_monitoring"] == local["run_monitoring"]
    assert rendered["run_coordinator"]["class"] == local["run_coordinator"]["class"]
    for key in ("prefix", "skip_empty_files"):
        assert rendered["compute_logs"]["config"][key] == local["compute_logs"]["config"][key]
    assert rendered["compute_logs"]["class"] == local["compute_logs"]["class"]


@pytest.fixture(scope="module")
def run_job(values, tmp_path_factory):
    job_def = definitions().resolve_job_def("training")
    return chart.run_pod_job(values, job_def, tmp_path_factory.mktemp("k8s"))


def test_the_run_pod_job_is_valid_kubernetes(run_job):
    namespace, job = run_job
    assert namespace == chart.RELEASE["namespace"]
    assert validate_objects([job]) == []


def test_the_run_pod_runs_the_pipeline_image_with_the_locations_settings(values, run_job):
    _, job = run_job
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    deployment = chart.code_location(values)
    assert container["image"] == f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    assert container["args"][:3] == ["dagster", "api", "execute_run"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["INSURANCE_DEPLOYMENT"] == "production"
    assert env["INSURANCE_CACHE_DIR"].startswith("s3://")
    assert env["INSURANCE_SIGNING_KEY"].startswith("/var/run/insurance/")
    secrets = {s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s}
    assert "insurance-pipeline-env" in secrets
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["signing-key"]["readOnly"] and mounts["trusted-keys"]["readOnly"]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["resources"]["requests"]["cpu"] == "2"
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400


def test_a_bad_run_pod_setting_is_refused(values, run_job, tmp_path):
    # dagster-k8s refuses a value of the wrong type while building the Job ...
    wrong = copy.deepcopy(values)
    container = wrong["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["container_config"]
    container["securityContext"]["runAsUser"] = "app"  # a name where Kubernetes wants a uid
    with pytest.raises(ValueError, match="app"):
        chart.run_pod_job(wrong, definitions().resolve_job_def("training"), tmp_path)
    # ... and the strict schemas refuse a field Kubernetes does not have
    _, job = run_job
    bad = copy.deepcopy(job)
    bad["spec"]["template"]["spec"]["containers"][0]["runAsUsr"] = 10001
    found = validate_objects([bad])
    assert found and "runAsUsr" in " ".join(found)


def test_the_header_creates_every_secret_and_configmap_the_values_reference(values):
    """Nothing referenced is left for the operator to guess: each Secret and ConfigMap has
    its `kubectl create` line in the header of values.yaml."""
    import re

    header = chart.VALUES.read_text().split("\nglobal:")[0]
    created = {
        (kind, name)
        for kind, name in re.findall(r"create (secret|configmap)(?: generic)? ([a-z0-9-]+)", header)
    }
    referenced = chart.referenced_objects(values)
    assert referenced <= created, referenced - created
    assert {
        ("secret", "insurance-signing-key"),
        ("configmap", "insurance-trusted-keys"),
        ("secret", "insurance-dask-tls"),
        ("secret", "insurance-pipeline-env"),
    } <= referenced


def test_webserver_daemon_and_code_location_share_one_image(values):
    images = [
        values["dagsterWebserver"]["image"],
        values["dagsterDaemon"]["image"],
        chart.code_location(values)["image"],
    ]
    assert all(image == images[0] for image in images)


def test_only_the_run_pods_hold_the_private_key(values, run_job):
    location = chart.code_location(values)
    env = {item["name"]: item["value"] for item in location["env"]}
    assert "INSURANCE_SIGNING_KEY" not in env and env["INSURANCE_TRUSTED_KEYS"]
    assert all(
        "signing" not in (v.get("secret") or {}).get("secretName", "") for v in location["volumes"]
    )
    _, job = run_job
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["INSURANCE_SIGNING_KEY"] == "/var/run/insurance/signing-key.pem"
    assert env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "True"
    assert pod["securityContext"]["fsGroup"] == 10001  # uid 10001 reads the mounted keys
