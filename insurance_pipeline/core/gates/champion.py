"""The champion record: which version is champion, as the pipeline signed it.

An alias in the registry is a pointer anyone with write access can move or delete, so it
decides nothing. Each time registration (or a person, `cli promote`) makes a version champion,
a record is signed: the model's name, the version and its model key, a sequence number one
above the previous record's, the previous champion, why, and the sha256 of the version's
signed approval. The champion is the version of the valid record with the highest sequence
number; the alias only mirrors it. A record stored under another sequence number than the one
it was signed with, or older than one already acted on, is a replay.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from insurance_pipeline.core.trust.keys import Signer, TrustError, Verifier
from insurance_pipeline.core.trust.statements import (
    UntrustedStatement,
    open_statement,
    sign_statement,
)

STATEMENT = "champion-record"
RECORD_TAG_PREFIX = "champion.record."


def record_tag(sequence: int) -> str:
    """The registered model's tag that holds the record with this sequence number (zero
    padded, so the tags sort by sequence)."""
    return f"{RECORD_TAG_PREFIX}{sequence:08d}"


def approval_digest(approval_statement: str) -> str:
    return hashlib.sha256(approval_statement.encode()).hexdigest()


class ChampionError(TrustError):
    """The champion cannot be told: the alias disagrees with the signed record, a record is
    replayed, or a version cannot be promoted. The message names both sides."""


@dataclass(frozen=True)
class ChampionRecord:
    model_name: str
    version: int
    model_key: str
    sequence: int
    previous_version: int | None
    approval_sha256: str
    reason: str

    def sign(self, signer: Signer) -> str:
        return sign_statement(STATEMENT, asdict(self), signer)

    def describe(self) -> str:
        return f"v{self.version} (record {self.sequence}: {self.reason})"


def next_record(
    previous: ChampionRecord | None,
    *,
    model_name: str,
    version: int,
    model_key: str,
    approval_statement: str,
    reason: str,
) -> ChampionRecord:
    """The record that makes `version` champion after `previous` (None: the first)."""
    return ChampionRecord(
        model_name=model_name,
        version=int(version),
        model_key=model_key,
        sequence=previous.sequence + 1 if previous else 1,
        previous_version=previous.version if previous else None,
        approval_sha256=approval_digest(approval_statement),
        reason=reason,
    )


@dataclass(frozen=True)
class RecordScan:
    """What a registered model's tags say about its champion."""

    latest: ChampionRecord | None
    refused: tuple[str, ...] = field(default=())  # tags that hold no valid record, and why


def scan_records(tags: Mapping[str, str], model_name: str, verifier: Verifier) -> RecordScan:
    """The valid record with the highest sequence number among `tags`; a record whose
    signature does not verify, that names another model, or that sits under a tag of another
    sequence number is refused (and listed), never believed."""
    latest, refused = None, []
    for name in sorted(t for t in tags if t.startswith(RECORD_TAG_PREFIX)):
        try:
            record = ChampionRecord(**open_statement(tags[name], STATEMENT, verifier))
        except (UntrustedStatement, TypeError) as error:
            refused.append(f"{name}: {error}")
            continue
        if record.model_name != model_name or record_tag(record.sequence) != name:
            refused.append(
                f"{name}: signed for {record.model_name} record {record.sequence} (replayed)"
            )
            continue
        if latest is None or record.sequence > latest.sequence:
            latest = record
    return RecordScan(latest, tuple(refused))


def check_alias(record: ChampionRecord | None, alias_version: int | None, alias: str) -> None:
    """The alias must mirror the record; a deleted or moved alias is tampering, never
    "no champion yet"."""
    if record is None and alias_version is None:
        return
    if record is None:
        raise ChampionError(
            f"alias {alias!r} points at v{alias_version}, but no signed champion record names "
            "a champion: the alias was set outside the pipeline (or the registry predates "
            f"champion records: `python -m insurance_pipeline.cli promote --version "
            f"{alias_version} --reason ...` signs one)"
        )
    if alias_version != record.version:
        where = "was deleted" if alias_version is None else f"points at v{alias_version}"
        raise ChampionError(
            f"alias {alias!r} {where}, but the signed champion record says "
            f"{record.describe()}: refusing a champion the pipeline did not sign"
        )


def check_not_replayed(record: ChampionRecord | None, acted_on: int | None, where: str) -> None:
    """`record` must not be older than the newest record `where` already acted on."""
    if acted_on is None:
        return
    if record is None or record.sequence < acted_on:
        found = record.describe() if record else "no record"
        raise ChampionError(
            f"the latest valid champion record is {found}, older than record {acted_on}, which "
            f"{where} already acted on: a replayed or deleted record"
        )
