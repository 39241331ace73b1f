"""/admin/catalog (in progress)."""
