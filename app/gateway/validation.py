"""Edge validation: one walk over a whole body, then a table of rules for each API's fields.

Everything here runs before any hold, so a malformed body is a 400 that costs nothing. Rules check
types and bounds only; what one provider cannot take (images on a text model, n > 1 on Claude) is
the translators' and the upstream's to refuse. Fields a table does not name pass through untouched,
as the APIs add fields faster than a gateway can list them; the walk still bounds them.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import NoReturn

MAX_DEPTH = 64                # objects and lists inside each other; real bodies stay under 20
INT64_MIN, INT64_MAX = -2**63, 2**63 - 1
MAX_TOKENS = 10_000_000       # above every model's output window, far below what overflows a hold
MAX_CHOICES = 128             # OpenAI's own bound on n
MAX_STOP_SEQUENCES = 4        # OpenAI's bound, so a route may fall back to any provider's channel
MAX_TOOLS = 128
MAX_MESSAGES = 100_000
MAX_DIMENSIONS = 16_384
MAX_EMBEDDING_INPUTS = 2048
MAX_INPUT_TOKENS = 1_000_000  # token ids in one embedding input
NAME_LENGTH = 256             # function, tool and model names
ID_LENGTH = 512               # tool call ids, user ids
ERROR_LENGTH = 500            # characters of an error message


class FieldError(ValueError):
    """A field of the wrong type or out of bounds; the message names the field's path."""

    def __init__(self, message: str) -> None:
        # Paths are built from the client's keys, so the message is capped before a receipt stores it.
        super().__init__(message if len(message) <= ERROR_LENGTH else message[:ERROR_LENGTH - 1] + "…")


def _shown(value: object) -> str:
    """A short, printable account of a client's value: repr escapes NUL and control characters."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= 24 else f"a number of {len(text)} digits"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"a string of {len(value)} characters"
    return "a list" if isinstance(value, list) else "an object"


def _at(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


# --- The walk ---------------------------------------------------------------------------------------

def check_structure(body: object) -> None:
    """Refuse nesting past MAX_DEPTH, integers past 64 bits, NaN and infinities, and NUL in any string."""
    # Iterative, so a deep body cannot exhaust the stack. `where` is a linked (key, parent) pair, cheap to
    # extend; it becomes a path only on failure.
    pending: list[tuple[object, int, tuple | None]] = [(body, 0, None)]
    while pending:
        value, depth, where = pending.pop()
        if isinstance(value, (dict, list)):
            if depth >= MAX_DEPTH:
                raise FieldError(f"{_path(where)}: nested deeper than {MAX_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and "\x00" in key:
                    raise FieldError(f"{_path(where)}: a key holds a NUL character")
                pending.append((item, depth + 1, (key, where)))
        elif isinstance(value, str):
            if "\x00" in value:
                raise FieldError(f"{_path(where)}: NUL characters are not allowed")
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                raise FieldError(f"{_path(where)}: {_shown(value)} does not fit in 64 bits")
        elif isinstance(value, float) and not math.isfinite(value):
            raise FieldError(f"{_path(where)}: must be a finite number, not {_shown(value)}")


def _path(where: tuple | None) -> str:
    keys: list[str | int] = []
    while where is not None:
        key, where = where
        keys.append(key)
    path = ""
    for key in reversed(keys):
        path = _at(path, key)
    return path or "the body"


# --- Rules ------------------------------------------------------------------------------------------

def json_type(value: object) -> str:
    """The JSON type of a parsed value, where a boolean is never an integer."""
    if isinstance(value, bool):
        return "boolean"
    for kind, name in ((int, "integer"), (float, "number"), (str, "string"), (list, "array"), (dict, "object")):
        if isinstance(value, kind):
            return name
    return "null"


class Rule:
    """A check of one value: `expect` says what it wants in an error's words, `shapes` its JSON types."""

    expect: str = "a valid value"
    shapes: frozenset[str] = frozenset()

    def check(self, value: object, where: str) -> None:
        raise NotImplementedError

    def fail(self, value: object, where: str) -> NoReturn:
        raise FieldError(f"{where}: must be {self.expect}, not {_shown(value)}")


@dataclass(frozen=True)
class Integer(Rule):
    """A whole number (never a boolean) within bounds."""

    low: int
    high: int
    shapes = frozenset({"integer"})

    @property
    def expect(self) -> str:
        return f"an integer from {self.low} to {self.high}"

    def check(self, value: object, where: str) -> None:
        if json_type(value) != "integer" or not self.low <= value <= self.high:
            self.fail(value, where)


