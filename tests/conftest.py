"""Fixtures: a fresh real database per test (SQLite file, or PostgreSQL when configured)."""
from __future__ import annotations

import os
import re
import threading
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent


def _database_of_this_worker(url: str | None) -> str | None:
    """Under pytest-xdist each worker truncates and fills its own PostgreSQL database, made fresh here."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not url or not worker:
        return url
    root, name = url.rsplit("/", 1)
    own = f"{name}_{worker}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{own}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{own}"'))
    engine.dispose()
    return f"{root}/{own}"


POSTGRES_URL = _database_of_this_worker(os.environ.get("WAYBILL_TEST_DATABASE_URL"))

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


def _empty_postgres(url: str) -> None:
    """Delete every row and restart every sequence: on tables this small, far quicker than TRUNCATE."""
    from app.extensions import db
    import app.models  # noqa: F401
    children_first = [table.name for table in reversed(db.metadata.sorted_tables)]
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("; ".join(f'DELETE FROM "{name}"' for name in children_first)))
        conn.execute(text("SELECT setval(c.oid, 1, false) FROM pg_class c WHERE c.relkind = 'S'"))
    engine.dispose()


@pytest.fixture
def database_url(migrated_template, tmp_path) -> str:
    """A URL to an empty, migrated database of this test's own."""
    if POSTGRES_URL:
        _empty_postgres(POSTGRES_URL)
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


class FakeClock:
    """A clock that moves only when a test says, for durations tested without sleeping."""

    def __init__(self, start: datetime):
        self.at, self.ticks = start, 1_000_000.0

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return self.ticks

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)
        self.ticks += seconds


@pytest.fixture
def clock(app) -> FakeClock:
    """Put the app (and the servers running it in threads) on a fake clock."""
    from app.runtime import runtime, system_utcnow
    fake = FakeClock(system_utcnow())
    runtime().now, runtime().monotonic = fake.now, fake.monotonic
    return fake


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


@pytest.fixture
def live_server(app):
    """The app served by werkzeug in a thread, on a loopback port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def simulator_server():
    from app.simulator.server import start_simulator
    sim = start_simulator()
    yield sim
    sim.stop()


@pytest.fixture
def sim(simulator_server):
    """The shared simulator with no faults and an empty log."""
    simulator_server.reset()
    yield simulator_server
    simulator_server.reset()


# The gateway tests' world: gpt-4o-mini on an official primary and a routed backup (x1.5).
GATEWAY_CONFIG = """
[[models]]
id = "gpt-4o-mini"
name = "GPT-4o mini"
provider = "openai"
context_window = 128000
max_output_tokens = 1000
input_per_mtok = 0.15
output_per_mtok = 0.60
cached_input_per_mtok = 0.075

[[models]]
id = "text-embedding-3-small"
provider = "openai"
mode = "embedding"
context_window = 8191
input_per_mtok = 0.02
output_per_mtok = 0.0

[[channels]]
name = "primary"
label = "Primary (official)"
provider = "openai"
base_url = "{sim}/primary/v1"
api_key = "sk-primary-secret-1111"
lane = "official"
timeout_s = 5
[channels.models]
"gpt-4o-mini" = "gpt-4o-mini-2024-07-18"
"text-embedding-3-small" = "text-embedding-3-small"

[[channels]]
name = "backup"
label = "Backup relay"
provider = "openai-compatible"
base_url = "{sim}/backup/v1"
api_key = "sk-backup-secret-2222"
lane = "routed"
price_multiplier = 1.5
timeout_s = 5
[channels.models]
"gpt-4o-mini" = "gpt-4o-mini"
"text-embedding-3-small" = "text-embedding-3-small"

[[routes]]
model = "gpt-4o-mini"
channels = ["primary", "backup"]

[[routes]]
model = "text-embedding-3-small"
channels = ["primary", "backup"]
"""


def import_config_text(text: str, directory: Path) -> None:
    """Apply a config given as TOML text through the real file import (which drops cached routes)."""
    from app.routing.config_file import import_config
    path = directory / f"config-{abs(hash(text))}.toml"
    path.write_text(text)
    import_config(path)


@pytest.fixture
def gateway(app, sim, make_user, tmp_path):
    """Config on the simulator, a user with $10 in each wallet, and that user's API key."""
    from app.accounts.service import issue_key
    import_config_text(GATEWAY_CONFIG.format(sim=sim.root), tmp_path)
    user = make_user("api@example.com", credit_usd="10", routed_usd="10")
    key = issue_key(user, "tests").secret
    return GatewayWorld(user_id=user.id, key=key, sim=sim)


