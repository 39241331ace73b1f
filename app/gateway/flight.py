"""One request in flight: its working state, its attempts, and the receipt they become."""
from __future__ import annotations

import enum
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, insert, update

from app.accounts import limits
from app.billing import holds
from app.database import execute, utcnow, write_transaction
from app.gateway import models
from app.gateway.errors import GatewayError
from app.gateway.parsing import ParsedRequest
from app.gateway.principal import Principal
from app.providers.redact import redact
from app.routing.planner import ModelInfo, Step

# Core tables with bound parameters: compiled once and cached, cheaper than ORM bulk statements.
RECEIPT, ATTEMPT = models.Receipt.__table__, models.Attempt.__table__


class ReceiptStatus(enum.StrEnum):
    """How a request ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    REJECTED = "rejected"


class FailureStage(enum.StrEnum):
    """Where a request that did not succeed stopped."""

    BEFORE_ROUTING = "before_routing"
    PRIMARY = "primary"
    AFTER_FALLBACK = "after_fallback"
    MID_STREAM = "mid_stream"
    CLIENT_DISCONNECTED = "client_disconnected"
    NO_ROUTE = "no_route"


class AttemptOutcome(enum.StrEnum):
    """What became of one route step."""

    OK = "ok"
    ERROR = "error"
    SKIPPED = "skipped"


@dataclass
class Attempt:
    """One try of one route step, as the receipt stores it."""

    position: int
    channel: str
    label: str
    lane: str
    provider: str
    upstream_model: str | None
    outcome: AttemptOutcome
    served_model: str | None = None
    http_status: int | None = None
    error_class: str | None = None
    detail: str | None = None
    latency_ms: int | None = None

    @classmethod
    def of(cls, step: Step, outcome: AttemptOutcome, **values) -> Attempt:
        """An attempt at a step of the route."""
        channel = step.channel
        return cls(step.position, channel.name, channel.label, channel.lane, channel.provider, step.upstream_model,
                   outcome, **values)

    def row(self) -> dict:
        """The attempt's columns, with enums as their plain strings."""
        values = asdict(self)
        values["outcome"] = str(self.outcome)
        values["error_class"] = None if self.error_class is None else str(self.error_class)
        return values


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
    primary_position: int | None = None
    attempts: list[Attempt] = field(default_factory=list)
    hold: HoldRef | None = None
    receipt_written: bool = False
    shortfalls: dict[str, int] = field(default_factory=dict)
    failed_step: Step | None = None  # the last step whose upstream call failed

    def elapsed_ms(self) -> int:
        """Milliseconds since the request arrived."""
        return int((time.perf_counter() - self.started) * 1000)

    @property
    def fallback_used(self) -> bool:
        """The request went past its primary, whether it was then served or not."""
        return self.primary_position is not None and any(a.position != self.primary_position for a in self.attempts)

    @property
    def failure_stage(self) -> FailureStage:
        """Where a request that no step served stopped: at its primary, or after falling back."""
        return FailureStage.AFTER_FALLBACK if self.fallback_used else FailureStage.PRIMARY

    def failure_headers(self) -> dict[str, str]:
        """Headers of an answer no step served: the receipt and the attempts, never a route."""
        return {"X-Waybill-Receipt": self.receipt_id, "X-Waybill-Attempts": str(len(self.attempts))}

    def served_headers(self, step: Step, upstream_model: str) -> dict[str, str]:
        """Headers of a served answer: the route that served it and the model that answered."""
        return {**self.failure_headers(), "X-Waybill-Route": step.channel.name,
                "X-Waybill-Settlement": step.channel.lane, "X-Waybill-Upstream-Model": upstream_model}


def refuse(flight: Flight, error: GatewayError, status: ReceiptStatus, stage: FailureStage) -> GatewayError:
    """Write the receipt of a request that ends unserved, and give its error the receipt headers."""
    finish(flight, status, stage, error.message)
    error.headers.update(flight.failure_headers())
    return error


def record_skip(flight: Flight, step: Step, reason: str, detail: str | None = None) -> None:
    """Note a step that was not tried, and why."""
    flight.attempts.append(Attempt.of(step, AttemptOutcome.SKIPPED, error_class=reason,
                                      detail=detail or reason.replace("_", " ")))


def write_receipt(flight: Flight, **values) -> None:
    """Insert the receipt on first write and update it after, inside the caller's transaction."""
    for name in ("status", "failure_stage"):
        if values.get(name) is not None:
            values[name] = str(values[name])
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
    """Insert every attempt of the request, in one statement; upstream text is redacted first."""
    if flight.attempts:
        execute(insert(ATTEMPT), [{"receipt_id": flight.receipt_id, **_redacted(a.row())} for a in flight.attempts])


def _redacted(row: dict) -> dict:
    for name in ("detail", "served_model"):
        if row[name]:
            row[name] = redact(row[name])
    return row


def finish(flight: Flight, status: ReceiptStatus, stage: FailureStage, error: str) -> None:
    """Write the receipt of a request that charged nothing, releasing any hold."""
    with write_transaction():
        if flight.hold:
            release_key_spend(flight)  # the key's row first: the lock order of every money write
            holds.void(flight.hold.id)
        write_receipt(flight, status=status, failure_stage=stage, error_message=redact(error),
                      fallback_used=flight.fallback_used, latency_ms=flight.elapsed_ms())
        write_attempts(flight)


def release_key_spend(flight: Flight) -> None:
    """Give back what the request had reserved against its key's spend cap."""
    if flight.principal.spend_cap is not None and flight.hold:
        limits.release_spend(flight.principal.api_key_id, flight.hold.amount)


def summary(flight: Flight) -> str:
    """The attempts in one line, as error messages name them: "primary 503, backup timeout"."""
    parts = []
    for a in flight.attempts:
        if a.outcome is AttemptOutcome.ERROR:
            parts.append(f"{a.channel} {a.http_status or a.error_class}")
        else:
            parts.append(f"{a.channel} skipped ({a.error_class})")
    return ", ".join(parts) or "no route configured"
