"""Typed Dagster resources, each thin and real: they store and fetch, the pure core decides."""

from insurance_pipeline.resources.cache import StepCacheIOManager, StepCacheResource
from insurance_pipeline.resources.dask import DaskResource
from insurance_pipeline.resources.data import InsuranceDataResource
from insurance_pipeline.resources.deploy import DeployRunnerResource
from insurance_pipeline.resources.gates import GatesResource
from insurance_pipeline.resources.mlflow import MlflowResource
from insurance_pipeline.resources.trust import TrustResource

__all__ = [
    "DaskResource",
    "DeployRunnerResource",
    "GatesResource",
    "InsuranceDataResource",
    "MlflowResource",
    "StepCacheIOManager",
    "StepCacheResource",
    "TrustResource",
]
