from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from insurance_pipeline.cache.store import StepCache
from insurance_pipeline.settings import get_settings


class StepCacheResource(ConfigurableResource):
    """The content-keyed step cache (a folder; default under the project's state dir)."""

    root_dir: str | None = Field(
        default=None, description="Cache folder; default INSURANCE_CACHE_DIR"
    )
    bytes_limit: int | None = Field(
        default=None,
        description="Retention: least-recently-used entries beyond this are pruned",
    )

    def store(self) -> StepCache:
        return StepCache(self.root_dir or get_settings().cache_dir, bytes_limit=self.bytes_limit)
