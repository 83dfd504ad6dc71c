"""Modules that moved keep their old import paths: the same module object under both names,
never a second copy."""

import importlib
import sys

import pytest

from insurance_pipeline._compat import MOVED, new_name


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_old_path_imports_the_module_at_its_new_place(old):
    assert importlib.import_module(old) is importlib.import_module(MOVED[old])


def test_a_module_under_a_moved_package_is_the_same_object():
    old = importlib.import_module("insurance_pipeline.modeling.intervals")
    new = importlib.import_module("insurance_pipeline.core.modeling.intervals")
    assert old is new
    assert new_name("insurance_pipeline.modeling.intervals") == new.__name__
    from insurance_pipeline.modeling.intervals import ConformalInterval

    assert ConformalInterval is new.ConformalInterval
    assert "insurance_pipeline.modeling.intervals" in sys.modules


def test_a_name_that_never_existed_still_fails():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("insurance_pipeline.modeling.no_such_module")
