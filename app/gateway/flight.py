"""One request in flight: its working state, its attempts, and the receipt they become."""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, insert, update

from app.billing import holds
from app.database import execute, utcnow, write_transaction
from app.gateway.errors import GatewayError
from app.gateway.models import Attempt, Receipt
from app.gateway.parsing import ParsedRequest
from app.gateway.principal import Principal
from app.providers.redact import redact
from app.routing.planner import ModelInfo, Step

# Core tables with bound parameters: compiled once and cached, cheaper than ORM bulk statements.
RECEIPT, ATTEMPT = Receipt.__table__, Attempt.__table__


@dataclass
class HoldRef:
    """The hold a request currently has, and on which wallet."""

    id: int
    wallet: str
    wallet_id: int
    amount: int


@dataclass
class Flight:
    """The working state of one request between its arrival and its receipt."""

    principal: Principal
    endpoint: str
    requested_model: str
    stream: bool
    receipt_id: str = field(default_factory=lambda: "rcpt_" + secrets.token_hex(12))
    started: float = field(default_factory=time.perf_counter)
    created_at: datetime = field(default_factory=utcnow)
    parsed: ParsedRequest | None = None
    model: ModelInfo | None = None
    attempts: list[dict] = field(default_factory=list)
    hold: HoldRef | None = None
    receipt_written: bool = False
    shortfalls: dict[str, int] = field(default_factory=dict)
    tried: int = 0

    def elapsed_ms(self) -> int:
        """Milliseconds since the request arrived."""
        return int((time.perf_counter() - self.started) * 1000)

    def headers(self, step: Step | None = None) -> dict[str, str]:
        """The X-Waybill-* headers: the receipt always, the route once one was tried."""
        headers = {"X-Waybill-Receipt": self.receipt_id}
        if step is not None:
            headers.update({"X-Waybill-Route": step.channel.name, "X-Waybill-Attempts": str(len(self.attempts)),
                            "X-Waybill-Settlement": step.channel.lane})
        return headers


def with_receipt(error: GatewayError, flight: Flight, step: Step | None = None) -> GatewayError:
    """Give an error the request's Waybill headers."""
    error.headers.update(flight.headers(step))
    return error


def record_skip(flight: Flight, step: Step, reason: str, detail: str | None = None) -> None:
    """Note a step that was not tried, and why."""
    flight.attempts.append(attempt_record(step, "skipped", error_class=reason,
                                          detail=detail or reason.replace("_", " ")))


def attempt_record(step: Step, outcome: str, **values) -> dict:
    """One attempt's columns, as the receipt will store them."""
    return {"position": step.position, "channel": step.channel.name, "label": step.channel.label,
            "lane": step.channel.lane, "provider": step.channel.provider, "upstream_model": step.upstream_model,
            "served_model": None, "outcome": outcome, "http_status": None, "error_class": None,
            "detail": None, "latency_ms": None, **values}


def write_receipt(flight: Flight, **values) -> None:
    """Insert the receipt on first write and update it after, inside the caller's transaction."""
    if not flight.receipt_written:
        execute(insert(RECEIPT), {
            "id": flight.receipt_id, "user_id": flight.principal.user_id, "api_key_id": flight.principal.api_key_id,
            "created_at": flight.created_at, "endpoint": flight.endpoint, "requested_model": flight.requested_model,
            "stream": flight.stream, "flags": [], **values})
        flight.receipt_written = True
    elif values:
        execute(update(RECEIPT).where(RECEIPT.c.id == bindparam("receipt_id")),
                {"receipt_id": flight.receipt_id, **values})


def write_attempts(flight: Flight) -> None:
    """Insert every attempt of the request, in one statement."""
    if flight.attempts:
        execute(insert(ATTEMPT), [{"receipt_id": flight.receipt_id, **a} for a in flight.attempts])


def finish(flight: Flight, status: str, stage: str | None, error: str) -> None:
    """Write the receipt of a request that charged nothing, releasing any hold."""
    with write_transaction():
        if flight.hold:
            holds.void(flight.hold.id)
        write_receipt(flight, status=status, failure_stage=stage, error_message=redact(error)[:2000],
                      latency_ms=flight.elapsed_ms())
        write_attempts(flight)


def summary(flight: Flight) -> str:
    """The attempts in one line, as error messages name them: "primary 503, backup timeout"."""
    parts = []
    for a in flight.attempts:
        if a["outcome"] == "error":
            parts.append(f"{a['channel']} {a['http_status'] or a['error_class']}")
        else:
            parts.append(f"{a['channel']} skipped ({a['error_class']})")
    return ", ".join(parts) or "no route configured"
