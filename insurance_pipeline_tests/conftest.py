"""Shared fixtures: an isolated state dir (Dagster home, MLflow store, cache, artifacts) per
test module, and the shipped data. Plain helpers are in `helpers`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from insurance_pipeline.core.data.contract import read_insurance_csv, to_typed_frame
from insurance_pipeline_tests.helpers import (
    SHIPPED_CSV,
    Workspace,
    new_workspace,
    patched_environ,
)

LANES = ("pure", "dagster", "servers", "image")


def pytest_collection_modifyitems(config, items):
    """Every test is in a lane (pyproject.toml's markers): one without is an error."""
    unmarked = [item.nodeid for item in items if not any(item.get_closest_marker(m) for m in LANES)]
    if unmarked:
        raise pytest.UsageError(
            "tests without a lane mark (pure, dagster, servers, image): " + ", ".join(unmarked)
        )


@pytest.fixture(scope="session")
def shared_step_cache(tmp_path_factory) -> Path:
    """One step cache for the session. It is content-keyed, so sharing it changes nothing a
    test asserts about registries, gates or deploys, and spares each module a cold TPOT
    search and profile. A module that asserts cold misses sets ISOLATED_CACHE = True."""
    return tmp_path_factory.mktemp("shared_cache")


@pytest.fixture(scope="module")
def workspace(request, tmp_path_factory, shared_step_cache) -> Iterator[Workspace]:
    """A fresh state dir with its own Dagster home, MLflow store and a copy of the CSV, set in
    os.environ for the module."""
    isolated = getattr(request.module, "ISOLATED_CACHE", False)
    ws = new_workspace(
        tmp_path_factory.mktemp("state"), cache_dir=None if isolated else shared_step_cache
    )
    with patched_environ(ws.env()):
        yield ws


@pytest.fixture(scope="session")
def insurance_frame() -> pd.DataFrame:
    return to_typed_frame(read_insurance_csv(SHIPPED_CSV))
