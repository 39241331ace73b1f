"""The one path that serves a request end to end, and the receipts it writes."""
