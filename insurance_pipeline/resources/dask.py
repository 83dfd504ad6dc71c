from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field


class DaskResource(ConfigurableResource):
    """Where the TPOT search runs: a standing Dask cluster (its scheduler's address,
    DASK_SCHEDULER_ADDRESS), or, empty, a local cluster the search starts itself."""

    scheduler_address: str = Field(
        default="", description="tcp://host:port of a Dask scheduler; empty: local"
    )
