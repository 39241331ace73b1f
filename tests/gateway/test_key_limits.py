"""A key's spend cap and requests-per-minute limit, counted atomically in the database."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from app.accounts.models import ApiKey
from app.accounts.service import issue_key
from app.extensions import db
from app.gateway.models import Receipt
from tests.conftest import assert_ledger_green


def _client(live_server: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_server}/v1", api_key=key, max_retries=0, timeout=30)


def _ask(client: openai.OpenAI, **extra) -> int:
    """One chat request; its HTTP status."""
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=20, **extra)
        return 200
    except openai.APIStatusError as error:
        return error.status_code


def _key_row(key_id: int) -> ApiKey:
    db.session.rollback()
    return db.session.get(ApiKey, key_id)


def test_concurrent_requests_never_spend_past_the_cap(gateway, live_server, make_user):
    user = make_user("capped@example.com", credit_usd="10")
    issued = issue_key(user, "capped", lanes=["official"], spend_cap=100)  # 100 µ$: a few requests' holds
    client = _client(live_server, issued.secret)
    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(lambda _: _ask(client), range(12)))
    assert set(statuses) <= {200, 402} and 402 in statuses and 200 in statuses
    key = _key_row(issued.key.id)
    assert key.reserved == 0
    assert key.spent <= 100
    charged = db.session.scalar(db.select(db.func.sum(Receipt.charge)).where(Receipt.api_key_id == key.id))
    assert key.spent == charged, "the key's spend is every charge it made"
    assert_ledger_green()


def test_the_cap_counts_spend_and_refuses_with_402_key_spend_cap(gateway, live_server, make_user):
    user = make_user("capped2@example.com", credit_usd="10")
    issued = issue_key(user, "capped", spend_cap=1_000)
    client = _client(live_server, issued.secret)
    assert _ask(client) == 200
    spent = _key_row(issued.key.id).spent
    assert spent > 0
    with pytest.raises(openai.APIStatusError) as error:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=5_000)
    assert (error.value.status_code, error.value.body["code"]) == (402, "key_spend_cap")
    assert error.value.response.headers["x-should-retry"] == "false"
    key = _key_row(issued.key.id)
    assert (key.spent, key.reserved) == (spent, 0)
    assert_ledger_green()


def test_rpm_is_counted_atomically_and_refusals_do_not_count(gateway, live_server, make_user, clock):
    user = make_user("rpm@example.com", credit_usd="10")
    issued = issue_key(user, "rpm", rpm_limit=3)
    client = _client(live_server, issued.secret)
    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(lambda _: _ask(client), range(12)))
    assert sorted(statuses) == [200] * 3 + [429] * 9
    assert _ask(client) == 429, "refused requests were not counted, but the minute is still full"
    clock.advance(60)
    assert [_ask(client) for _ in range(4)] == [200, 200, 200, 429]
    assert_ledger_green()


def test_a_429_says_how_long_until_the_minute_ends(gateway, live_server, make_user, clock):
    user = make_user("rpm2@example.com", credit_usd="10")
    client = _client(live_server, issue_key(user, "rpm", rpm_limit=1).secret)
    assert _ask(client) == 200
    with pytest.raises(openai.RateLimitError) as error:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert 1 <= int(error.value.response.headers["Retry-After"]) <= 60


def test_last_used_is_written_at_most_once_a_minute(gateway, live_server, make_user, clock):
    user = make_user("used@example.com", credit_usd="10")
    issued = issue_key(user, "used")
    client = _client(live_server, issued.secret)
    assert _key_row(issued.key.id).last_used_at is None
    client.models.list()
    first = _key_row(issued.key.id).last_used_at
    assert first == clock.now()
    clock.advance(30)
    client.models.list()
    assert _key_row(issued.key.id).last_used_at == first
    clock.advance(31)
    client.models.list()
    assert _key_row(issued.key.id).last_used_at == clock.now()


def test_keys_create_takes_expiry_spend_cap_and_rpm(gateway, run_cli):
    result = run_cli("keys", "create", "api@example.com", "--name", "ci", "--expires", "2099-01-31",
                     "--spend-cap", "2.50", "--rpm", "30")
    secret = result.stdout.strip().splitlines()[-1]
    db.session.rollback()
    key = db.session.scalar(db.select(ApiKey).where(ApiKey.name == "ci"))
    assert secret.startswith(key.prefix)
    assert (key.spend_cap, key.rpm_limit, key.expires_at.isoformat()) == (2_500_000, 30, "2099-01-31T00:00:00")
    for bad in (["--spend-cap", "0"], ["--rpm", "0"], ["--expires", "2001-01-01"], ["--expires", "31/01/2099"]):
        failed = run_cli("keys", "create", "api@example.com", *bad, check_rc=2)
        assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr
