"""The serving folder's OpenSSF model signature, checked by the service itself where it is
given a trusted public key (MODEL_TRUSTED_KEY; required in production): every file of the
folder as signed by the pipeline's key, and nothing else in it.

The check runs `model_signing` (PyPI `model-signing`, which needs `pyopenssl`: the service's
`verify` extra, installed in the image) in a child process, so the service itself never
imports sigstore and its dependencies: they would stay in its memory for a check made once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from insurance_pipeline.compiled.artifact import SIGNATURE_FILE, ArtifactError

SECONDS = 30


def verify_signature(folder: Path, public_key: Path) -> None:
    """`ArtifactError` unless `folder`'s signature verifies under `public_key`."""
    signature = folder / SIGNATURE_FILE
    if not signature.is_file():
        raise ArtifactError(f"{folder}: {SIGNATURE_FILE} is missing: an unsigned folder")
    if not public_key.is_file():
        raise ArtifactError(f"MODEL_TRUSTED_KEY={public_key}: no such file")
    try:
        done = subprocess.run(
            [sys.executable, "-m", __name__, str(folder), str(public_key)],
            capture_output=True,
            text=True,
            timeout=SECONDS,
        )
    except subprocess.TimeoutExpired:
        raise ArtifactError(f"{folder}: the signature check took over {SECONDS} s") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no reason given"])[-1]
        raise ArtifactError(f"{folder}: the OpenSSF signature does not verify: {reason}")


def _check(folder: Path, public_key: Path) -> None:
    try:
        from model_signing import verifying
    except ImportError as error:
        raise SystemExit(
            f"model-signing is not installed ({error}): install the service with its `verify` extra"
        ) from None
    try:
        verifying.Config().use_elliptic_key_verifier(public_key=public_key).verify(
            folder, folder / SIGNATURE_FILE
        )
    except Exception as error:  # noqa: BLE001 - the library's reason, passed on
        raise SystemExit(f"{type(error).__name__}: {error}") from None


if __name__ == "__main__":
    _check(Path(sys.argv[1]), Path(sys.argv[2]))
