"""Dataset manifest schema, atomic file writing, and loading of prepared datasets."""
