"""Deploy commands for both builders, and the checks that run before any of them."""

from pathlib import Path

import pytest

from insurance_pipeline.deploy.plan import (
    DeployInputError,
    DeployTarget,
    build_command,
    push_command,
    pushed_digest,
    upgrade_command,
    validate_inputs,
)

pytestmark = pytest.mark.pure

SHA = "ab" * 32


@pytest.mark.parametrize(
    "target, version, sha, named",
    [
        (DeployTarget(), "7", SHA, "model version"),
        (DeployTarget(), 0, SHA, "model version"),
        (DeployTarget(), True, SHA, "model version"),
        (DeployTarget(), 7, "ABC", "model sha256"),
        (DeployTarget(), 7, SHA[:-1] + "g", "model sha256"),
        (DeployTarget(registry="Bad Registry!"), 7, SHA, "image repository"),
        (DeployTarget(registry="reg.io/a,image.repository=evil"), 7, SHA, "image repository"),
        (DeployTarget(builder="kaniko"), 7, SHA, "builder"),
        (DeployTarget(release="--set-file=config.appName=/etc/hostname"), 7, SHA, "release"),
        (DeployTarget(release="a" * 54), 7, SHA, "release"),
        (DeployTarget(namespace="model-services\n  annotations:"), 7, SHA, "namespace"),
        (DeployTarget(namespace="Model_Services"), 7, SHA, "namespace"),
        (DeployTarget(base_image="--build-arg=X=1"), 7, SHA, "base_image"),
        (DeployTarget(base_image="debian:bookworm@sha256:abc"), 7, SHA, "base_image"),
        (DeployTarget(base_image="localhost/base:1;rm -rf /"), 7, SHA, "base_image"),
    ],
)
def test_a_bad_value_is_refused_naming_it(target, version, sha, named):
    with pytest.raises(DeployInputError, match=named):
        validate_inputs(target, version, sha)


@pytest.mark.parametrize("registry", ["registry.local", "127.0.0.1:5000", "ghcr.io/acme/ml"])
def test_good_references_pass(registry):
    validate_inputs(DeployTarget(registry=registry), 7, SHA)


@pytest.mark.parametrize(
    "base",
    [
        "localhost/insurance-base:bookworm-9a133ef63f69",
        "python:3.11.7-slim-bookworm@sha256:" + "6" * 64,
        "127.0.0.1:5000/base",
    ],
)
def test_good_base_images_pass(base):
    validate_inputs(DeployTarget(base_image=base, release="icm", namespace="ml-prod"), 7, SHA)


@pytest.mark.dagster  # loads the code location
def test_the_deployers_programs_and_mounts_come_from_its_environment_not_run_config():
    """Run config (the launchpad) cannot name an executable or a build mount: the resource
    has no such fields; the deployment's environment sets them, checked."""
    import dagster as dg
    from pydantic import ValidationError

    from insurance_pipeline.resources import DeployRunnerResource
    from insurance_pipeline.settings import DeploySettings
    from insurance_pipeline_tests.helpers import definitions, patched_environ

    fields = set(DeployRunnerResource.model_fields)
    assert not fields & {"helm_bin", "docker_bin", "buildah_bin", "build_volumes"}

    deploy_job = definitions().resolve_job_def("deploy")
    ops = {"deployment": {"config": {"model_version": 1}}}
    dg.validate_run_config(deploy_job, {"ops": ops})  # the launchpad's usual config is fine
    for name in ("helm_bin", "docker_bin", "buildah_bin", "build_volumes"):
        config = {"ops": ops, "resources": {"deployer": {"config": {name: "/bin/sh"}}}}
        with pytest.raises(dg.DagsterInvalidConfigError, match=name):
            dg.validate_run_config(deploy_job, config)

    env = {"DEPLOY_HELM_BIN": "/opt/helm", "DEPLOY_BUILDAH_BIN": "/opt/buildah"}
    env["DEPLOY_BUILD_VOLUMES"] = "/etc/ssl/ca.crt:/etc/ssl/certs/ca-certificates.crt:ro"
    with patched_environ(env):
        runner = DeployRunnerResource(builder="buildah")
        assert runner.helm() == "/opt/helm" and runner.builder_binary() == "/opt/buildah"
        assert runner.target().build_volumes == (env["DEPLOY_BUILD_VOLUMES"],)
    for mount in ("/etc:/etc", "relative:/x:ro", "/a:/b:rw"):
        with patched_environ({"DEPLOY_BUILD_VOLUMES": mount}):
            with pytest.raises(ValidationError, match="DEPLOY_BUILD_VOLUMES"):
                DeploySettings()


def test_helm_never_creates_a_namespace_without_its_pod_security_labels():
    command = upgrade_command(DeployTarget(), Path("ours.yaml"), "helm")
    assert "--create-namespace" not in command  # the chart renders it, labelled


def test_buildah_builds_without_a_daemon_and_pushes_with_a_digest_file(tmp_path):
    target = DeployTarget(
        registry="127.0.0.1:5000",
        builder="buildah",
        tls_verify=False,
        build_volumes=("/ca.crt:/etc/ssl/certs/ca-certificates.crt:ro",),
        base_image="localhost/base:1",
    )
    build = build_command(
        target,
        version=7,
        model_sha256=SHA,
        context_dir=tmp_path,
        binary="b",
        created="2026-12-07T00:00:00Z",
        revision="abc123",
    )
    # the original's OCI build arguments
    for arg in ("DATE_CREATED=2026-12-07T00:00:00Z", "REVISION=abc123", "VERSION=7"):
        assert build[build.index(arg) - 1] == "--build-arg"
    assert build[:8] == [
        "b",
        "bud",
        "--isolation",
        "chroot",
        "--network",
        "host",
        "--layers",
        "--format",
    ]
    assert "--volume" in build and "BASE_IMAGE=localhost/base:1" in build
    assert build[-3:] == ["--tag", "127.0.0.1:5000/insurance-charges-model:v7", str(tmp_path)]
    digest_file = tmp_path / "digest"
    push = push_command(target, version=7, digest_file=digest_file, binary="b")
    assert push == [
        "b",
        "push",
        "--tls-verify=false",
        "--digestfile",
        str(digest_file),
        "127.0.0.1:5000/insurance-charges-model:v7",
        "docker://127.0.0.1:5000/insurance-charges-model:v7",
    ]
    digest_file.write_text("sha256:" + "d" * 64)
    assert pushed_digest("buildah", digest_file, "") == "sha256:" + "d" * 64


def test_docker_digest_is_read_from_the_push_output(tmp_path):
    output = "v7: digest: sha256:" + "e" * 64 + " size: 1234\n"
    assert pushed_digest("docker", tmp_path / "none", output) == "sha256:" + "e" * 64
    with pytest.raises(DeployInputError, match="digest"):
        pushed_digest("docker", tmp_path / "none", "pushed, no digest line")


def test_helm_gets_values_files_only_ours_last():
    target = DeployTarget(values_files=("site.yaml",), kube_context="prod")
    command = upgrade_command(target, Path("ours.yaml"), "helm")
    values = [command[i + 1] for i, arg in enumerate(command) if arg == "--values"]
    assert values == ["site.yaml", "ours.yaml"]
    assert not any(arg.startswith("--set") for arg in command)
    assert command[-2:] == ["--kube-context", "prod"]
