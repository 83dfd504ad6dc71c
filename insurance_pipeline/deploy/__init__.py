"""Pure deploy code: the command lines of a rollout, chart rendering and validation."""
