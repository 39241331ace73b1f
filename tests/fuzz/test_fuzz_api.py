"""Fuzzing every model endpoint against a running server: bad input is a 4xx that costs nothing, never a 5xx.

Each body is a well-formed one with up to two of its fields (top-level or nested) swapped for junk: wrong
types, integers past 64 bits, NaN, NUL bytes, deep nesting. Every provider sits behind the models drawn:
OpenAI (gpt-4o-mini's primary), an OpenAI-compatible relay (text-only-model, and the fallbacks), Anthropic
and Gemini. After every answer: no 5xx, no open hold, and after a 4xx no wallet change.

Runs are derandomized, so CI sees the same examples each time; WAYBILL_FUZZ_RANDOM=1 explores new ones.
"""
from __future__ import annotations

import copy
import json
import os

import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import assert_ledger_green

FUZZ = settings(max_examples=150, deadline=None, derandomize=os.environ.get("WAYBILL_FUZZ_RANDOM") != "1",
                database=None, suppress_health_check=[HealthCheck.too_slow])
CHAT_MODELS = ["gpt-4o-mini", "text-only-model", "claude-sonnet-4-6", "gemini-2.5-flash"]
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=16)
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


# Values few fields take as they are.
JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3),
    st.sampled_from([2**31, 2**63, 2**64, -2**63 - 1, 10**30, 1e30, -1.5]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6), st.just("a\x00b"), st.just(""),
    st.lists(st.integers(-9, -1), min_size=1, max_size=3), st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(-2, 2), max_size=2),
    st.integers(62, 120).map(_nested),
)


def _parent(body: dict, path: tuple) -> dict | list | None:
    """The container that holds the place `path` names, when the body has that place."""
    target: object = body
    for step in path[:-1]:
        if isinstance(target, dict) and step in target:
            target = target[step]
        elif isinstance(target, list) and isinstance(step, int) and step < len(target):
            target = target[step]
        else:
            return None
    last = path[-1]
    fits = isinstance(target, dict) or (isinstance(target, list) and isinstance(last, int) and last < len(target))
    return target if fits else None


@st.composite
def mutated(draw, valid: st.SearchStrategy, paths: list[tuple]) -> dict:
    """A well-formed body with zero to two of its places (among those it has) replaced by junk."""
    body = copy.deepcopy(draw(valid))  # strategies hand out shared constants; junk goes into a copy
    places = [path for path in paths if _parent(body, path) is not None]
    for path in draw(st.lists(st.sampled_from(places), max_size=2)):
        parent = _parent(body, path)
        if parent is not None:  # an earlier swap may have taken the place away
            parent[path[-1]] = draw(JUNK)
    return body


# --- OpenAI chat completions ------------------------------------------------------------------------

TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
CHAT_MESSAGES = st.sampled_from([
    ASK,
    [{"role": "system", "content": "Be brief."}, *ASK],
    [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                  {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}],
    [*ASK, {"role": "assistant", "content": None, "tool_calls": [CALL]},
     {"role": "tool", "tool_call_id": "call_1", "content": "18 C and sunny"}],
])
CHAT_FIELDS = dict(
    max_tokens=st.integers(1, 64), max_completion_tokens=st.integers(1, 64), n=st.integers(1, 2),
    temperature=st.floats(0, 2), top_p=st.floats(0, 1), presence_penalty=st.floats(-2, 2),
    frequency_penalty=st.floats(-2, 2), seed=st.integers(-2**63, 2**63 - 1),
    stop=st.one_of(TEXT, st.lists(TEXT, max_size=4)), stream=st.booleans(),
    stream_options=st.fixed_dictionaries({"include_usage": st.booleans()}),
    tools=st.just([TOOL]), tool_choice=st.sampled_from(["auto", "none", "required",
                                                        {"type": "function", "function": {"name": "get_weather"}}]),
    parallel_tool_calls=st.booleans(),
    response_format=st.sampled_from([
        {"type": "text"}, {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}}]),
    metadata=st.dictionaries(st.text("abc", min_size=1, max_size=8), TEXT, max_size=3), user=TEXT,
    logit_bias=st.dictionaries(st.integers(0, 100_000).map(str), st.integers(-100, 100), max_size=3),
    logprobs=st.booleans(), top_logprobs=st.integers(0, 20),
)
CHAT_BODIES = mutated(
    st.fixed_dictionaries({"model": st.sampled_from(CHAT_MODELS), "messages": CHAT_MESSAGES}, optional=CHAT_FIELDS),
    [(name,) for name in ["model", "messages", "x_extension", *CHAT_FIELDS]] + [
        ("messages", 0), ("messages", 0, "role"), ("messages", 0, "content"), ("messages", 0, "content", 0),
        ("messages", 0, "content", 0, "text"), ("messages", 0, "content", 1, "image_url"),
        ("messages", 1, "tool_calls"), ("messages", 1, "tool_calls", 0), ("messages", 1, "tool_calls", 0, "id"),
        ("messages", 1, "tool_calls", 0, "function"), ("messages", 1, "tool_calls", 0, "function", "name"),
        ("messages", 1, "tool_calls", 0, "function", "arguments"), ("messages", 2, "tool_call_id"),
        ("tools", 0), ("tools", 0, "function"), ("tools", 0, "function", "parameters"),
        ("response_format", "type"), ("response_format", "json_schema"), ("stream_options", "include_usage"),
    ])


# --- OpenAI embeddings ------------------------------------------------------------------------------

EMBEDDING_FIELDS = dict(dimensions=st.integers(1, 64), encoding_format=st.sampled_from(["float", "base64"]),
                        user=TEXT)
EMBEDDING_BODIES = mutated(
    st.fixed_dictionaries({"model": st.just("text-embedding-3-small"),
                           "input": st.one_of(TEXT.filter(bool), st.lists(TEXT.filter(bool), min_size=1, max_size=3),
                                              st.lists(st.lists(st.integers(0, 50_000), min_size=1, max_size=4),
                                                       min_size=1, max_size=2))},
                          optional=EMBEDDING_FIELDS),
    [("model",), ("input",), ("input", 0), ("input", 0, 0), *((name,) for name in EMBEDDING_FIELDS)],
)


# --- Anthropic's Messages API -----------------------------------------------------------------------

CLAUDE_TOOL = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {}}}
CLAUDE_MESSAGES = st.sampled_from([
    ASK,
    [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                  {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                               "data": "iVBORw0KGgo="}}]}],
    [*ASK, {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                              "input": {"city": "Paris"}}]},
     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]}],
])
MESSAGES_FIELDS = dict(
    system=st.one_of(TEXT, st.just([{"type": "text", "text": "Be brief."}])), temperature=st.floats(0, 1),
    top_p=st.floats(0, 1), top_k=st.integers(0, 500), stop_sequences=st.lists(TEXT, max_size=4),
    stream=st.booleans(), metadata=st.fixed_dictionaries({"user_id": TEXT}), tools=st.just([CLAUDE_TOOL]),
    tool_choice=st.sampled_from([{"type": "auto"}, {"type": "any"}, {"type": "none"},
                                 {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}]),
)
MESSAGES_BODIES = mutated(
    st.fixed_dictionaries({"model": st.sampled_from(CHAT_MODELS), "max_tokens": st.integers(1, 64),
                           "messages": CLAUDE_MESSAGES}, optional=MESSAGES_FIELDS),
    [(name,) for name in ["model", "max_tokens", "messages", *MESSAGES_FIELDS]] + [
        ("messages", 0), ("messages", 0, "role"), ("messages", 0, "content"), ("messages", 0, "content", 0),
        ("messages", 0, "content", 1, "source"), ("messages", 0, "content", 1, "source", "data"),
        ("messages", 1, "content", 0, "id"), ("messages", 1, "content", 0, "name"),
        ("messages", 1, "content", 0, "input"), ("messages", 2, "content", 0, "tool_use_id"),
        ("messages", 2, "content", 0, "content"), ("tools", 0), ("tools", 0, "name"), ("tools", 0, "input_schema"),
        ("tool_choice", "type"), ("tool_choice", "name"), ("metadata", "user_id"), ("system", 0, "text"),
    ])


