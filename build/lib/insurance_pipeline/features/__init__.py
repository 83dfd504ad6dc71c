"""Pure feature code. `numpy_dfs` is import-safe for serving; `dfs` needs featuretools."""
