"""The corpus: findings saved as JSON, loaded back, and the bug key that names each file."""