# --- Google's generateContent -----------------------------------------------------------------------

USER_TURN = {"role": "user", "parts": [{"text": "What is the weather in Paris?"}]}
GEMINI_CONTENTS = st.sampled_from([
    [USER_TURN],
    [{"role": "user", "parts": [{"text": "What is this?"}, {"inlineData": {"mimeType": "image/png",
                                                                           "data": "iVBORw0KGgo="}}]}],
    [USER_TURN, {"role": "model", "parts": [{"functionCall": {"id": "c1", "name": "get_weather",
                                                              "args": {"city": "Paris"}}}]},
     {"role": "user", "parts": [{"functionResponse": {"id": "c1", "name": "get_weather",
                                                      "response": {"content": "sunny"}}}]}],
])
GENERATION_CONFIG = st.fixed_dictionaries({}, optional=dict(
    temperature=st.floats(0, 2), topP=st.floats(0, 1), topK=st.integers(1, 100), seed=st.integers(0, 2**31 - 1),
    maxOutputTokens=st.integers(1, 64), stopSequences=st.lists(TEXT, max_size=4), candidateCount=st.just(1),
    responseMimeType=st.sampled_from(["text/plain", "application/json"])))
GEMINI_FIELDS = dict(
    systemInstruction=st.just({"parts": [{"text": "Be brief."}]}), generationConfig=GENERATION_CONFIG,
    tools=st.just([{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "OBJECT"}}]}]),
    toolConfig=st.sampled_from([{"functionCallingConfig": {"mode": mode}} for mode in ("AUTO", "ANY", "NONE")]),
)
GEMINI_BODIES = mutated(
    st.fixed_dictionaries({"contents": GEMINI_CONTENTS}, optional=GEMINI_FIELDS),
    [(name,) for name in ["contents", *GEMINI_FIELDS]] + [
        ("contents", 0), ("contents", 0, "role"), ("contents", 0, "parts"), ("contents", 0, "parts", 0),
        ("contents", 0, "parts", 0, "text"), ("contents", 0, "parts", 1, "inlineData"),
        ("contents", 0, "parts", 1, "inlineData", "mimeType"), ("contents", 1, "parts", 0, "functionCall"),
        ("contents", 1, "parts", 0, "functionCall", "id"), ("contents", 1, "parts", 0, "functionCall", "name"),
        ("contents", 1, "parts", 0, "functionCall", "args"), ("contents", 2, "parts", 0, "functionResponse", "name"),
        ("generationConfig", "maxOutputTokens"), ("generationConfig", "stopSequences"),
        ("generationConfig", "temperature"), ("generationConfig", "candidateCount"), ("tools", 0),
        ("tools", 0, "functionDeclarations"), ("toolConfig", "functionCallingConfig"),
    ])
GEMINI_PATHS = st.sampled_from([f"/v1beta/models/{model}:{action}" for model in CHAT_MODELS
                                for action in ("generateContent", "streamGenerateContent?alt=sse")])


# --- The invariant ----------------------------------------------------------------------------------

# One channel of each provider: OpenAI, an OpenAI-compatible relay, Anthropic and Gemini.
EVERY_PROVIDER = {"primary", "relay-c", "claude-direct", "gemini-direct"}


