"""The model catalog: official prices and their history."""
