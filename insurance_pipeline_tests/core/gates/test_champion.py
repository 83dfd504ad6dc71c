"""The champion record (core.gates.champion): the champion is the valid signed record with the
highest sequence number; forged, foreign and replayed records are refused, never believed; an
alias that disagrees with the record, or a record older than one already acted on, is
tampering."""

from pathlib import Path

import pytest

from insurance_pipeline.core.gates.champion import (
    ChampionError,
    check_alias,
    check_not_replayed,
    next_record,
    record_tag,
    scan_records,
)
from insurance_pipeline.core.trust.keys import Signer, Verifier, generate_key

pytestmark = pytest.mark.pure

MODEL = "insurance_charges_model"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    ours = Signer(generate_key(folder / "ours.pem"))
    theirs = Signer(generate_key(folder / "theirs.pem"))
    return ours, theirs, Verifier.of(ours)


def chain(signer, *versions):
    """Tags holding the records that made each of `versions` champion in turn."""
    tags, record = {}, None
    for version in versions:
        record = next_record(
            record,
            model_name=MODEL,
            version=version,
            model_key=f"key-{version}",
            approval_statement=f"approval of {version}",
            reason="registered",
        )
        tags[record_tag(record.sequence)] = record.sign(signer)
    return tags, record


def test_the_latest_valid_record_names_the_champion(keys):
    ours, _, verifier = keys
    tags, last = chain(ours, 1, 2, 3)
    scan = scan_records(tags, MODEL, verifier)
    assert scan.latest == last and scan.refused == ()
    assert (last.version, last.sequence, last.previous_version) == (3, 3, 2)
    assert record_tag(12) == "champion.record.00000012"


def test_forged_foreign_and_replayed_records_are_refused(keys):
    ours, theirs, verifier = keys
    tags, _ = chain(ours, 1, 2)
    forged, _ = chain(theirs, 1, 2, 5)  # signed by another key
    tags[record_tag(3)] = forged[record_tag(3)]
    tags[record_tag(4)] = tags[record_tag(1)]  # record 1, replayed under a newer number
    tags[record_tag(5)] = '{"kind": "champion-record", "payload": {}}'
    scan = scan_records(tags, MODEL, verifier)
    assert scan.latest.sequence == 2 and scan.latest.version == 2
    assert len(scan.refused) == 3
    assert any("does not verify" in r for r in scan.refused)
    assert any("record 1 (replayed)" in r for r in scan.refused)
    other = scan_records(chain(ours, 1)[0], "another_model", verifier)
    assert other.latest is None and "signed for insurance_charges_model" in other.refused[0]


def test_an_alias_that_disagrees_with_the_record_is_tampering(keys):
    ours, _, _ = keys
    _, record = chain(ours, 1, 2)
    check_alias(record, 2, "champion")
    check_alias(None, None, "champion")  # nothing registered yet
    with pytest.raises(ChampionError, match=r"'champion' points at v1, but .* says v2"):
        check_alias(record, 1, "champion")
    with pytest.raises(ChampionError, match=r"'champion' was deleted, but .* says v2"):
        check_alias(record, None, "champion")
    with pytest.raises(ChampionError, match="no signed champion record"):
        check_alias(None, 4, "champion")


def test_a_record_older_than_one_acted_on_is_a_replay(keys):
    ours, _, _ = keys
    _, record = chain(ours, 1, 2)
    check_not_replayed(record, None, "deploys")
    check_not_replayed(record, 2, "deploys")
    with pytest.raises(ChampionError, match="older than record 3, which deploys already"):
        check_not_replayed(record, 3, "deploys")
    with pytest.raises(ChampionError, match="no record"):
        check_not_replayed(None, 1, "deploys")


def test_a_signed_record_verifies_only_for_its_payload(keys, tmp_path: Path):
    ours, _, verifier = keys
    tags, _ = chain(ours, 1)
    tags[record_tag(1)] = tags[record_tag(1)].replace('"version":1', '"version":7')
    assert scan_records(tags, MODEL, verifier).latest is None
