from __future__ import annotations

import tempfile
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from insurance_pipeline.cache.storage import LocalStorage, storage_for


class InsuranceDataResource(ConfigurableResource):
    """Where the insurance CSV is read, and where the pipeline's files go: reports and
    profiles are published to the artifacts location (a folder, or object storage); files
    that only pass through (a serving folder before MLflow has it, an image's build context)
    go to a local working folder."""

    csv_path: str = Field(description="The CSV (INSURANCE_DATA_PATH)")
    artifacts_dir: str = Field(
        description="Reports and profiles: a folder or s3://bucket/prefix (INSURANCE_ARTIFACTS_DIR)"
    )
    scratch_dir: str = Field(
        default="",
        description="Files that only pass through, when the artifacts are not local: a folder "
        "made mode 0700 (INSURANCE_SCRATCH_DIR; default: a private temporary folder)",
    )

    def csv(self) -> Path:
        path = Path(self.csv_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"insurance data file not found: {path} "
                "(set INSURANCE_DATA_PATH or the resource's csv_path)"
            )
        return path

    @property
    def _storage(self):
        return storage_for(self.artifacts_dir)

    def publish(self, relpath: str, data: bytes) -> str:
        """Store `data` at `relpath` under the artifacts location (once: content-named files
        are not written again); returns where it is (a path, or a URL)."""
        storage = self._storage
        if not storage.exists(relpath):
            storage.write(relpath, data)
        return f"{storage.url}/{relpath}"

    def workdir(self, *parts: str) -> Path:
        """A local folder for files that only pass through: under the artifacts folder when
        it is local, else under this state's scratch folder (mode 0700: never a folder of the
        system's temporary directory that other users or stacks share)."""
        storage = self._storage
        if isinstance(storage, LocalStorage):
            base = storage.root
        else:
            base = Path(self.scratch_dir) if self.scratch_dir else _private_scratch()
            base.mkdir(parents=True, exist_ok=True, mode=0o700)
            base.chmod(0o700)
        folder = base.joinpath(*parts)
        folder.mkdir(parents=True, exist_ok=True)
        return folder


_SCRATCH: list[Path] = []


def _private_scratch() -> Path:
    """One private folder (mode 0700) for this process, made on first use."""
    if not _SCRATCH:
        _SCRATCH.append(Path(tempfile.mkdtemp(prefix="insurance-scratch-")))
    return _SCRATCH[0]
