"""Schema upgrades through the Alembic migrations in app/migrations."""
from __future__ import annotations

from flask_migrate import upgrade


def upgrade_schema() -> None:
    """Create the schema or bring an existing database to the latest migration."""
    upgrade()
