"""Pure modeling code: TPOT search, metrics, quality gates, the validation report."""