@dataclass(frozen=True)
class Number(Rule):
    """A number within bounds (so never NaN or infinite); integers count."""

    low: float
    high: float
    shapes = frozenset({"integer", "number"})

    @property
    def expect(self) -> str:
        return f"a number from {self.low:g} to {self.high:g}"

    def check(self, value: object, where: str) -> None:
        if json_type(value) not in self.shapes or not self.low <= value <= self.high:
            self.fail(value, where)


@dataclass(frozen=True)
class Text(Rule):
    """A string, with optional bounds on its length."""

    min_length: int = 0
    max_length: int | None = None
    shapes = frozenset({"string"})

    @property
    def expect(self) -> str:
        if self.max_length is None:
            return "a non-empty string" if self.min_length else "a string"
        if not self.min_length:
            return f"a string of at most {self.max_length} characters"
        return f"a string of {self.min_length} to {self.max_length} characters"

    def check(self, value: object, where: str) -> None:
        if not isinstance(value, str) or len(value) < self.min_length or (
                self.max_length is not None and len(value) > self.max_length):
            self.fail(value, where)


@dataclass(frozen=True)
class OfType(Rule):
    """Any value of one JSON type: a boolean, or an object left to its provider (the walk bounds it)."""

    kind: str
    expect: str

    @property
    def shapes(self) -> frozenset[str]:
        return frozenset({self.kind})

    def check(self, value: object, where: str) -> None:
        if json_type(value) != self.kind:
            self.fail(value, where)


@dataclass(frozen=True)
class OneOf(Rule):
    """One of a few known strings."""

    values: tuple[str, ...]
    shapes = frozenset({"string"})

    @property
    def expect(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)

    def check(self, value: object, where: str) -> None:
        if not isinstance(value, str) or value not in self.values:
            self.fail(value, where)


@dataclass(frozen=True)
class ListOf(Rule):
    """A list of items that each pass `item`."""

    item: Rule
    max_items: int
    min_items: int = 0
    shapes = frozenset({"array"})

    @property
    def expect(self) -> str:
        count = f"{self.min_items} to {self.max_items}" if self.min_items else f"at most {self.max_items}"
        return f"a list of {count} items, each {self.item.expect}"

    def check(self, value: object, where: str) -> None:
        if not isinstance(value, list) or not self.min_items <= len(value) <= self.max_items:
            self.fail(value, where)
        for index, item in enumerate(value):
            self.item.check(item, _at(where, index))


@dataclass(frozen=True)
class MapOf(Rule):
    """An object of free keys, bounded in number and length (and matching a pattern if given)."""

    value: Rule
    max_items: int
    key_length: int
    key_pattern: re.Pattern | None = None
    shapes = frozenset({"object"})

    @property
    def expect(self) -> str:
        return f"an object of at most {self.max_items} keys of up to {self.key_length} characters"

    def check(self, value: object, where: str) -> None:
        if not isinstance(value, dict) or len(value) > self.max_items:
            self.fail(value, where)
        for key, item in value.items():
            if len(key) > self.key_length or (self.key_pattern and not self.key_pattern.fullmatch(key)):
                raise FieldError(f"{where}: {_shown(key)} is not an allowed key")
            self.value.check(item, _at(where, key))


@dataclass(frozen=True)
class Fields(Rule):
    """An object whose named fields pass their rules; a null field counts as absent, unknown ones pass."""

    fields: dict[str, Rule]
    required: tuple[str, ...] = ()
    expect = "an object"
    shapes = frozenset({"object"})

    def check(self, value: object, where: str) -> None:
        if not isinstance(value, dict):
            self.fail(value, where)
        for name in self.required:
            if value.get(name) is None:
                raise FieldError(f"{_at(where, name)}: required")
        for name, rule in self.fields.items():
            if value.get(name) is not None:
                rule.check(value[name], _at(where, name))

    def with_fields(self, required: tuple[str, ...] | None = None, **fields: Rule) -> Fields:
        """This rule with more (or other) fields, and other required ones if given."""
        return replace(self, fields={**self.fields, **fields},
                       required=self.required if required is None else required)


