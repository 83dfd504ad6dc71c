"""Image benchmark: build the champion's image with buildah on the Debian base made here, run
its entrypoint as uid 10001, and measure start-to-ready, RSS and image size. The reference,
measured in the same run, is the same service started from the serving-only venv on the same
artifact. Talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]  # _docs, and the (unshipped) tooling

from _docs import update_docs_section  # noqa: E402

from insurance_pipeline.deploy.plan import DeployTarget, build_command, stage_build_context  # noqa: E402
from insurance_pipeline.release import Release  # noqa: E402
from insurance_pipeline.resources import MlflowResource, TrustResource  # noqa: E402
from tooling.container import image_size_bytes, running_image  # noqa: E402
from tooling.images import ensure_base_image  # noqa: E402

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
READY = "/api/health/ready"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(port: int, started: float, timeout: float = 60) -> float:
    while time.monotonic() - started < timeout:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{READY}", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"not ready within {timeout} s")


def rss_mib(pids: list[int]) -> float:
    return sum(psutil.Process(pid).memory_info().rss for pid in pids) / 2**20


def fetch(version, workdir: Path) -> tuple[Path, str]:
    """The version's serving artifact, verified against its signed approval, and its pin."""
    release = Release.of(MlflowResource.from_settings(), TrustResource.from_settings())
    approval = release.approval(version)
    return release.fetch_served(version, approval, workdir), release.served_digest(approval)


def build(champion, base: str, workdir: Path) -> tuple[str, float]:
    version = int(champion.version)
    target = DeployTarget(
        registry="localhost",
        builder="buildah",
        base_image=base,
        build_volumes=(f"{CA_BUNDLE}:{CA_BUNDLE}:ro",) if Path(CA_BUNDLE).exists() else (),
    )
    model_dir, sha = fetch(champion, stage_build_context(workdir / "context"))
    command = build_command(
        target, version=version, model_sha256=sha, context_dir=model_dir.parent, binary="buildah"
    )
    started = time.monotonic()
    subprocess.run(command, check=True, capture_output=True)
    return f"{target.repository}:v{version}", time.monotonic() - started


def measure_image(image: str, runs: int) -> tuple[float, float]:
    """Best start-to-ready over `runs` starts, and RSS after a few predictions."""
    ready, rss = [], 0.0
    for _ in range(runs):
        port = free_port()
        started = time.monotonic()
        with running_image(
            image, env={"SERVICE_HOST": "127.0.0.1", "SERVICE_PORT": str(port)}
        ) as c:
            ready.append(wait_ready(port, started))
            warm(port)
            rss = rss_mib(c.service_pids())
    return min(ready), rss


def measure_reference(python: str, artifact: Path, runs: int) -> tuple[float, float]:
    ready, rss = [], 0.0
    for _ in range(runs):
        port = free_port()
        started = time.monotonic()
        process = subprocess.Popen(
            [python, "-m", "insurance_pipeline.serving", "--artifact-dir", str(artifact)]
            + ["--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            ready.append(wait_ready(port, started))
            warm(port)
            rss = rss_mib([process.pid])
        finally:
            process.terminate()
            process.wait(10)
    return min(ready), rss


def warm(port: int) -> None:
    from insurance_pipeline.serving.schemas import EXAMPLE_INPUT

    url = f"http://127.0.0.1:{port}/api/models/insurance_charges_model/prediction"
    for _ in range(50):
        assert httpx.post(url, json=EXAMPLE_INPUT).status_code == 200


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update-docs", "--update-readme", dest="update_docs", action="store_true")
    parser.add_argument("--service-python", default=str(ROOT / ".venv-serving" / "bin" / "python"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    champion = MlflowResource.from_settings().alias_version("champion")
    if champion is None:
        raise SystemExit("no champion: run `make run` first")
    version = int(champion.version)
    base = ensure_base_image(log=lambda line: print(line, file=sys.stderr))
    with tempfile.TemporaryDirectory() as tmp:
        image, build_s = build(champion, base, Path(tmp))
        artifact, _ = fetch(champion, Path(tmp) / "artifact")
        python = args.service_python if Path(args.service_python).exists() else sys.executable
        ref_ready, ref_rss = measure_reference(python, artifact, args.runs)
        ready, rss = measure_image(image, args.runs)
    size = image_size_bytes(image) / 2**20
    body = f"""
Measured {dt.date.today().isoformat()} on {os.cpu_count()} cores, Python {platform.python_version()}: the image of champion v{version}, built with buildah on the debootstrap bookworm base (build {build_s:.0f} s with cached layers where unchanged), entrypoint run as uid 10001 with `buildah run --isolation chroot`; best of {args.runs} starts. Reference in the same run: the same service from `.venv-serving` on the same artifact.

| measure | image | reference (venv) | goal |
| --- | --- | --- | --- |
| process start to `/api/health/ready` 200 | {ready:.2f} s | {ref_ready:.2f} s | ≤ 3 s |
| service RSS after 50 predictions | {rss:.0f} MiB | {ref_rss:.0f} MiB | ≤ 120 MiB |
| image size | {size:.0f} MiB | | |
"""
    print(body)
    if args.update_docs:
        update_docs_section("image", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
