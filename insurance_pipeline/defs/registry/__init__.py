"""Stage `registry`."""
