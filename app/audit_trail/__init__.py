"""The audit trail: every admin change, with who made it, when, and what it was before and after."""
