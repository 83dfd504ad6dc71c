"""Write benchmark figures into docs/benchmarks.md between marker comments (never README)."""

from __future__ import annotations

import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def update_docs_section(name: str, body: str, page: Path = BENCHMARKS) -> None:
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    text = page.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{page} has no {start} ... {end} markers")
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    page.write_text(pattern.sub(lambda _: f"{start}\n{body.strip()}\n{end}", text))
