"""The Dagster layer, in Dagster's `dg` layout: one folder per stage (data, training,
validation, registry, deploy), loaded by `definitions.py` with `load_from_defs_folder`.
Assets are thin: they load their inputs, call the pure core, and attach metadata."""

import warnings

from dagster import BetaWarning


def quiet_known_warnings() -> None:
    """Data versions and observable sources are the documented staleness tools, marked
    beta; woodwork still imports pkg_resources. Called once the definitions are loaded:
    Dagster's loader restores the warning filters that importing this package set."""
    warnings.filterwarnings("ignore", category=BetaWarning)
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")


quiet_known_warnings()
