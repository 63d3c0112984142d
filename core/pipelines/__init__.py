"""The any-to-any generation pipeline."""
