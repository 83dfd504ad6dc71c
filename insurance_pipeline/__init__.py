"""insurance_pipeline: a cached Dagster asset DAG from the insurance CSV to a served model.

Three deployables share this namespace, with their boundaries enforced by import-linter:
`core` (pure), `serving` (numpy + FastAPI, with the served format `compiled` and the `domain`
vocabulary it shares with training) and the Dagster layer (`definitions`, `defs`, `release`,
`resources`, `cli`). Nothing is imported here: `insurance_pipeline.serving` must import
without the training stack.
"""
