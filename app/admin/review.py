"""/admin/review (in progress)."""
