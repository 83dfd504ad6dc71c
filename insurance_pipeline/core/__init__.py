"""The pure core: the data contract and split, the features, the search, the model, its
interval, metrics, gates and verdicts, and the export to the service's numpy form.

It imports neither dagster, mlflow nor fastapi (an import-linter contract in `make lint`):
the Dagster layer (`insurance_pipeline.defs`, `resources`) calls it, and it calls nothing
above it."""
