"""insurance_pipeline: a cached Dagster asset DAG from the insurance CSV to a served model.

Heavy libraries (dagster, featuretools, tpot, mlflow) are imported by the modules that need
them, never here: ``insurance_pipeline.serving`` must import without the training stack.
"""
