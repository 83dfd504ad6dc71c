"""`python -m tooling.manifests [--artifact-dir DIR] [--out FILE]`: plain Kubernetes
manifests for a local cluster without a registry, as the original's `kubectl apply` flow.

The chart is rendered (`helm template`) with deploy/helm/values-local.yaml (the image
`insurance-charges-model:v<version>`, loaded into the node, `imagePullPolicy: Never`) and
the exported champion's version and pin (`make manifests` exports it first). MODEL_TRUSTED_KEY,
a PEM public key file, makes the pods check the folder's signature, as the deployer's do.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from insurance_pipeline.compiled.artifact import ArtifactError, manifest_digest, read_manifest
from insurance_pipeline.deploy.plan import (
    CHART,
    ChartError,
    DeployTarget,
    helm_values,
    render_chart,
)
from insurance_pipeline.domain.layout import CHECKOUT

LOCAL_VALUES = CHART.parent / "values-local.yaml"
DEFAULT_OUT = Path(".artifacts") / "manifests" / "model_service.yaml"  # the original's name


def render_manifests(artifact_dir: Path, *, helm: str, trusted_key: Path | None = None) -> str:
    """The chart's objects for the model exported at `artifact_dir`, as one YAML stream."""
    digest = manifest_digest(artifact_dir)
    manifest = read_manifest(artifact_dir, digest)
    local = yaml.safe_load(LOCAL_VALUES.read_text())["image"]
    target = DeployTarget(registry="", image_name=local["repository"])
    pem = trusted_key.read_text() if trusted_key else ""
    values = helm_values(target, manifest.version, digest, trusted_key=pem)
    objects = render_chart(values, helm=helm, values_files=(str(LOCAL_VALUES),))
    header = (
        f"# Rendered by `make manifests` from deploy/helm ({LOCAL_VALUES.name}) for model "
        f"version {manifest.version}.\n# Load the image into the cluster's node first "
        f"(docs/deploy.md), then: kubectl apply -f <this file>\n"
    )
    return header + yaml.safe_dump_all(objects, sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    from insurance_pipeline.resources.deploy import DeployRunnerResource
    from insurance_pipeline.serving.settings import ServiceSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact-dir", type=Path, default=ServiceSettings().artifact_dir)
    parser.add_argument("--out", type=Path, default=CHECKOUT / DEFAULT_OUT)
    args = parser.parse_args(argv)
    key = os.environ.get("MODEL_TRUSTED_KEY")
    try:
        text = render_manifests(
            args.artifact_dir,
            helm=DeployRunnerResource().helm(),
            trusted_key=Path(key) if key else None,
        )
    except (ArtifactError, ChartError, OSError) as error:
        print(f"make manifests: {error}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