@dataclass(frozen=True)
class AnyOf(Rule):
    """One of several shapes; the one that fits the value's JSON type checks it, for a precise error."""

    rules: tuple[Rule, ...]
    described: str | None = None  # what to say instead of every alternative's own words

    @property
    def expect(self) -> str:
        return self.described or " or ".join(rule.expect for rule in self.rules)

    @property
    def shapes(self) -> frozenset[str]:
        return frozenset().union(*(rule.shapes for rule in self.rules))

    def check(self, value: object, where: str) -> None:
        fitting = [rule for rule in self.rules if json_type(value) in rule.shapes]
        if len(fitting) == 1:
            fitting[0].check(value, where)
            return
        for rule in fitting:  # several alternatives of one JSON type, as embeddings' lists
            try:
                rule.check(value, where)
                return
            except FieldError:
                continue
        self.fail(value, where)


@dataclass(frozen=True)
class Tagged(Rule):
    """An object whose `key` field names its kind; each kind has its own rule."""

    key: str
    kinds: dict[str, Rule]
    noun: str = "type"
    expect = "an object"
    shapes = frozenset({"object"})

    def check(self, value: object, where: str) -> None:
        if not isinstance(value, dict):
            self.fail(value, where)
        kind = value.get(self.key)
        if not isinstance(kind, str) or kind not in self.kinds:
            known = ", ".join(repr(k) for k in self.kinds)
            raise FieldError(f"{_at(where, self.key)}: unknown {self.noun} {_shown(kind)}; expected one of {known}")
        self.kinds[kind].check(value, where)


def check_body(rule: Rule, body: object) -> None:
    """The walk, then the API's table; FieldError (a ValueError) names the first problem."""
    if not isinstance(body, dict):
        raise FieldError("the body must be a JSON object")
    check_structure(body)
    rule.check(body, "")


# --- Shared pieces ----------------------------------------------------------------------------------

OBJECT = OfType("object", "an object")
BOOLEAN = OfType("boolean", "true or false")
TEXT = Text()
NAME = Text(1, NAME_LENGTH)
IDENTIFIER = Text(1, ID_LENGTH)
USER = Text(0, ID_LENGTH)
MODEL = Text(1, NAME_LENGTH)
MAX_TOKENS_RULE = Integer(1, MAX_TOKENS)
SEED = Integer(INT64_MIN, INT64_MAX)
STOP_LIST = ListOf(TEXT, MAX_STOP_SEQUENCES)
FUNCTION_NAMES = ListOf(NAME, MAX_TOOLS)
# OpenAI's logit_bias: token ids, as decimal strings, to a bias from -100 to 100.
LOGIT_BIAS = MapOf(Number(-100, 100), max_items=1024, key_length=10, key_pattern=re.compile(r"\d+"))


# --- OpenAI chat completions ------------------------------------------------------------------------

FUNCTION = Fields({"name": NAME, "description": TEXT, "parameters": OBJECT, "strict": BOOLEAN},
                  required=("name",))
FUNCTION_CALL = Fields({"name": NAME, "arguments": TEXT}, required=("name",))
TOOL_CALL = Fields({
    "id": IDENTIFIER, "type": OneOf(("function",)), "function": FUNCTION_CALL,
    # Where Gemini's thinking models keep the signature a tool call must carry back.
    "extra_content": Fields({"google": Fields({"thought_signature": TEXT})}),
}, required=("id", "function"))

CONTENT_PART = Tagged("type", {
    "text": Fields({"text": TEXT}, required=("text",)),
    "image_url": Fields({"image_url": AnyOf((Text(1), Fields({"url": Text(1), "detail": OneOf(("auto", "low", "high"))},
                                                               required=("url",))))},
                        required=("image_url",)),
    "input_audio": Fields({"input_audio": Fields({"data": Text(1), "format": OneOf(("wav", "mp3"))},
                                                 required=("data",))}, required=("input_audio",)),
    "file": Fields({"file": Fields({"file_data": TEXT, "file_id": TEXT, "filename": TEXT})}, required=("file",)),
    "refusal": Fields({"refusal": TEXT}, required=("refusal",)),
}, noun="content part type")
CONTENT = AnyOf((TEXT, ListOf(CONTENT_PART, MAX_MESSAGES)))

_MESSAGE = Fields({"content": CONTENT, "name": NAME})
MESSAGE = Tagged("role", {
    "system": _MESSAGE, "developer": _MESSAGE, "user": _MESSAGE,
    "assistant": _MESSAGE.with_fields(tool_calls=ListOf(TOOL_CALL, MAX_TOOLS), refusal=TEXT,
                                      function_call=FUNCTION_CALL),
    "tool": _MESSAGE.with_fields(required=("tool_call_id",), tool_call_id=IDENTIFIER),
    "function": _MESSAGE.with_fields(required=("name",)),
}, noun="role")

