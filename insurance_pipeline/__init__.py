"""insurance_pipeline: a cached Dagster asset DAG from the insurance CSV to a served model.

Three deployables share this namespace, with their boundaries enforced by import-linter:
`core` (pure), `serving` (numpy + FastAPI, with the `domain` vocabulary it shares with
training) and the Dagster layer (`definitions`, `defs`, `resources`, `cli`). Nothing heavy is
imported here: `insurance_pipeline.serving` must import without the training stack.
"""

from insurance_pipeline import _compat

_compat.install()  # old import paths of moved modules keep working
