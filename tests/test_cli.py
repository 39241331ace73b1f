"""The real `waybill` console script, end to end, on this run's database."""
from __future__ import annotations

import re
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from tests.conftest import POSTGRES_URL, ROOT

EXAMPLE_CONFIG = ROOT / "docs" / "config.example.toml"


def _scalar(database_url: str, sql: str, **params):
    engine = create_engine(database_url)
    with engine.connect() as conn:
        value = conn.execute(text(sql), params).scalar()
    engine.dispose()
    return value


def _wallet_balance(database_url: str, email: str, kind: str) -> int:
    return _scalar(database_url, 'SELECT w.balance FROM wallet w JOIN "user" u ON u.id = w.user_id '
                                 "WHERE u.email = :email AND w.kind = :kind", email=email, kind=kind)


def test_whole_cli_flow(run_cli, database_url):
    run_cli("init-db")
    assert "imported 2 models, 2 channels, 2 routes" in run_cli("config", "import", str(EXAMPLE_CONFIG)).stdout
    run_cli("users", "create", "ops@example.com", "--password", "s3cret-pass", "--admin")
    run_cli("users", "create", "dev@example.com", "--password", "s3cret-pass")
    out = run_cli("wallets", "topup", "dev@example.com", "credit", "12.50", "--memo", "invoice 7").stdout
    assert "balance $12.500000" in out
    run_cli("wallets", "topup", "dev@example.com", "routed", "3")
    key = run_cli("keys", "create", "dev@example.com", "--name", "ci", "--models", "gpt-4o-mini",
                  "--lanes", "official").stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"wb-[A-Za-z0-9_-]{40,}", key)
    # Only a hash of the key is stored.
    assert _scalar(database_url, "SELECT count(*) FROM api_key WHERE key_hash = :k", k=key) == 0
    assert _scalar(database_url, "SELECT count(*) FROM api_key WHERE prefix = :p", p=key[:10]) == 1
    assert "ledger check passed" in run_cli("ledger", "check").stdout
    assert _wallet_balance(database_url, "dev@example.com", "credit") == 12_500_000
    assert _wallet_balance(database_url, "dev@example.com", "routed") == 3_000_000
    # init-db on a populated database upgrades in place and keeps the data.
    run_cli("init-db")
    assert _wallet_balance(database_url, "dev@example.com", "credit") == 12_500_000


@pytest.fixture
def dev_with_a_dollar(app):
    """The example config, dev@example.com and $1 of Credit, made in-process: test_whole_cli_flow runs these
    commands for real, and three console-script starts per case would triple these tests' time."""
    from app.accounts.service import create_user
    from app.billing.wallets import credit, wallet_of
    from app.routing.config_file import import_config
    import_config(EXAMPLE_CONFIG)
    user = create_user("dev@example.com", "s3cret-pass")
    credit(wallet_of(user.id, "credit").id, 1_000_000, memo="test money")


@pytest.mark.parametrize("args,message", [
    (("wallets", "topup", "dev@example.com", "credit", "0"), "greater than zero"),
    (("wallets", "topup", "dev@example.com", "credit", "-4"), "cannot be negative"),
    (("wallets", "topup", "dev@example.com", "credit", "1,5"), "not an amount"),
    (("wallets", "topup", "dev@example.com", "credit", "0.0000001"), "precision"),
    # Python's Decimal reads all of these; an operator's typo must not become money.
    (("wallets", "topup", "dev@example.com", "credit", "1_000"), "not an amount"),
    (("wallets", "topup", "dev@example.com", "credit", "\u0665"), "not an amount"),
    (("wallets", "topup", "dev@example.com", "credit", "1e3"), "not an amount"),
    (("wallets", "topup", "dev@example.com", "credit", "+5"), "not an amount"),
    (("wallets", "topup", "dev@example.com", "credit", "Infinity"), "not an amount"),
    (("wallets", "topup", "dev@example.com", "credit", "-1"), "cannot be negative"),
    # On SQLite this overflowed the balance into a REAL; on PostgreSQL it was a traceback.
    (("wallets", "topup", "dev@example.com", "credit", "9223372036854.775807"), "maximum of $1,000,000"),
    (("wallets", "topup", "dev@example.com", "credit", "1000000.000001"), "maximum of $1,000,000"),
    (("keys", "create", "dev@example.com", "--spend-cap", "1_000"), "not an amount"),
    (("keys", "create", "dev@example.com", "--spend-cap", "1000001"), "maximum of $1,000,000"),
    (("wallets", "topup", "nobody@example.com", "credit", "5"), "no user"),
    (("users", "create", "dev@example.com", "--password", "another-pass"), "already exists"),
    (("users", "create", "DEV@example.com", "--password", "another-pass"), "already exists"),
    (("keys", "create", "dev@example.com", "--models", "gpt-4o-mini,no-such-model"), "unknown model 'no-such-model'"),
    (("keys", "create", "dev@example.com", "--lanes", "fast"), "unknown lane"),
])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(dev_with_a_dollar, run_cli, database_url, args, message):
    before = [_scalar(database_url, f"SELECT count(*) FROM {t}") for t in ("ledger_entry", '"user"', "api_key")]
    result = run_cli(*args, check_rc=2)
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert [_scalar(database_url, f"SELECT count(*) FROM {t}") for t in ("ledger_entry", '"user"', "api_key")] == before
    assert _wallet_balance(database_url, "dev@example.com", "credit") == 1_000_000


