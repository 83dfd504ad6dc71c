"""The feature transformer: featuretools DFS, imputation and encodings."""
