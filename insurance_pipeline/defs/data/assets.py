"""Stage `data`: the CSV source, the raw data and its contract check, the profile, the split."""

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    Config,
    DataVersion,
    MetadataValue,
    Output,
    asset_check,
    observable_source_asset,
)
from pydantic import Field

from insurance_pipeline.core.data.contract import (
    contract_violations,
    read_insurance_csv,
    to_typed_frame,
)
from insurance_pipeline.core.data.profile import PROFILE_MAX_ROWS, DataProfile, profile
from insurance_pipeline.core.data.split import Split, split_rows
from insurance_pipeline.defs._steps import (
    cache_metadata,
    data_version,
    run_cached,
    stage_group,
    upstream_data_versions,
    versioned_asset,
)
from insurance_pipeline.domain.hashing import file_sha256
from insurance_pipeline.resources import InsuranceDataResource, StepCacheResource


@observable_source_asset(
    description="The insurance CSV file; version = sha256.", group_name=stage_group(__name__)
)
def insurance_csv(data: InsuranceDataResource) -> DataVersion:
    return DataVersion(file_sha256(data.csv()))


@versioned_asset(
    deps=[insurance_csv],
    description="The CSV as read, every value a string: the contract check decides what is valid.",
)
def raw_insurance_data(
    context: AssetExecutionContext,
    data: InsuranceDataResource,
    step_cache: StepCacheResource,
):
    path = data.csv()
    sha = file_sha256(path)
    # Keyed by the file's content, not by the source observation, which may never have run.
    result = run_cached(
        context,
        step_cache.store(),
        lambda: read_insurance_csv(path),
        upstream_versions={"insurance_csv": sha},
        libraries=["pandas"],
    )
    frame = result.value
    return Output(
        frame,
        data_version=DataVersion(sha),  # content hash: a changed file makes downstream stale
        metadata={
            "file": MetadataValue.path(str(path)),
            "sha256": sha,
            "rows": int(frame.shape[0]),
            "columns": MetadataValue.json(list(map(str, frame.columns))),
            **cache_metadata(result),
        },
    )


@asset_check(
    asset=raw_insurance_data,
    blocking=True,
    description="Columns, types, ranges, categories.",
)
def raw_insurance_data_contract(raw_insurance_data: pd.DataFrame) -> AssetCheckResult:
    problems = contract_violations(raw_insurance_data)
    return AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) if problems else "the data satisfies the contract",
        metadata={
            "problems": MetadataValue.json(problems),
            "rows": MetadataValue.int(int(raw_insurance_data.shape[0])),
            "problem_count": MetadataValue.int(len(problems)),
        },
    )


class ProfileConfig(Config):
    max_rows: int = Field(
        default=PROFILE_MAX_ROWS,
        ge=100,
        description="above this many rows the report describes a seeded sample of this size",
    )


@versioned_asset()
def insurance_data_profile(
    context: AssetExecutionContext,
    config: ProfileConfig,
    raw_insurance_data: pd.DataFrame,
    data: InsuranceDataResource,
    step_cache: StepCacheResource,
) -> Output[DataProfile]:
    """ydata-profiling HTML report of the raw data."""

    result = run_cached(
        context,
        step_cache.store(),
        lambda: profile(to_typed_frame(raw_insurance_data), max_rows=config.max_rows),
        config=config.model_dump(),
        libraries=["ydata-profiling", "pandas", "matplotlib"],
    )
    found: DataProfile = result.value
    location = data.publish(f"profiles/profile-{result.key}.html", found.html.encode())
    return Output(
        found,
        data_version=data_version(result),
        metadata={
            "file": MetadataValue.path(location),
            "rows": found.rows,
            "profiled_rows": found.profiled_rows,
            "variables": found.variables,
            "duplicate_rows": found.duplicate_rows,
            "missing_cells": found.missing_cells,
            "alerts": MetadataValue.json(list(found.alerts)),
            **cache_metadata(result),
        },
    )


class SplitConfig(Config):
    seed: int = Field(default=42, description="Random seed of the train/test split")
    test_fraction: float = Field(default=0.2, gt=0, lt=1, description="Share of rows held out")


@versioned_asset()
def train_test_split(
    context: AssetExecutionContext,
    config: SplitConfig,
    raw_insurance_data: pd.DataFrame,
    step_cache: StepCacheResource,
):
    """Deduplicated rows split 80/20 with a seed; the frame index is the CSV row id."""
    upstream = upstream_data_versions(context)
    result = run_cached(
        context,
        step_cache.store(),
        lambda: split_rows(
            to_typed_frame(raw_insurance_data),  # re-validates: raises on any violation
            seed=config.seed,
            test_fraction=config.test_fraction,
            data_version=upstream["raw_insurance_data"],
        ),
        config=config.model_dump(),
        libraries=["pandas", "scikit-learn"],
        upstream_versions=upstream,
    )
    split: Split = result.value
    return Output(
        split,
        data_version=data_version(result),
        metadata={
            "train_rows": len(split.train),
            "test_rows": len(split.test),
            "duplicates_dropped": split.duplicates_dropped,
            "seed": config.seed,
            "test_fraction": config.test_fraction,
            **cache_metadata(result),
        },
    )
