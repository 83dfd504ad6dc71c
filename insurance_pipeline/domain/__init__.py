"""The vocabulary training and serving share: the table's columns, categories and bounds, the
model's name, the DFS feature vocabulary, and content hashes. Standard library only, so the
model service (and its image) can import it without any training library."""
