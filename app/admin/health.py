"""/admin/health (in progress)."""
