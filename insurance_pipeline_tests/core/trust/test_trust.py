"""The trust anchor: keys generated as they should be, statements that verify only as signed,
the OpenSSF signature of a folder, and the default local key on first use."""

import json
import multiprocessing
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from insurance_pipeline.core.trust.files import (
    file_statement,
    sign_folder,
    signed_sha256,
    verify_folder,
)
from insurance_pipeline.core.trust.keys import Signer, TrustError, Verifier, generate_key
from insurance_pipeline.core.trust.statements import (
    UntrustedStatement,
    open_statement,
    sign_statement,
)
from insurance_pipeline.domain.layout import CHECKOUT

pytestmark = pytest.mark.pure


@pytest.fixture
def signer(tmp_path) -> Signer:
    return Signer(generate_key(tmp_path / "keys" / "key.pem"))


def test_a_generated_key_is_private_to_its_owner(signer):
    assert stat.S_IMODE(signer.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(signer.path.parent.stat().st_mode) == 0o700
    assert generate_key(signer.path) == signer.path  # generated once, then reused


def _generate(path: str, queue) -> None:
    queue.put(Signer(generate_key(Path(path))).key_id)


def test_processes_generating_at_once_end_with_one_key(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    path = str(tmp_path / "race" / "key.pem")
    workers = [ctx.Process(target=_generate, args=(path, queue)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert len({queue.get() for _ in workers}) == 1


def test_a_statement_verifies_only_as_signed_by_a_trusted_key(signer, tmp_path):
    text = sign_statement("verdict", {"gate": "r2_floor", "passed": False}, signer)
    trusted = Verifier.of(signer)
    assert open_statement(text, "verdict", trusted) == {"gate": "r2_floor", "passed": False}
    forged = json.loads(text)
    forged["payload"]["passed"] = True
    with pytest.raises(UntrustedStatement, match="does not verify"):
        open_statement(json.dumps(forged), "verdict", trusted)
    with pytest.raises(UntrustedStatement, match="a signed verdict, not a approval"):
        open_statement(text, "approval", trusted)
    stranger = Signer(generate_key(tmp_path / "other" / "key.pem"))
    with pytest.raises(UntrustedStatement, match="trusted key"):
        open_statement(text, "verdict", Verifier.of(stranger))
    for junk in (None, "", "not json", json.dumps({"kind": "verdict"})):
        with pytest.raises(UntrustedStatement):
            open_statement(junk, "verdict", trusted)
    # rotation: trusting both keys accepts what either signed
    public = tmp_path / "old.pub"
    public.write_bytes(signer.public_pem())
    both = Verifier((public, stranger.path))
    assert open_statement(text, "verdict", both)["gate"] == "r2_floor"


def test_a_file_statement_is_bound_to_its_subject(signer):
    subject = {"model_key": "m1", "run_id": "r1", "path": "model/model.pkl"}
    text = file_statement(subject, "a" * 64, signer)
    assert signed_sha256(text, subject, Verifier.of(signer)) == "a" * 64
    with pytest.raises(TrustError, match="signed for"):
        signed_sha256(text, {**subject, "run_id": "r2"}, Verifier.of(signer))


def test_the_openssf_signature_covers_every_file_of_the_folder(signer, tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / "model.npz").write_bytes(b"arrays")
    (folder / "manifest.json").write_text("{}")
    sign_folder(folder, signer)
    verify_folder(folder, Verifier.of(signer), "the folder")
    # the library's own verifier, as anyone would run it, with the public key
    public = tmp_path / "key.pub"
    public.write_bytes(signer.public_pem())
    from model_signing import verifying

    verifying.Config().use_elliptic_key_verifier(public_key=public).verify(
        folder, folder / "model.sig"
    )
    (folder / "model.npz").write_bytes(b"forged")
    with pytest.raises(TrustError, match="the folder: the OpenSSF signature does not verify"):
        verify_folder(folder, Verifier.of(signer), "the folder")
    (folder / "model.npz").write_bytes(b"arrays")
    (folder / "extra.bin").write_bytes(b"planted")
    with pytest.raises(TrustError, match="extra"):
        verify_folder(folder, Verifier.of(signer), "the folder")


def test_local_generates_its_key_on_first_use_and_production_requires_one(tmp_path):
    code = (
        "from insurance_pipeline.resources import TrustResource as T; "
        "print(T.from_settings().signing_key)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSURANCE_")}
    local = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "INSURANCE_STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        cwd=CHECKOUT,
    )
    assert local.returncode == 0, local.stderr
    key = Path(local.stdout.strip().splitlines()[-1])
    assert key == tmp_path / ".keys" / "signing-key.pem" and key.is_file()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    production = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "INSURANCE_STATE_DIR": str(tmp_path), "INSURANCE_DEPLOYMENT": "production"},
        capture_output=True,
        text=True,
        cwd=CHECKOUT,
    )
    assert production.returncode != 0
    assert "INSURANCE_SIGNING_KEY is not set" in production.stderr
    missing = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "INSURANCE_SIGNING_KEY": str(tmp_path / "nope.pem")},
        capture_output=True,
        text=True,
        cwd=CHECKOUT,
    )
    assert missing.returncode != 0 and "INSURANCE_SIGNING_KEY=" in missing.stderr