NAMED_FUNCTION = Fields({"name": NAME}, required=("name",))
TOOL_CHOICE = AnyOf((OneOf(("none", "auto", "required")),
                     Fields({"type": OneOf(("function",)), "function": NAMED_FUNCTION}, required=("function",))))
RESPONSE_FORMAT = Tagged("type", {
    "text": Fields({}), "json_object": Fields({}),
    "json_schema": Fields({"json_schema": Fields({"name": Text(1, 64), "description": TEXT, "schema": OBJECT,
                                                  "strict": BOOLEAN}, required=("name",))},
                          required=("json_schema",)),
}, noun="response_format type")

CHAT = Fields({
    "model": MODEL,
    "messages": ListOf(MESSAGE, MAX_MESSAGES, min_items=1),
    "max_tokens": MAX_TOKENS_RULE, "max_completion_tokens": MAX_TOKENS_RULE,
    "n": Integer(1, MAX_CHOICES),
    "temperature": Number(0, 2), "top_p": Number(0, 1),
    "presence_penalty": Number(-2, 2), "frequency_penalty": Number(-2, 2),
    "seed": SEED,
    "stop": AnyOf((TEXT, STOP_LIST)),
    "stream": BOOLEAN,
    "stream_options": Fields({"include_usage": BOOLEAN, "include_obfuscation": BOOLEAN}),
    "tools": ListOf(Fields({"type": OneOf(("function",)), "function": FUNCTION}, required=("type", "function")),
                    MAX_TOOLS),
    "tool_choice": TOOL_CHOICE,
    "parallel_tool_calls": BOOLEAN,
    "functions": ListOf(FUNCTION, MAX_TOOLS),
    "function_call": AnyOf((OneOf(("none", "auto")), NAMED_FUNCTION)),
    "response_format": RESPONSE_FORMAT,
    "metadata": MapOf(Text(0, 512), max_items=16, key_length=64),
    "user": USER, "safety_identifier": USER, "prompt_cache_key": USER,
    "logit_bias": LOGIT_BIAS,
    "logprobs": BOOLEAN, "top_logprobs": Integer(0, 20),
    "store": BOOLEAN,
    "modalities": ListOf(OneOf(("text", "audio")), 2),
    "service_tier": Text(1, 32), "reasoning_effort": Text(1, 32), "verbosity": OneOf(("low", "medium", "high")),
    "audio": OBJECT, "prediction": OBJECT, "web_search_options": OBJECT,
}, required=("model", "messages"))

# --- OpenAI embeddings ------------------------------------------------------------------------------

TOKEN_IDS = ListOf(Integer(0, 2**31 - 1), MAX_INPUT_TOKENS, min_items=1)
EMBEDDINGS = Fields({
    "model": MODEL,
    "input": AnyOf((Text(1), ListOf(Text(1), MAX_EMBEDDING_INPUTS, min_items=1), TOKEN_IDS,
                    ListOf(TOKEN_IDS, MAX_EMBEDDING_INPUTS, min_items=1)),
                   described=f"a non-empty string, or a list of up to {MAX_EMBEDDING_INPUTS} non-empty strings "
                             "or of token id lists, or one token id list"),
    "dimensions": Integer(1, MAX_DIMENSIONS),
    "encoding_format": OneOf(("float", "base64")),
    "user": USER,
}, required=("model", "input"))

# --- Anthropic's Messages API (Claude clients) ------------------------------------------------------

TEXT_BLOCK = Fields({"type": OneOf(("text",)), "text": TEXT}, required=("type", "text"))
BLOCK_TEXT = AnyOf((TEXT, ListOf(Fields({"type": TEXT, "text": TEXT}), MAX_MESSAGES)))
ANTHROPIC_BLOCK = Tagged("type", {
    "text": Fields({"text": TEXT}, required=("text",)),
    "image": Fields({"source": Tagged("type", {
        "base64": Fields({"media_type": Text(1, 128), "data": Text(1)}, required=("media_type", "data")),
        "url": Fields({"url": Text(1)}, required=("url",)),
    }, noun="image source type")}, required=("source",)),
    "tool_use": Fields({"id": IDENTIFIER, "name": NAME, "input": OBJECT}, required=("id", "name")),
    "tool_result": Fields({"tool_use_id": IDENTIFIER, "content": BLOCK_TEXT, "is_error": BOOLEAN},
                          required=("tool_use_id",)),
    "thinking": Fields({"thinking": TEXT, "signature": TEXT}),
    "redacted_thinking": Fields({"data": TEXT}),
}, noun="content block type")
ANTHROPIC_MESSAGE = Fields({"role": OneOf(("user", "assistant")),
                            "content": AnyOf((TEXT, ListOf(ANTHROPIC_BLOCK, MAX_MESSAGES)))},
                           required=("role", "content"))
