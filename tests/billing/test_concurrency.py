"""Many writers race for one wallet: exactly the holds it covers succeed, and nothing else moves."""
from __future__ import annotations

import multiprocessing
import threading
import time

import pytest
from sqlalchemy.exc import OperationalError

from app.billing import holds
from app.billing.audit import ledger_violations
from app.billing.models import Hold, Wallet
from app.billing.wallets import wallet_of
from app.extensions import db

HOLD = 10_000  # µ$
COVERED = 25   # the wallet covers exactly this many holds
START_TIMEOUT_S = 120


def _attempt(wallet_id: int) -> str:
    """Try one hold inside the current app context and name the outcome."""
    try:
        holds.reserve(wallet_id, HOLD, memo="race")
        return "ok"
    except holds.InsufficientBalance:
        return "insufficient"
    except OperationalError as exc:
        return "locked" if "locked" in str(exc) else f"error: {exc}"
    except Exception as exc:  # noqa: BLE001 (every other outcome is a failure to report)
        return f"error: {exc!r}"
    finally:
        db.session.remove()


def _process_worker(database_url: str, wallet_id: int, barrier, results) -> None:
    from app import create_app
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url})
    with app.app_context():
        barrier.wait(timeout=START_TIMEOUT_S)
        results.put(_attempt(wallet_id))
        db.engine.dispose()


@pytest.fixture
def contested_wallet(make_user):
    user = make_user("race@example.com", credit_usd=f"{HOLD * COVERED / 1_000_000:.6f}")
    return wallet_of(user.id, "credit").id


def _assert_exactly_covered(outcomes: list[str], wallet_id: int, started: float, label: str) -> None:
    counts = {o: outcomes.count(o) for o in set(outcomes)}
    print(f"\n{label}: {len(outcomes)} writers, outcomes {counts}, {time.monotonic() - started:.2f}s")
    assert counts.get("ok") == COVERED, counts
    assert counts.get("insufficient") == len(outcomes) - COVERED, counts
    db.session.rollback()  # drop this thread's old read snapshot before looking
    wallet = db.session.get(Wallet, wallet_id, populate_existing=True)
    assert (wallet.balance, wallet.reserved) == (HOLD * COVERED, HOLD * COVERED)
    open_holds = db.session.scalar(db.select(db.func.count(Hold.id)).where(Hold.status == "open"))
    assert open_holds == COVERED
    assert ledger_violations() == []


def test_sixty_processes_reserve_on_one_wallet(app, contested_wallet, database_url):
    writers = 60
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(writers), ctx.Queue()
    db.session.remove()
    db.engine.dispose()  # children must not share the parent's connections
    procs = [ctx.Process(target=_process_worker, args=(database_url, contested_wallet, barrier, results))
             for _ in range(writers)]
    started = time.monotonic()
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=START_TIMEOUT_S) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    _assert_exactly_covered(outcomes, contested_wallet, started, "processes")


def test_two_hundred_threads_reserve_on_one_wallet(app, contested_wallet):
    writers = 200
    barrier, outcomes, lock = threading.Barrier(writers), [], threading.Lock()

    def worker():
        with app.app_context():
            barrier.wait(timeout=START_TIMEOUT_S)
            outcome = _attempt(contested_wallet)
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(writers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=START_TIMEOUT_S)
    assert len(outcomes) == writers, "a writer did not finish"
    _assert_exactly_covered(outcomes, contested_wallet, started, "threads")
