"""Environment variables set for a block, then restored (tests and tooling alike)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def patched_environ(values: dict[str, str | None]) -> Iterator[None]:
    """Set `values` in os.environ for the block (None: unset it); afterwards each is as it
    was (or unset)."""
    saved = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
