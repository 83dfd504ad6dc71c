from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field


class InsuranceDataResource(ConfigurableResource):
    """Where the insurance CSV and the pipeline's file outputs live."""

    csv_path: str = Field(description="The CSV (INSURANCE_DATA_PATH)")
    artifacts_dir: str = Field(description="Reports and served files (INSURANCE_ARTIFACTS_DIR)")

    def csv(self) -> Path:
        path = Path(self.csv_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"insurance data file not found: {path} "
                "(set INSURANCE_DATA_PATH or the resource's csv_path)"
            )
        return path

    def artifacts(self, *parts: str) -> Path:
        folder = Path(self.artifacts_dir).joinpath(*parts)
        folder.mkdir(parents=True, exist_ok=True)
        return folder
