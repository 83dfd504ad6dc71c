"""schemathesis (pinned in the dev extra) against the live service's own OpenAPI document:
every check, a bounded number of examples, a fixed seed. A failure prints schemathesis'
report, with the request that reproduces it."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.servers

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def test_schemathesis_finds_no_failure_with_all_checks(service, tmp_path):
    proc = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{service.url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "60",
            "--seed",
            "20261124",
            "--generation-database",
            "none",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report[-6000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", report)
    assert generated and int(generated.group(1)) >= 300, report[-3000:]
    assert generated.group(1) == generated.group(2), report[-3000:]
