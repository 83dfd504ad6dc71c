"""Files the pipeline wrote, as it signs them: a statement of a file's sha256 (the model's
pickle, logged to MLflow), and the serving folder signed with OpenSSF model signing (its
key-based signer, the pipeline's own key), so that anyone can check it with that library's
verifier: `model_signing verify key <folder> --signature <folder>/model.sig
--public_key <key.pub>`."""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from insurance_pipeline.compiled.artifact import SIGNATURE_FILE
from insurance_pipeline.core.trust.keys import STATS, Signer, TrustError, Verifier
from insurance_pipeline.core.trust.statements import open_statement, sign_statement

FILE_STATEMENT = "file"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_statement(subject: Mapping[str, str], sha256: str, signer: Signer) -> str:
    """A signed statement that the file named by `subject` (e.g. a model key, a run, a path)
    had `sha256` when the pipeline wrote it."""
    return sign_statement(FILE_STATEMENT, {**subject, "sha256": sha256}, signer)


def signed_sha256(statement: str | None, subject: Mapping[str, str], verifier: Verifier) -> str:
    """The sha256 a trusted key signed for exactly `subject`; else `TrustError`."""
    payload = open_statement(statement, FILE_STATEMENT, verifier)
    claimed = {k: payload.get(k) for k in subject}
    if claimed != dict(subject):
        raise TrustError(f"the file statement is signed for {claimed}, not for {dict(subject)}")
    return payload["sha256"]


def check_files(folder: Path, expected: Mapping[str, str], what: str) -> None:
    """Every file of `expected` (name -> sha256) in `folder` hashes to its signed digest."""
    for name, sha in expected.items():
        path = folder / name
        actual = sha256_of(path) if path.is_file() else "missing"
        if actual != sha:
            raise TrustError(
                f"{what}: {name} has sha256 {actual}, but the signed approval says {sha}"
            )


def sign_folder(folder: Path, signer: Signer) -> Path:
    """Sign every file of `folder` with OpenSSF model signing; the signature goes in the
    folder as `model.sig` (which the signature itself leaves out)."""
    from model_signing import hashing, signing

    started = time.perf_counter()
    signature = folder / SIGNATURE_FILE
    signature.unlink(missing_ok=True)
    (
        signing.Config()
        .use_elliptic_key_signer(private_key=signer.path)
        .set_hashing_config(hashing.Config().set_ignored_paths(paths=[SIGNATURE_FILE]))
        .sign(folder, signature)
    )
    STATS.add(started, signed=1)
    return signature


def verify_folder(folder: Path, verifier: Verifier, what: str) -> bytes:
    """The folder's OpenSSF signature verifies under one of the trusted keys, and the folder
    holds exactly the files it signed; else `TrustError` naming what failed. Returns that
    key, PEM (what the service is given to check the folder again)."""
    from model_signing import verifying

    signature = folder / SIGNATURE_FILE
    if not signature.is_file():
        raise TrustError(f"{what}: {SIGNATURE_FILE} is missing")
    started, problems = time.perf_counter(), []
    with tempfile.TemporaryDirectory() as tmp:
        for key_id, pem in verifier.public_pems().items():
            public = Path(tmp) / f"{key_id}.pub"
            public.write_bytes(pem)
            try:
                verifying.Config().use_elliptic_key_verifier(public_key=public).verify(
                    folder, signature
                )
                STATS.add(started, verified=1)
                return pem
            except Exception as error:  # noqa: BLE001 - each key's reason is reported
                problems.append(f"key {key_id}: {error}")
    raise TrustError(f"{what}: the OpenSSF signature does not verify: " + "; ".join(problems))
