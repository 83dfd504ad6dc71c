"""The content-keyed step cache (pure: no dagster)."""
