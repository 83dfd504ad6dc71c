"""The pipeline's keys, as a resource: a `Signer` (the private key) for whatever records a
statement, and a `Verifier` (the trusted public keys) for whatever believes one."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from insurance_pipeline.core.trust.keys import Signer, Verifier


class TrustResource(ConfigurableResource):
    signing_key: str = Field(description="The private signing key, PEM (INSURANCE_SIGNING_KEY)")
    trusted_keys: list[str] = Field(
        default_factory=list,
        description="Trusted public keys, PEM (INSURANCE_TRUSTED_KEYS); empty: the signing "
        "key's own public half",
    )

    @classmethod
    def from_settings(
        cls, environment: str | None = None, state_dir: Path | None = None
    ) -> TrustResource:
        """From INSURANCE_SIGNING_KEY and INSURANCE_TRUSTED_KEYS, for the environment."""
        from insurance_pipeline.settings import DeploySettings, StateSettings, TrustSettings

        settings = TrustSettings()
        path = settings.signing_key_path(
            environment or DeploySettings().environment, state_dir or StateSettings().state_dir
        )
        return cls(
            signing_key=str(path), trusted_keys=[str(p) for p in settings.trusted_key_paths()]
        )

    def signer(self) -> Signer:
        return Signer(Path(self.signing_key))

    def verifier(self) -> Verifier:
        return Verifier.of(self.signer(), tuple(Path(p) for p in self.trusted_keys))
