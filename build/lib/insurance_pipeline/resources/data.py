from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from insurance_pipeline.settings import get_settings


class InsuranceDataResource(ConfigurableResource):
    """Where the insurance CSV and the pipeline's file outputs live."""

    csv_path: str | None = Field(default=None, description="The CSV; default INSURANCE_DATA_PATH")
    artifacts_dir: str | None = Field(
        default=None,
        description="Reports and model files; default INSURANCE_ARTIFACTS_DIR",
    )

    def csv(self) -> Path:
        path = Path(self.csv_path) if self.csv_path else get_settings().data_path
        if not path.is_file():
            raise FileNotFoundError(
                f"insurance data file not found: {path} "
                "(set INSURANCE_DATA_PATH or the resource's csv_path)"
            )
        return path

    def artifacts(self, *parts: str) -> Path:
        folder = Path(self.artifacts_dir) if self.artifacts_dir else get_settings().artifacts_dir
        folder = folder.joinpath(*parts)
        folder.mkdir(parents=True, exist_ok=True)
        return folder
