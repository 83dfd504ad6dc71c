from __future__ import annotations

from dagster import ConfigurableIOManager, ConfigurableResource, InputContext, OutputContext
from pydantic import Field

from insurance_pipeline.cache.store import CacheIntegrityError, StepCache
from insurance_pipeline.resources.trust import TrustResource
from insurance_pipeline.settings import CacheSettings

CACHE_KEY = "cache_key"


class StepCacheResource(ConfigurableResource):
    """The content-keyed step cache (a folder, INSURANCE_CACHE_DIR); its entries are signed
    with the pipeline's key and read only when a trusted key signed them."""

    root_dir: str = Field(description="Cache folder (INSURANCE_CACHE_DIR)")
    trust: TrustResource
    bytes_limit: int | None = Field(
        default=None,
        description="Retention: least-recently-used entries beyond this are pruned",
    )

    def store(self, warn=None) -> StepCache:
        return StepCache(
            self.root_dir,
            bytes_limit=self.bytes_limit,
            signer=self.trust.signer() if self.trust.can_sign else None,
            verifier=self.trust.verifier(),
            warn=warn,
            max_entry_bytes=CacheSettings().max_entry_bytes,
        )


class StepCacheIOManager(ConfigurableIOManager):
    """The one store of asset values: the step cache itself.

    A cached asset has already stored its value under its cache key when it returns, and says
    which key in its metadata; nothing is written twice. A downstream step loads the value of
    its upstream's latest materialization from that entry, after the store checked the file
    against the sha256 recorded when it was written.
    """

    step_cache: StepCacheResource

    def handle_output(self, context: OutputContext, obj) -> None:
        key = context.output_metadata.get(CACHE_KEY)
        step = context.asset_key.to_user_string()
        key = getattr(key, "value", key)
        if not key or not self.step_cache.store().contains(step, key):
            raise RuntimeError(
                f"asset {step} returned a value that is not in the step cache: a value-returning "
                "asset must store it with run_cached and report its cache_key"
            )

    def load_input(self, context: InputContext):
        upstream = context.asset_key
        event = context.instance.get_latest_materialization_event(upstream)
        materialization = event.asset_materialization if event else None
        if materialization is None or CACHE_KEY not in materialization.metadata:
            raise RuntimeError(
                f"{upstream.to_user_string()} has no stored value: materialize it first"
            )
        key = materialization.metadata[CACHE_KEY].value
        try:
            return self.step_cache.store().load(upstream.to_user_string(), key).value
        except CacheIntegrityError as error:
            raise RuntimeError(
                f"{error}; it was not loaded: materialize {upstream.to_user_string()} again"
            ) from None
