"""The model: search, training pipeline, interval, metrics, comparison, evaluation, report."""
