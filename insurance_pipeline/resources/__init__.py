"""Typed Dagster resources, each with a real implementation."""

from insurance_pipeline.resources.cache import StepCacheResource
from insurance_pipeline.resources.data import InsuranceDataResource
from insurance_pipeline.resources.deploy import DeployRunnerResource
from insurance_pipeline.resources.mlflow import MlflowResource

__all__ = ["DeployRunnerResource", "InsuranceDataResource", "MlflowResource", "StepCacheResource"]