def _send_and_check(world, live_server: str, path: str, body: object) -> None:
    """POST the body (NaN and all, as json.dumps writes it; bytes as they are) and check the answer and wallets."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    before = world.balances()
    response = requests.post(f"{live_server}{path}", data=data, timeout=30,
                             headers={"Authorization": f"Bearer {world.key}", "Content-Type": "application/json"})
    answer = response.content  # a stream is read to its end, so its hold has settled
    assert response.status_code < 500, f"{path} {data[:500]!r} -> {response.status_code} {answer[:300]!r}"
    after = world.balances()
    assert all(reserved == 0 for _, reserved in after.values()), f"a hold stayed open: {after}"
    if response.status_code >= 400:
        assert isinstance(response.json(), dict)
        assert after == before, f"a {response.status_code} moved money: {before} -> {after}"


def _fuzz(world, live_server: str, calls: st.SearchStrategy, crashers: list[tuple[str, object]],
          channels: set[str] = EVERY_PROVIDER) -> None:
    """Send the reported crashers, then the drawn (path, body) calls; end with every ledger invariant."""
    @FUZZ
    @given(call=calls)
    def send(call: tuple[str, object]) -> None:
        _send_and_check(world, live_server, *call)

    for crasher in crashers:
        send = example(call=crasher)(send)
    send()
    # Bodies that reach no upstream test parsing only: every provider's translation must have had its turn.
    assert channels <= {entry["channel"] for entry in world.sim.log()}
    assert_ledger_green()


CHAT = "/v1/chat/completions"
CHAT_CRASHERS = [(CHAT, body) for body in (
    {"model": "claude-sonnet-4-6", "messages": ASK, "stop": 5},
    {"model": "claude-sonnet-4-6", "messages": [*ASK, {"role": "assistant", "content": "x", "tool_calls": 5}]},
    {"model": "gemini-2.5-flash", "messages": ASK, "response_format": "text"},
    {"model": "gemini-2.5-flash", "messages": [*ASK, {"role": "assistant", "tool_calls": [{**CALL, "id": ["c"]}]},
                                               {"role": "tool", "tool_call_id": ["c"], "content": "x"}]},
    {"model": "claude-sonnet-4-6", "messages": [*ASK, {"role": "assistant", "tool_calls": [{**CALL, "id": ["c"]}]},
                                                {"role": "tool", "tool_call_id": ["c"], "content": "x"}]},
    {"model": "gpt-4o-mini", "messages": ASK, "max_tokens": 2**63},
    {"model": "claude-sonnet-4-6", "messages": ASK, "max_tokens": 1e30},
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a\x00b"}]},
    {"model": "gemini-2.5-flash", "messages": ASK, "temperature": float("nan")},
    # Deep enough to break a recursive walk (and Hypothesis's printer), so it travels as ready-made JSON.
    json.dumps({"model": "gpt-4o-mini", "messages": ASK, "metadata": _nested(700)}).encode(),
)]


def test_chat_completions_never_fail_or_charge_on_bad_input(providers, live_server):
    _fuzz(providers, live_server, st.tuples(st.just(CHAT), CHAT_BODIES), CHAT_CRASHERS)


def test_embeddings_never_fail_or_charge_on_bad_input(providers, live_server):
    crashers = [("/v1/embeddings", {"model": "text-embedding-3-small", "input": "x", "dimensions": value})
                for value in ("abc", 0, 2**64)]
    _fuzz(providers, live_server, st.tuples(st.just("/v1/embeddings"), EMBEDDING_BODIES), crashers, {"primary"})


def test_messages_never_fail_or_charge_on_bad_input(providers, live_server):
    base = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": ASK}
    crashers = [("/v1/messages", {**base, **change}) for change in (
        {"stop_sequences": 5}, {"metadata": "u-1"}, {"tools": 5}, {"max_tokens": 2**63}, {"system": "a\x00"})]
    _fuzz(providers, live_server, st.tuples(st.just("/v1/messages"), MESSAGES_BODIES), crashers)


def test_generate_content_never_fails_or_charges_on_bad_input(providers, live_server):
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    crashers = [(path, {"contents": [USER_TURN], **change}) for change in (
        {"tools": 5}, {"toolConfig": "auto"}, {"generationConfig": {"stopSequences": 5}},
        {"contents": [USER_TURN, {"role": "model", "parts": [{"functionCall": {"id": ["c"], "name": "f"}}]}]})]
    _fuzz(providers, live_server, st.tuples(GEMINI_PATHS, GEMINI_BODIES), crashers)