def _ledger_check_after_tampering(run_cli, database_url: str, *statements: str):
    """Top up $2, change the database behind Waybill's back, and run a failing `ledger check`."""
    run_cli("users", "create", "dev@example.com", "--password", "s3cret-pass")
    run_cli("wallets", "topup", "dev@example.com", "credit", "2")
    engine = create_engine(database_url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()
    return run_cli("ledger", "check", check_rc=1)


def test_ledger_check_fails_on_a_tampered_balance(run_cli, database_url):
    result = _ledger_check_after_tampering(run_cli, database_url,
                                           "UPDATE wallet SET balance = balance + 1 WHERE kind = 'credit'")
    assert "balance 2000001 != sum of ledger entries 2000000" in result.stderr
    assert "user" in result.stderr and "credit" in result.stderr


def test_topup_takes_surrounding_spaces_and_the_maximum(run_cli, database_url):
    run_cli("users", "create", "dev@example.com", "--password", "s3cret-pass")
    run_cli("wallets", "topup", "dev@example.com", "credit", "  5 ")
    run_cli("wallets", "topup", "dev@example.com", "routed", "1000000")
    assert _wallet_balance(database_url, "dev@example.com", "credit") == 5_000_000
    assert _wallet_balance(database_url, "dev@example.com", "routed") == 1_000_000_000_000
    assert "ledger check passed" in run_cli("ledger", "check").stdout


def test_money_stored_as_real_is_refused_or_flagged(run_cli, database_url):
    if POSTGRES_URL:  # a BIGINT column refuses outright what SQLite would keep as a REAL
        run_cli("users", "create", "dev@example.com", "--password", "s3cret-pass")
        engine = create_engine(database_url)
        with pytest.raises(DBAPIError, match="out of range"), engine.begin() as conn:
            conn.execute(text("UPDATE wallet SET balance = 1e19"))
        engine.dispose()
        return
    # What an int64 overflow leaves behind on SQLite: every sum agrees, but as floats that have lost cents.
    result = _ledger_check_after_tampering(run_cli, database_url,
                                           "UPDATE wallet SET balance = 1e19 WHERE kind = 'credit'",
                                           "UPDATE ledger_entry SET amount = 1e19, balance_after = 1e19")
    assert "wallet 1: balance 1e+19 is stored as real, not integer" in result.stderr
    assert "ledger entry 1: amount 1e+19 is stored as real, not integer" in result.stderr
    assert "ledger entry 1: balance_after 1e+19 is stored as real, not integer" in result.stderr


def test_sweep_and_catalog_sync_commands(run_cli):
    assert "swept: 0 stale hold(s) charged for review" in run_cli("sweep", "--older-than", "60").stdout
    out = run_cli("catalog", "sync").stdout
    assert "added gpt-4o-mini (hidden)" in out
    assert out.strip().splitlines()[-1].endswith("0 changed, 0 unchanged")
    assert run_cli("catalog", "sync").stdout.strip().endswith("0 added, 0 changed, 20 unchanged")
    assert run_cli("catalog", "sync", "/no/such/file.json", check_rc=2).stderr.startswith("Error: /no/such/file.json")


def test_sqlite_database_is_in_wal_mode_with_a_busy_timeout(tmp_path):
    from app import create_app
    from app.extensions import db
    path = tmp_path / "wal.db"
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}"})
    with app.app_context():
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        db.engine.dispose()


def test_codes_mint_prints_one_code_per_line_and_stores_only_hashes(run_cli, database_url):
    import hashlib
    result = run_cli("codes", "mint", "routed", "2.50", "--count", "3", "--expires", "2099-01-01")
    codes = result.stdout.splitlines()
    assert len(codes) == 3 and len(set(codes)) == 3
    assert all(re.fullmatch(r"WB(-[0-9A-HJKMNP-TV-Z]{4}){4}", code) for code in codes)
    assert "minted 3 code(s) worth $2.500000 each on the routed wallet" in result.stderr
    assert _scalar(database_url, "SELECT count(*) FROM redeem_code WHERE wallet_kind = 'routed' AND amount = 2500000 "
                                 "AND expires_at IS NOT NULL AND redeemed_at IS NULL") == 3
    for code in codes:  # neither the code nor its plain hash is stored: only the hash of its normalised form
        assert _scalar(database_url, "SELECT count(*) FROM redeem_code WHERE code_hash = :c OR prefix = :c "
                                     "OR code_hash = :h", c=code, h=hashlib.sha256(code.encode()).hexdigest()) == 0
    assert len(run_cli("codes", "mint", "credit", "1").stdout.splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["gold", "1"], "'gold' is not one of 'credit', 'routed'"),
    (["credit", "0"], "above zero"),
    (["credit", "-1"], "cannot be negative"),
    (["credit", "1.0000001"], "more precision than one micro-USD"),
    (["credit", "1000001"], "more than the maximum"),
    (["credit", "1", "--count", "1001"], "1<=x<=1000"),
    (["credit", "1", "--count", "0"], "1<=x<=1000"),
    (["credit", "1", "--expires", "2001-01-01"], "already passed"),
    (["credit", "1", "--expires", "soon"], "is not a date"),
])
def test_codes_mint_refuses_bad_input_and_mints_nothing(run_cli, database_url, args, message):
    result = run_cli("codes", "mint", *args, check_rc=2)
    assert message in result.stderr and result.stdout == ""
    assert _scalar(database_url, "SELECT count(*) FROM redeem_code") == 0
