"""Tooling that is never shipped: building and running images, the service contract file."""
