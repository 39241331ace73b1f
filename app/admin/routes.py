"""/admin/routes (in progress)."""
