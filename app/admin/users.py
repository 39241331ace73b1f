"""/admin/users (in progress)."""
