"""The pipeline's keys, as a resource: a `Signer` (the private key) for whatever records a
statement, and a `Verifier` (the trusted public keys) for whatever believes one. Its values
come from the operator's environment only (INSURANCE_SIGNING_KEY, INSURANCE_TRUSTED_KEYS):
the Definitions bind it with `defs.resources.environment_only`, so no run config moves it."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from insurance_pipeline.core.trust.keys import Signer, TrustError, Verifier


class TrustResource(ConfigurableResource):
    signing_key: str = Field(
        default="",
        description="The private signing key, PEM (INSURANCE_SIGNING_KEY); empty where this "
        "process only verifies",
    )
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
            signing_key=str(path) if path else "",
            trusted_keys=[str(p) for p in settings.trusted_key_paths()],
        )

    @property
    def can_sign(self) -> bool:
        return bool(self.signing_key)

    def signer(self) -> Signer:
        if not self.signing_key:
            raise TrustError(
                "INSURANCE_SIGNING_KEY is not set: this process holds only the trusted public "
                "keys, and signing a statement needs the pipeline's private key (mounted where "
                "runs execute)"
            )
        return Signer(Path(self.signing_key))

    def verifier(self) -> Verifier:
        signer = self.signer() if self.can_sign else None
        return Verifier.of(signer, tuple(Path(p) for p in self.trusted_keys))
