"""Stage `validation`."""
