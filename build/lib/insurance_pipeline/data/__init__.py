"""Pure data code: the insurance table's contract, loading, hashing and the train/test split."""
