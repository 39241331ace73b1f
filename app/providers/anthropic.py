"""The `anthropic` adapter (placeholder until written)."""