ANTHROPIC_TOOL = Fields({"type": OneOf(("custom",)), "name": NAME, "description": TEXT, "input_schema": OBJECT},
                        required=("name",))
PARALLEL = {"disable_parallel_tool_use": BOOLEAN}
ANTHROPIC_TOOL_CHOICE = Tagged("type", {
    "auto": Fields(PARALLEL), "any": Fields(PARALLEL), "none": Fields({}),
    "tool": Fields({"name": NAME, **PARALLEL}, required=("name",)),
}, noun="tool_choice type")

MESSAGES = Fields({
    "model": MODEL,
    "messages": ListOf(ANTHROPIC_MESSAGE, MAX_MESSAGES, min_items=1),
    "max_tokens": MAX_TOKENS_RULE,
    "system": AnyOf((TEXT, ListOf(TEXT_BLOCK, MAX_MESSAGES))),
    "temperature": Number(0, 1), "top_p": Number(0, 1), "top_k": Integer(0, INT64_MAX),
    "stop_sequences": STOP_LIST,
    "stream": BOOLEAN,
    "metadata": Fields({"user_id": USER}),
    "tools": ListOf(ANTHROPIC_TOOL, MAX_TOOLS),
    "tool_choice": ANTHROPIC_TOOL_CHOICE,
    "thinking": OBJECT, "service_tier": Text(1, 32),
}, required=("model", "messages", "max_tokens"))
COUNT_TOKENS = MESSAGES.with_fields(required=("model", "messages"))

# --- Google's generateContent (google-genai clients) ------------------------------------------------

GEMINI_PART = Fields({
    "text": TEXT, "thought": BOOLEAN, "thoughtSignature": TEXT,
    "inlineData": Fields({"mimeType": Text(0, 128), "data": TEXT}),
    "fileData": Fields({"fileUri": TEXT, "mimeType": Text(0, 128)}),
    "functionCall": Fields({"id": IDENTIFIER, "name": NAME, "args": OBJECT}, required=("name",)),
    "functionResponse": Fields({"id": IDENTIFIER, "name": NAME, "response": OBJECT}, required=("name",)),
})
GEMINI_CONTENT = Fields({"role": OneOf(("user", "model")), "parts": ListOf(GEMINI_PART, MAX_MESSAGES)},
                        required=("parts",))
GENERATION_CONFIG = Fields({
    "temperature": Number(0, 2), "topP": Number(0, 1), "topK": Number(0, INT64_MAX), "seed": SEED,
    "presencePenalty": Number(-2, 2), "frequencyPenalty": Number(-2, 2),
    "maxOutputTokens": MAX_TOKENS_RULE, "candidateCount": Integer(1, MAX_CHOICES),
    "stopSequences": STOP_LIST,
    "responseMimeType": Text(0, 128), "responseSchema": OBJECT, "responseJsonSchema": OBJECT,
    "thinkingConfig": OBJECT,
})
GEMINI_TOOL = Fields({"functionDeclarations": ListOf(
    Fields({"name": NAME, "description": TEXT, "parameters": OBJECT, "parametersJsonSchema": OBJECT},
           required=("name",)), MAX_TOOLS)})

PATH_MODEL = Fields({"model": MODEL}, required=("model",))
GENERATE_CONTENT = Fields({
    "contents": ListOf(GEMINI_CONTENT, MAX_MESSAGES, min_items=1),
    "systemInstruction": GEMINI_CONTENT.with_fields(role=TEXT),
    "generationConfig": GENERATION_CONFIG,
    "tools": ListOf(GEMINI_TOOL, MAX_TOOLS),
    "toolConfig": Fields({"functionCallingConfig": Fields({"mode": Text(1, 32),
                                                           "allowedFunctionNames": FUNCTION_NAMES})}),
    "safetySettings": ListOf(OBJECT, 64),
    "cachedContent": Text(1, NAME_LENGTH),
}, required=("contents",))
