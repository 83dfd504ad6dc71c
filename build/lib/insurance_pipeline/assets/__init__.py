"""Thin Dagster assets: load inputs, call pure code, attach metadata."""
