"""Stage `training`."""
