"""Signed statements: a kind, a JSON payload, the signing key's id and an ECDSA signature
over exactly the canonical JSON of kind and payload. `open_statement` returns the payload
only when a trusted key signed it, for that kind."""

from __future__ import annotations

import json
from typing import Any

from insurance_pipeline.core.trust.keys import Signer, TrustError, Verifier


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _signed_bytes(kind: str, payload: Any) -> bytes:
    return canonical_json({"kind": kind, "payload": payload}).encode()


def sign_statement(kind: str, payload: Any, signer: Signer) -> str:
    signature = signer.sign(_signed_bytes(kind, payload))
    return canonical_json(
        {"kind": kind, "payload": payload, "key": signer.key_id, "signature": signature}
    )


class UntrustedStatement(TrustError):
    """Not a statement of this kind signed by a trusted key."""


def open_statement(text: str | None, kind: str, verifier: Verifier) -> Any:
    """The payload of `text`, a statement of `kind` signed by a trusted key; else
    `UntrustedStatement` saying why."""
    if not text:
        raise UntrustedStatement(f"no signed {kind}")
    try:
        envelope = json.loads(text)
        claimed, payload = envelope["kind"], envelope["payload"]
        key, signature = envelope["key"], envelope["signature"]
    except (ValueError, TypeError, KeyError):
        raise UntrustedStatement(f"the {kind} is not a signed statement") from None
    if claimed != kind:
        raise UntrustedStatement(f"a signed {claimed}, not a {kind}")
    if not verifier.verify(_signed_bytes(kind, payload), signature, key):
        raise UntrustedStatement(f"the {kind}'s signature does not verify under a trusted key")
    return payload
