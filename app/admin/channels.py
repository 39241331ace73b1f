"""/admin/channels (in progress)."""
