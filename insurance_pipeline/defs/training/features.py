"""Stage `training`: the fitted feature transformer."""

from dagster import AssetExecutionContext, MetadataValue, Output

from insurance_pipeline.core.data.contract import FEATURE_COLUMNS
from insurance_pipeline.core.data.split import Split
from insurance_pipeline.defs._steps import (
    cache_metadata,
    data_version,
    run_cached,
    versioned_asset,
)
from insurance_pipeline.resources import StepCacheResource

FEATURE_LIBRARIES = ["featuretools", "woodwork", "scikit-learn", "pandas", "numpy"]


@versioned_asset()
def feature_transformer(
    context: AssetExecutionContext,
    train_test_split: Split,
    step_cache: StepCacheResource,
):
    """featuretools DFS on age/bmi/children + mean imputation + encodings, fitted on train rows."""
    from insurance_pipeline.core.features.transformer import fit_feature_transformer

    train = train_test_split.train[list(FEATURE_COLUMNS)]
    result = run_cached(
        context,
        step_cache.store(),
        lambda: fit_feature_transformer(train),
        libraries=FEATURE_LIBRARIES,
    )
    names = [str(n) for n in result.value.get_feature_names_out()]
    return Output(
        result.value,
        data_version=data_version(result),
        metadata={
            "n_features": len(names),
            "feature_names": MetadataValue.json(names),
            **cache_metadata(result),
        },
    )
