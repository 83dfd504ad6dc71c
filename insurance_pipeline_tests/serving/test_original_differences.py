"""docs/original.md's table, checked: every original name marked `same` is matched by the
running service, the rendered chart, the Dockerfile or the code; every other row says what is
done instead and why. A name that stops matching fails here until the table lists it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from insurance_pipeline.deploy.plan import render_chart
from insurance_pipeline.resources.deploy import DeployRunnerResource
from insurance_pipeline.serving.schemas import EXAMPLE_INPUT

pytestmark = pytest.mark.servers

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "docs" / "original.md"
KINDS = {"api", "log", "chart", "image", "make", "code"}


def rows() -> list[dict]:
    found = []
    for line in TABLE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in KINDS:
            kind, original, status, note = cells
            token = re.search(r"`([^`]+)`", original)
            found.append(
                {
                    "kind": kind,
                    "original": original,
                    "token": token.group(1) if token else None,
                    "status": status,
                    "note": note,
                }
            )
    return found


ROWS = rows()


def test_the_table_lists_every_kind_of_name_once():
    assert len(ROWS) >= 100
    originals = [r["original"] for r in ROWS]
    assert len(originals) == len(set(originals)), "a name listed twice"
    assert {r["kind"] for r in ROWS} == KINDS
    assert {r["status"] for r in ROWS} == {"same", "differs"}


def test_every_difference_says_what_instead_and_why():
    for row in ROWS:
        if row["status"] == "differs":
            assert len(row["note"]) >= 20, row


def leaves(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaves(value, f"{path}.{index}" if path else str(index))
    else:
        yield path, "" if node is None else str(node)


@pytest.fixture(scope="module")
def evidence(service):
    """What each kind is matched against, from the real things."""
    answer = httpx.post(
        service.url + "/api/models/insurance_charges_model/prediction", json=EXAMPLE_INPUT
    )
    assert answer.status_code == 200
    charges = answer.json()["charges"]
    records = service.logs_until(lambda rs: any(r.get("charges") == charges for r in rs))
    openapi = httpx.get(service.url + "/openapi.json").json()
    objects = render_chart(
        {"model.version": "7", "model.sha256": "ab" * 32}, helm=DeployRunnerResource().helm()
    )
    product = [
        p
        for folder in ("insurance_pipeline", "deploy")
        for p in (ROOT / folder).rglob("*")
        if p.is_file() and p.suffix in {".py", ".yaml", ".tpl", ".json", ".toml"}
    ]
    return {
        "api": json.dumps(openapi, ensure_ascii=False),
        "log": {r[key] for r in records for key in ("message", "name")}
        | {k for r in records for k in r},
        "chart": [leaf for o in objects for leaf in leaves(o)],
        "image": (ROOT / "Dockerfile").read_text(),
        "make": (ROOT / "Makefile").read_text()
        + "".join(p.read_text() for p in (ROOT / "tooling").glob("*.py")),
        "code": "".join(p.read_text() for p in product),
    }


def matched(row: dict, evidence: dict) -> bool:
    token, kind = row["token"], row["kind"]
    if kind == "log":
        return token in evidence["log"]
    if kind == "chart":
        key, _, value = token.partition(": ")
        return any(
            (path == key or path.endswith("." + key)) and found == value
            for path, found in evidence["chart"]
        )
    if kind == "image":
        return f"{token}=" in evidence["image"]
    return token in evidence[kind]


@pytest.mark.parametrize(
    "row", [r for r in ROWS if r["status"] == "same"], ids=lambda r: r["token"]
)
def test_each_name_marked_same_is_matched(row, evidence):
    assert row["token"], f"{row['original']}: a name marked same must be named in backticks"
    assert matched(row, evidence), (
        f"{row['kind']} {row['original']!r} is marked same in docs/original.md but is not "
        "matched: match it again, or list what is done instead and why"
    )
