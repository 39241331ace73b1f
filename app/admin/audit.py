"""/admin/audit (in progress)."""