class GatewayWorld:
    """Handles a gateway test needs: the user, its key, the simulator."""

    def __init__(self, user_id: int, key: str, sim):
        self.user_id, self.key, self.sim = user_id, key, sim

    def balances(self) -> dict[str, tuple[int, int]]:
        """(balance, reserved) of each wallet, read fresh."""
        from app.billing.wallets import wallets_of
        from app.extensions import db
        db.session.rollback()
        return {kind: (w.balance, w.reserved) for kind, w in wallets_of(self.user_id).items()}


@pytest.fixture
def openai_client(gateway, live_server):
    """The official OpenAI SDK pointed at the gateway, with SDK retries off."""
    import openai
    return openai.OpenAI(base_url=f"{live_server}/v1", api_key=gateway.key, max_retries=0, timeout=30)


def receipt_of(client, receipt_id: str) -> dict:
    """A receipt as GET /v1/receipts/{id} returns it, through an OpenAI SDK client."""
    return client.get(f"/receipts/{receipt_id}", cast_to=object)


def assert_ledger_green() -> None:
    """Every ledger and receipt invariant holds."""
    from app.billing.audit import ledger_violations
    from app.extensions import db
    from app.gateway.audit import receipt_violations
    db.session.rollback()
    assert ledger_violations() + receipt_violations() == []


# Every provider behind the gateway: Claude and Gemini direct, and an OpenAI-compatible relay.
MULTI_PROVIDER_CONFIG = """
[[models]]
id = "claude-sonnet-4-6"
name = "Claude Sonnet 4.6"
provider = "anthropic"
context_window = 200000
max_output_tokens = 64000
input_per_mtok = 3.0
output_per_mtok = 15.0
cached_input_per_mtok = 0.3

[[models]]
id = "gemini-2.5-flash"
name = "Gemini 2.5 Flash"
provider = "gemini"
context_window = 1048576
max_output_tokens = 65535
input_per_mtok = 0.3
output_per_mtok = 2.5
cached_input_per_mtok = 0.03

[[models]]
id = "text-only-model"
provider = "openai"
input_per_mtok = 1.0
output_per_mtok = 1.0
supports_vision = false
supports_tools = false

[[channels]]
name = "claude-direct"
label = "Anthropic direct"
provider = "anthropic"
base_url = "{sim}/claude-direct"
api_key = "sk-ant-direct-4444"
lane = "official"
[channels.models]
"claude-sonnet-4-6" = "claude-sonnet-4-6"

[[channels]]
name = "gemini-direct"
label = "Google direct"
provider = "gemini"
base_url = "{sim}/gemini-direct"
api_key = "AIzaSyTestKey0000000000000000"
lane = "official"
[channels.models]
"gemini-2.5-flash" = "gemini-2.5-flash"

[[channels]]
name = "relay-c"
label = "Relay C"
provider = "openai-compatible"
base_url = "{sim}/relay-c/v1"
api_key = "sk-relay-c-5555"
lane = "routed"
price_multiplier = 1.2
[channels.models]
"claude-sonnet-4-6" = "anthropic/claude-sonnet-4.6"
"gemini-2.5-flash" = "google/gemini-2.5-flash"
"text-only-model" = "text-only-model"

[[routes]]
model = "claude-sonnet-4-6"
channels = ["claude-direct", "relay-c"]

[[routes]]
model = "gemini-2.5-flash"
channels = ["gemini-direct", "relay-c"]

[[routes]]
model = "text-only-model"
channels = ["relay-c"]
"""


@pytest.fixture
def providers(gateway, tmp_path):
    """The gateway world plus Claude, Gemini and a text-only model on their own channels."""
    import_config_text(MULTI_PROVIDER_CONFIG.format(sim=gateway.sim.root), tmp_path)
    return gateway


@pytest.fixture
def claude_client(providers, live_server):
    """The official anthropic SDK pointed at the gateway."""
    import anthropic
    return anthropic.Anthropic(base_url=live_server, api_key=providers.key, max_retries=0)


# Debian's Chromium, driven by Playwright (it cannot download browsers here).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server)
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()
