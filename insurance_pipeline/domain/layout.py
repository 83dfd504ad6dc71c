"""The default state layout, a stable interface: everything a local run writes lives under one
state directory (INSURANCE_STATE_DIR, default: the checkout), in these folders."""

from __future__ import annotations

from pathlib import Path

# The checkout (an editable install): the default state directory and the shipped data.
CHECKOUT = Path(__file__).resolve().parents[2]

DAGSTER_DIR = ".dagster"
MLFLOW_DB = Path(".mlflow") / "mlflow.db"
CACHE_DIR = Path(".cache") / "steps"
ARTIFACTS_DIR = ".artifacts"
# The local environment's signing key, generated on first use (mode 0600, folder 0700).
KEYS_DIR = ".keys"
SIGNING_KEY = Path(KEYS_DIR) / "signing-key.pem"
# Where `export-champion` puts the champion's serving artifact and the service reads it.
SERVED_ARTIFACT_DIR = Path(ARTIFACTS_DIR) / "serving" / "champion"
SHIPPED_DATA = Path("data") / "insurance.csv"
