"""A Debian bookworm base image built from Debian's own packages, for machines that cannot
pull images (this one): `debootstrap --variant=minbase` with python3, python3-venv and
ca-certificates, `/usr/local/bin/python` linked to python3, then `podman import`.

The image is cached in the local container storage under a tag keyed by the recipe, so it is
built once per machine (about a minute). `python -m tooling.images`
prints its name, building it if needed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SUITE = "bookworm"
VARIANT = "minbase"
INCLUDE = ("python3", "python3-venv", "ca-certificates")
REPOSITORY = "localhost/insurance-base"
TOOLS = ("buildah", "podman", "debootstrap")


def recipe_key() -> str:
    recipe = {"suite": SUITE, "variant": VARIANT, "include": INCLUDE, "python": "/usr/local/bin"}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def image_name() -> str:
    return f"{REPOSITORY}:{SUITE}-{recipe_key()}"


def missing_tools(tools=TOOLS) -> list[str]:
    return [tool for tool in tools if shutil.which(tool) is None]


def exists(image: str) -> bool:
    proc = subprocess.run(
        ["buildah", "inspect", "--type", "image", image], capture_output=True, text=True
    )
    return proc.returncode == 0


def ensure_base_image(log=print) -> str:
    """The base image's name; built (debootstrap + podman import) only when missing."""
    missing = missing_tools()
    if missing:
        raise RuntimeError(
            f"cannot build the base image: {', '.join(missing)} not installed "
            "(`make install` as root installs them with apt-get)"
        )
    image = image_name()
    if exists(image):
        return image
    with tempfile.TemporaryDirectory(prefix="insurance-base-") as tmp:
        root = Path(tmp) / "rootfs"
        log(f"building {image}: debootstrap --variant={VARIANT} {SUITE} (about a minute)")
        subprocess.run(
            [
                "debootstrap",
                f"--variant={VARIANT}",
                f"--include={','.join(INCLUDE)}",
                SUITE,
                str(root),
            ],
            check=True,
            capture_output=True,
        )
        (root / "usr/local/bin/python").symlink_to("/usr/bin/python3")
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["podman", "import", "-", image], stdin=tar.stdout, check=True, capture_output=True
        )
        if tar.wait() != 0:
            raise RuntimeError(f"tar of {root} failed")
    return image


if __name__ == "__main__":
    try:
        print(ensure_base_image(log=lambda line: print(line, file=sys.stderr)))
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(f"base image: {error}", file=sys.stderr)
        sys.exit(1)
