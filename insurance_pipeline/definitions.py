"""The code location: everything under `defs/` (Dagster's `dg` layout, `[tool.dg]` in
pyproject.toml), loaded with `load_from_defs_folder`, run in process.

`defs` is what `dagster … -m insurance_pipeline.definitions` and `workspace.yaml` load;
`build_definitions()` loads it again (the resources follow the environment at that moment).
"""

from __future__ import annotations

from pathlib import Path

from dagster import Definitions, in_process_executor, load_from_defs_folder

from insurance_pipeline.defs import quiet_known_warnings

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def build_definitions() -> Definitions:
    return Definitions.merge(
        load_from_defs_folder(path_within_project=PROJECT_ROOT),
        # In process: the training stack costs ~6 s of imports per step in a subprocess,
        # and the TPOT step parallelises itself through dask.
        Definitions(executor=in_process_executor),
    )


defs = build_definitions()
quiet_known_warnings()
