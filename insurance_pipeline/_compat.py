"""Old import paths of modules that moved in the three-deployable layout keep working: an
import of an old name returns the module at its new place (the same module object, under
both names). Standard library only: the service's image ships this file too."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

# old name -> new name; a package entry also maps the modules under it.
MOVED = {
    "insurance_pipeline.assets": "insurance_pipeline.defs",
    "insurance_pipeline.assets._cached": "insurance_pipeline.defs._steps",
    "insurance_pipeline.assets.data": "insurance_pipeline.defs.data.assets",
    "insurance_pipeline.assets.features": "insurance_pipeline.defs.training.features",
    "insurance_pipeline.assets.training": "insurance_pipeline.defs.training.assets",
    "insurance_pipeline.assets.validation": "insurance_pipeline.defs.validation.assets",
    "insurance_pipeline.assets.registry": "insurance_pipeline.defs.registry.assets",
    "insurance_pipeline.assets.deployment": "insurance_pipeline.defs.deploy.assets",
    "insurance_pipeline.schedules": "insurance_pipeline.defs.training.schedule",
    "insurance_pipeline.sensors": "insurance_pipeline.defs.deploy.sensor",
    "insurance_pipeline.data": "insurance_pipeline.core.data",
    "insurance_pipeline.data.schema": "insurance_pipeline.domain.schema",
    "insurance_pipeline.data.hashing": "insurance_pipeline.domain.hashing",
    "insurance_pipeline.features": "insurance_pipeline.core.features",
    "insurance_pipeline.features.spec": "insurance_pipeline.domain.features",
    "insurance_pipeline.features.numpy_dfs": "insurance_pipeline.serving.dfs",
    "insurance_pipeline.modeling": "insurance_pipeline.core.modeling",
    "insurance_pipeline.modeling.export": "insurance_pipeline.core.export",
    "insurance_pipeline.modeling.gates": "insurance_pipeline.core.gates",
}


def new_name(old: str) -> str | None:
    """Where the module once called `old` lives now (None: it did not move)."""
    if old in MOVED:
        return MOVED[old]
    package, _, leaf = old.rpartition(".")
    return f"{MOVED[package]}.{leaf}" if package in MOVED else None


class _Existing(importlib.abc.Loader):
    def __init__(self, module):
        self.module = module

    def create_module(self, spec):
        return self.module

    def exec_module(self, module) -> None:
        pass


class MovedModules(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        target_name = new_name(fullname)
        if target_name is None:
            return None
        module = importlib.import_module(target_name)
        return importlib.util.spec_from_loader(
            fullname, _Existing(module), is_package=hasattr(module, "__path__")
        )


def install() -> None:
    if not any(isinstance(f, MovedModules) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModules())  # before the path finder: no second copy
