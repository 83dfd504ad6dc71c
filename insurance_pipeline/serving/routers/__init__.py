"""The service's routes: `health` (probes) and `models` (listing, metadata, predictions)."""
