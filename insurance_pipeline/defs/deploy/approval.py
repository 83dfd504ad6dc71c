"""Is a registered version deployable? The deploy sensor and the `deployment` asset ask the
same question: the approval policy (`core.gates.decision.version_approval`) over the
version's approval tag and the verdicts recorded for its model."""

from insurance_pipeline.core.gates.decision import version_approval as approval_policy
from insurance_pipeline.core.gates.verdicts import Approval, VerdictLedger
from insurance_pipeline.resources import MlflowResource
from insurance_pipeline.resources.mlflow import APPROVED_TAG, DATA_SHA_TAG, MODEL_KEY_TAG


def version_approval(mlflow: MlflowResource, version) -> Approval:
    model_key = version.tags.get(MODEL_KEY_TAG, "")
    found = mlflow.find_run(model_key) if model_key else None
    return approval_policy(
        version=str(version.version),
        model_key=model_key if found else "",
        data_version=version.tags.get(DATA_SHA_TAG, ""),
        approved_parameters=version.tags.get(APPROVED_TAG),
        recorded=VerdictLedger(mlflow).recorded(model_key) if found else {},
    )
