"""Fixtures: a fresh real database per test (SQLite file, or PostgreSQL when configured)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("WAYBILL_TEST_DATABASE_URL")

# Secrets are fixed for the run so subprocesses (the CLI, servers) decrypt what tests stored.
os.environ.setdefault("WAYBILL_SECRET_KEY", "test-secret-key")
os.environ.setdefault("WAYBILL_ENCRYPTION_KEYS", Fernet.generate_key().decode())


def pytest_report_header(config):
    return f"waybill database: {'postgresql' if POSTGRES_URL else 'sqlite'}"


@pytest.fixture(scope="session")
def instance_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("instance")
    os.environ["WAYBILL_INSTANCE_PATH"] = str(path)
    return path


def _migrate(url: str, instance_dir: Path) -> None:
    """Build the schema the way production does: the real migrations via the CLI."""
    env = {**os.environ, "WAYBILL_DATABASE_URL": url, "WAYBILL_INSTANCE_PATH": str(instance_dir)}
    subprocess.run([sys.executable, "-m", "app.cli", "init-db"], cwd=ROOT, env=env, check=True,
                   capture_output=True)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory, instance_dir) -> str:
    """A migrated database to start each test from: a SQLite file to copy, or PostgreSQL itself."""
    if POSTGRES_URL:
        _migrate(POSTGRES_URL, instance_dir)
        return POSTGRES_URL
    path = tmp_path_factory.mktemp("template") / "template.db"
    _migrate(f"sqlite:///{path}", instance_dir)
    return str(path)


def _truncate_postgres(url: str) -> None:
    from app.extensions import db
    import app.models  # noqa: F401
    tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def database_url(migrated_template, tmp_path) -> str:
    """A URL to an empty, migrated database of this test's own."""
    if POSTGRES_URL:
        _truncate_postgres(POSTGRES_URL)
        return POSTGRES_URL
    path = tmp_path / "waybill.db"
    shutil.copy(migrated_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def app(database_url, instance_dir):
    from app import create_app
    application = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True})
    with application.app_context():
        yield application
        from app.extensions import db
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


CSRF_INPUT = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    """The CSRF token a page's form carries."""
    match = CSRF_INPUT.search(html)
    assert match, "page has no csrf_token field"
    return match.group(1) or match.group(2)


@pytest.fixture
def make_user(app):
    """Create a user, optionally an admin, optionally with money (USD strings) in its wallets."""
    from app.accounts.service import create_user
    from app.billing.pricing import parse_usd
    from app.billing.wallets import credit, wallet_of

    def make(email="user@example.com", password="password123", admin=False, credit_usd=None, routed_usd=None):
        user = create_user(email, password, is_admin=admin)
        for kind, amount in (("credit", credit_usd), ("routed", routed_usd)):
            if amount:
                credit(wallet_of(user.id, kind).id, parse_usd(amount), memo="test money")
        return user
    return make


@pytest.fixture
def login_as(client, make_user):
    """Sign a user in through the real login form, creating them first if needed."""
    def login(email="user@example.com", password="password123", admin=False):
        from app.accounts.models import User
        from app.extensions import db
        if db.session.scalar(db.select(User).where(User.email == email)) is None:
            make_user(email, password, admin=admin)
        token = csrf_from(client.get("/login").get_data(as_text=True))
        response = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
        assert response.status_code == 302, response.get_data(as_text=True)
        return client
    return login


@pytest.fixture
def run_cli(database_url, instance_dir):
    """Run the real `waybill` console script against this test's database."""
    waybill = Path(sys.executable).parent / "waybill"

    def run(*args: str, check_rc: int | None = 0) -> subprocess.CompletedProcess:
        env = {**os.environ, "WAYBILL_DATABASE_URL": database_url, "WAYBILL_INSTANCE_PATH": str(instance_dir)}
        result = subprocess.run([str(waybill), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        if check_rc is not None:
            assert result.returncode == check_rc, f"{args}: rc={result.returncode}\n{result.stdout}\n{result.stderr}"
        return result
    return run
