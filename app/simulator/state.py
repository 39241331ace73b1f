"""Fault profiles per channel and the request log, shared by every simulator thread."""
from __future__ import annotations

import base64
import random
import re
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, fields

MAX_HANG_S = 300.0  # a hang still ends, so no test or bench can wait forever
LOG_LIMIT = 20_000
# What chaos picks from: the failures a real upstream shows.
CHAOS_FAULTS = [
    {"status": 503}, {"status": 500}, {"status": 429, "retry_after": 1}, {"drop": True},
    {"cut_after": 2}, {"omit_usage": True}, {"latency_ms": 50}, {"bad_body": True},
]
# How a hostile upstream echoes the key it received (the `echo_key` knob). The base64 forms start at
# each of the three alignments: the key alone, after "user:" (HTTP Basic) and after "Bearer ".
KEY_FORMS = {
    "exact": lambda key: key,
    "run8": lambda key: key[5:13],
    "base64": lambda key: base64.b64encode(key.encode()).decode(),
    "basic": lambda key: base64.b64encode(f"user:{key}".encode()).decode(),
    "base64url": lambda key: base64.urlsafe_b64encode(f"Bearer {key}".encode()).decode().rstrip("="),
    "percent": lambda key: "".join(f"%{byte:02X}" for byte in key.encode()),
    "spaced": lambda key: " ".join(key),
    "masked": lambda key: f"{key[:6]}****{key[-4:]}",
}


def text_words(text: str) -> list[str]:
    """Text cut into one-token words, each with the whitespace after it, so joining them gives the text back."""
    return re.findall(r"\s*\S+\s*", text) or [text]


@dataclass
class Fault:
    """How a channel misbehaves; the defaults describe a healthy upstream."""

    status: int | None = None          # answer with this HTTP error status
    retry_after: int | None = None     # Retry-After header on the error
    latency_ms: int = 0                # wait before answering
    hang: bool = False                 # never answer (until MAX_HANG_S)
    drop: bool = False                 # close the connection without an answer
    cut_after: int | None = None       # stream: drop the connection after N content chunks
    chunk_delay_ms: int = 0            # stream: wait between chunks
    served_model: str | None = None    # report this model instead of the requested one
    omit_usage: bool = False           # send no usage
    bad_body: bool = False             # answer 200 with a body that is not JSON/SSE
    reply_tokens: int = 12             # completion length in tokens (one word each)
    reply_text: str | None = None      # answer with this text instead (its words are the tokens): markup, Markdown
    cached_tokens: int = 0             # prompt tokens reported as served from cache
    prompt_tokens: int | None = None   # report this prompt size: a tokenizer counting more than Waybill's estimate
    # OpenAI protocol only: answer like a loose OpenAI-compatible relay, so tests see what the gateway
    # must conform. Answers and chunks leave out object, created, index, logprobs, refusal,
    # system_fingerprint and usage's total_tokens and prompt_tokens_details; text comes as content parts
    # ([{"type": "text", ...}]). A chat answer also says finish_reason "eos" for "stop", service_tier
    # "on_demand" and a null system_fingerprint. A stream has no role chunk, its text chunks carry no
    # finish_reason and are the only ones naming the model, and it always ends with a usage chunk,
    # whatever stream_options says.
    loose: bool = False
    times: int | None = None           # apply to the next N requests only, then heal
    chaos: float = 0.0                 # chance that a request gets one of CHAOS_FAULTS instead
    redirect_to: str | None = None     # answer 307 with this Location, as a compromised relay might
    # Echo the received key in this KEY_FORMS form: in error messages, the served model, stream error
    # events and an X-Echo-Key header. A hostile upstream, to prove Waybill lets none of it out.
    echo_key: str | None = None

    def __post_init__(self) -> None:
        if self.reply_text is not None:
            self.reply_tokens = len(text_words(self.reply_text))
        if self.echo_key is not None and self.echo_key not in KEY_FORMS:
            raise ValueError(f"echo_key must be one of {sorted(KEY_FORMS)}")

    def key_echo(self, key: str) -> str:
        """The received key in this fault's echo form."""
        return KEY_FORMS[self.echo_key](key)

    @classmethod
    def from_dict(cls, data: dict) -> "Fault":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault knobs: {sorted(unknown)}")
        return cls(**data)


@dataclass
class LoggedRequest:
    """One request the simulator received."""

    channel: str
    path: str
    model: str | None
    stream: bool
    at: float
    headers: dict[str, str]
    body: dict = field(default_factory=dict)


class SimulatorState:
    """Thread-safe fault registry and request log."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}
        self._log: deque[LoggedRequest] = deque(maxlen=LOG_LIMIT)
        self._random = random.Random(1234)  # chaos is reproducible run to run

    def set_fault(self, channel: str, fault: Fault) -> None:
        with self._lock:
            self._faults[channel] = fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._log.clear()

    def take_fault(self, channel: str) -> Fault:
        """The fault for this request, counting down a `times` budget."""
        with self._lock:
            fault = self._faults.get(channel)
            if fault is None:
                return Fault()
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self._faults[channel]
            if fault.chaos and self._random.random() < fault.chaos:
                return Fault(**self._random.choice(CHAOS_FAULTS))
            return fault

    def record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def log(self, channel: str | None = None) -> list[dict]:
        with self._lock:
            return [asdict(e) for e in self._log if channel is None or e.channel == channel]

    def faults(self) -> dict[str, dict]:
        with self._lock:
            return {name: asdict(f) for name, f in self._faults.items()}

    @staticmethod
    def now() -> float:
        return time.time()
