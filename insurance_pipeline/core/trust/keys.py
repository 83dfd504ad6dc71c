"""The pipeline's signing key (an EC P-256 private key in a PEM file) and the public keys
verifiers trust. EC keys because OpenSSF model signing signs the serving artifact with the
same key (its key-based signer takes elliptic-curve keys)."""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


class TrustError(RuntimeError):
    """A key is missing or unusable, or a statement is not signed by a trusted key."""


@dataclass
class TrustStats:
    """What signing and verifying cost this process (reported by `make run` and benches)."""

    signed: int = 0
    verified: int = 0
    seconds: float = 0.0

    def add(self, started: float, *, signed: int = 0, verified: int = 0) -> None:
        self.signed += signed
        self.verified += verified
        self.seconds += time.perf_counter() - started


STATS = TrustStats()


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:16]


def generate_key(path: Path) -> Path:
    """Create a new private key at `path` (mode 0600, folder 0700), unless one is there: two
    processes doing this at once end with the same key (the first link wins)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists():
        return path
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    handle, tmp = tempfile.mkstemp(prefix=".key-", dir=path.parent)
    try:
        os.fchmod(handle, 0o600)
        os.write(handle, pem)
        os.close(handle)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


@lru_cache(maxsize=16)
def _load_private(path: str, mtime: float) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TrustError(f"signing key {path} is not an elliptic-curve private key")
    return key


@lru_cache(maxsize=64)
def _load_public(path: str, mtime: float) -> ec.EllipticCurvePublicKey:
    data = Path(path).read_bytes()
    if b"PRIVATE KEY" in data:  # a private key file: trust its public half
        return _load_private(path, mtime).public_key()
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise TrustError(f"trusted key {path} is not an elliptic-curve public key")
    return key


def _read(loader, path: Path, what: str):
    try:
        return loader(str(path), path.stat().st_mtime)
    except FileNotFoundError:
        raise TrustError(f"{what} {path} does not exist") from None
    except (ValueError, TypeError) as error:
        raise TrustError(f"{what} {path} is not a PEM key: {error}") from None


@dataclass(frozen=True)
class Signer:
    path: Path

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        return _read(_load_private, self.path, "signing key")

    @property
    def key_id(self) -> str:
        return key_id(self.private_key.public_key())

    def sign(self, payload: bytes) -> str:
        started = time.perf_counter()
        signature = self.private_key.sign(payload, ec.ECDSA(hashes.SHA256()))
        STATS.add(started, signed=1)
        return base64.b64encode(signature).decode()

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass(frozen=True)
class Verifier:
    """The trusted public keys, by key id."""

    paths: tuple[Path, ...]
    extra: tuple[ec.EllipticCurvePublicKey, ...] = field(default=(), compare=False)

    @property
    def keys(self) -> dict[str, ec.EllipticCurvePublicKey]:
        found = [_read(_load_public, p, "trusted key") for p in self.paths] + list(self.extra)
        return {key_id(k): k for k in found}

    def verify(self, payload: bytes, signature: str, signed_by: str) -> bool:
        """True when a trusted key with id `signed_by` signed exactly `payload`."""
        started = time.perf_counter()
        key = self.keys.get(signed_by)
        try:
            if key is None:
                return False
            key.verify(base64.b64decode(signature), payload, ec.ECDSA(hashes.SHA256()))
            return True
        except (InvalidSignature, ValueError):
            return False
        finally:
            STATS.add(started, verified=1)

    def public_pems(self) -> dict[str, bytes]:
        """Each trusted key as a PEM public key, by id (for verifiers that read files)."""
        return {
            kid: key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            for kid, key in self.keys.items()
        }

    @classmethod
    def of(cls, signer: Signer | None, paths: tuple[Path, ...] = ()) -> Verifier:
        """Trust `paths`; with none, the signer's own public half."""
        if paths:
            return cls(tuple(paths))
        if signer is None:
            raise TrustError("no trusted key: set INSURANCE_TRUSTED_KEYS")
        return cls((), (signer.private_key.public_key(),))
