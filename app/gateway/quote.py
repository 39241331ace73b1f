"""What a chat request would hold before it is sent: the gateway's own worst case, per route step.

The gateway holds exactly these amounts, so a page can tell a user beforehand whether any allowed
wallet covers a request, without sending it.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from app.billing.models import WALLET_NAMES, WALLET_OF_LANE, Lane
from app.billing.pricing import Usage, charge_micros
from app.billing.wallets import wallets_of
from app.database import utcnow
from app.gateway.catalog import published_model
from app.gateway.parsing import DEFAULT_MAX_OUTPUT, ParsedRequest, estimate_tokens, parse_chat
from app.gateway.principal import Principal, check_scope
from app.routing.planner import ModelInfo, plan


def max_completion_tokens(parsed: ParsedRequest, model: ModelInfo) -> int:
    """The most completion tokens a request may be billed for: n × max_tokens, or n × the model's max output."""
    if parsed.endpoint == "embeddings":
        return 0
    choices = parsed.body.get("n") or 1  # validated at the edge: a small positive integer
    return choices * (parsed.max_tokens or model.max_output_tokens or DEFAULT_MAX_OUTPUT)


def hold_amount(parsed: ParsedRequest, model: ModelInfo, multiplier: Fraction) -> int:
    """The worst case: the estimated prompt plus every choice's max_tokens (or the model's max output)."""
    usage = Usage(estimate_tokens(parsed.prompt_text), max_completion_tokens(parsed, model))
    return charge_micros(usage, model.price, multiplier)


@dataclass(frozen=True)
class StepQuote:
    """One usable route step: the wallet it would hold on, how much, and whether that wallet has it."""

    position: int
    channel_label: str
    lane: str
    wallet: str
    hold: int
    available: int

    @property
    def wallet_name(self) -> str:
        return WALLET_NAMES[self.wallet]

    @property
    def covered(self) -> bool:
        return self.available >= self.hold


@dataclass(frozen=True)
class Quote:
    """A chat request priced before sending: its token estimate and each usable step's hold."""

    model_id: str
    prompt_tokens: int
    completion_tokens: int
    steps: list[StepQuote]

    @property
    def first_covered(self) -> StepQuote | None:
        """The step the gateway would hold on first, were every usable step healthy."""
        return next((step for step in self.steps if step.covered), None)


def quote(principal: Principal, body: object) -> Quote:
    """Price a chat body as the gateway would hold it; GatewayError when the body or model is refused."""
    parsed = parse_chat(body)
    model = published_model(parsed.model, "chat")
    check_scope(principal, model.id)
    wallets = wallets_of(principal.user_id)
    steps = []
    for step in plan(model.id, list(principal.lanes), utcnow()):
        if step.skip is not None:
            continue
        wallet = WALLET_OF_LANE[Lane(step.channel.lane)].value
        steps.append(StepQuote(step.position, step.channel.label, step.channel.lane, wallet,
                               hold_amount(parsed, model, step.channel.multiplier), wallets[wallet].available))
    return Quote(model.id, estimate_tokens(parsed.prompt_text), max_completion_tokens(parsed, model), steps)
