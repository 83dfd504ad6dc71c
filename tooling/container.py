"""Run a built image's own entrypoint on this machine, where no container engine runs:
`buildah run --isolation chroot --user U <container> -- <entrypoint>` on the host network
(podman run and runc are refused here). Used by the image tests and `make bench`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


def inspect_image(image: str) -> dict:
    proc = subprocess.run(
        ["buildah", "inspect", "--type", "image", image], check=True, capture_output=True, text=True
    )
    return json.loads(proc.stdout)


def image_size_bytes(image: str) -> int:
    proc = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Size}}", image],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(proc.stdout.strip())


@dataclass
class RunningContainer:
    name: str
    process: subprocess.Popen

    def exec(self, *command: str) -> str:
        """Another process in the same container (as root), its stdout."""
        return subprocess.run(
            ["buildah", "run", "--isolation", "chroot", self.name, "--", *command],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def service_pids(self) -> list[int]:
        """The entrypoint's processes, not buildah's own (`buildah-chroot-runtime` and
        `buildah-chroot-exec` wrap the entrypoint and name it in their arguments)."""
        import psutil

        found = []
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                argv = child.cmdline()
            except psutil.Error:
                continue
            if (
                argv
                and not argv[0].startswith("buildah")
                and "insurance_pipeline" in " ".join(argv)
            ):
                found.append(child.pid)
        return found


@contextmanager
def running_image(
    image: str,
    *,
    env: dict[str, str] | None = None,
    user: str = "10001:10001",
    command: list[str] | None = None,
) -> Iterator[RunningContainer]:
    """The image's entrypoint (or `command`) running, until the block ends."""
    config = inspect_image(image)["OCIv1"]["config"]
    entrypoint = command or (config.get("Entrypoint") or []) + (config.get("Cmd") or [])
    name = subprocess.run(
        ["buildah", "from", image], check=True, capture_output=True, text=True
    ).stdout.strip()
    settings = [arg for key, value in (env or {}).items() for arg in ("--env", f"{key}={value}")]
    process = subprocess.Popen(
        ["buildah", "run", "--isolation", "chroot", "--user", user, *settings, name, "--"]
        + entrypoint,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield RunningContainer(name=name, process=process)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        subprocess.run(["buildah", "rm", name], capture_output=True)


def run_in_image(
    image: str,
    *command: str,
    user: str = "10001:10001",
    timeout: float = 300,
    env: dict[str, str] | None = None,
    volumes: tuple[str, ...] = (),
) -> subprocess.CompletedProcess:
    """`command` run once in a fresh container of `image`, its output captured; `env` set in
    it and `volumes` (SRC:DST[:ro]) mounted, as a pod's would be."""
    name = subprocess.run(
        ["buildah", "from", image], check=True, capture_output=True, text=True
    ).stdout.strip()
    options = [f"--env={key}={value}" for key, value in (env or {}).items()]
    options += [f"--volume={volume}" for volume in volumes]
    try:
        return subprocess.run(
            ["buildah", "run", "--isolation", "chroot", "--network", "host", "--user", user]
            + [*options, name, "--", *command],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    finally:
        subprocess.run(["buildah", "rm", name], capture_output=True)
