"""The insurance table: its contract, loading, profile and the seeded train/test split."""
