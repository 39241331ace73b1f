"""Exercise each official SDK against a running Waybill, the way users call it every day.

    python docs/sdk_check.py [BASE_URL] [API_KEY] [--model MODEL]

BASE_URL is Waybill's root (http://127.0.0.1:8000), API_KEY a Waybill key; both may come from
WAYBILL_URL and WAYBILL_KEY instead. MODEL (or WAYBILL_MODEL) is a chat model the key may use; by
default the first one `/v1/models` lists. It runs:

- openai:       models.list and models.retrieve
- anthropic:    messages.count_tokens
- google-genai: models.generate_content, and models.generate_content_stream

and prints what each saw, with the receipt of every paid call. The exit status is 0 only if every
check passed. Every call has a timeout and the SDKs' retries are off, so the script always ends.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Callable

TIMEOUT_S = 60
MAX_STREAM_CHUNKS = 10_000


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url", nargs="?", default=os.environ.get("WAYBILL_URL"))
    parser.add_argument("api_key", nargs="?", default=os.environ.get("WAYBILL_KEY"))
    parser.add_argument("--model", default=os.environ.get("WAYBILL_MODEL"))
    args = parser.parse_args(argv)
    if not args.base_url or not args.api_key:
        parser.error("give BASE_URL and API_KEY as arguments or as WAYBILL_URL and WAYBILL_KEY")
    args.base_url = args.base_url.rstrip("/")
    return args


class Checks:
    """Runs named checks, printing each outcome, and remembers the failures."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def run(self, name: str, check: Callable[[], str]) -> None:
        try:
            seen = check()
        except Exception as exc:  # any failure of any SDK is a failed check, reported and counted
            self.failed.append(name)
            print(f"FAIL {name}: {type(exc).__name__}: {exc}")
            traceback.print_exc(limit=2, file=sys.stdout)
            return
        print(f"ok   {name}: {seen}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    import anthropic
    import openai
    from google import genai
    from google.genai import types

    openai_client = openai.OpenAI(base_url=f"{args.base_url}/v1", api_key=args.api_key, max_retries=0,
                                  timeout=TIMEOUT_S)
    claude = anthropic.Anthropic(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=TIMEOUT_S)
    gemini = genai.Client(api_key=args.api_key,
                          http_options=types.HttpOptions(base_url=args.base_url, timeout=TIMEOUT_S * 1000))
    checks = Checks()
    model = args.model or _first_chat_model(openai_client)
    print(f"Waybill at {args.base_url}, model {model}")

    def receipt(receipt_id: str) -> str:
        found = openai_client.get(f"/receipts/{receipt_id}", cast_to=object)
        route = (found["route"] or {}).get("channel")
        return f"receipt {receipt_id} {found['status']} via {route}, charged ${found['charge_usd']}"

    def retrieve() -> str:
        found = openai_client.models.retrieve(model)
        assert found.id == model and found.object == "model" and found.created > 0, found
        return f"id={found.id} created={found.created} owned_by={found.owned_by}"

    def count_tokens() -> str:
        counted = claude.messages.count_tokens(model=model, system="Be brief.",
                                               messages=[{"role": "user", "content": "How far is the Moon?"}])
        assert counted.input_tokens > 0, counted
        return f"input_tokens={counted.input_tokens}"

    def generate() -> str:
        response = gemini.models.generate_content(model=model, contents="Say hello in five words.",
                                                  config=types.GenerateContentConfig(max_output_tokens=64))
        assert response.text, response
        usage = response.usage_metadata
        headers = response.sdk_http_response.headers
        return (f"text={response.text!r} finish={response.candidates[0].finish_reason} "
                f"tokens={usage.prompt_token_count}+{usage.candidates_token_count}; "
                f"{receipt(headers['x-waybill-receipt'])}")

    def generate_stream() -> str:
        chunks = []
        for chunk in gemini.models.generate_content_stream(model=model, contents="Count from one to five."):
            chunks.append(chunk)
            if len(chunks) >= MAX_STREAM_CHUNKS:
                raise RuntimeError(f"the stream sent more than {MAX_STREAM_CHUNKS} chunks")
        text = "".join(chunk.text or "" for chunk in chunks)
        assert text and chunks[-1].candidates[0].finish_reason, chunks[-1]
        headers = chunks[0].sdk_http_response.headers
        return (f"{len(chunks)} chunks, text={text!r} finish={chunks[-1].candidates[0].finish_reason}; "
                f"{receipt(headers['x-waybill-receipt'])}")

    checks.run("openai models.retrieve", retrieve)
    checks.run("anthropic messages.count_tokens", count_tokens)
    checks.run("google-genai models.generate_content", generate)
    checks.run("google-genai models.generate_content_stream", generate_stream)
    if checks.failed:
        print(f"{len(checks.failed)} of 4 checks failed: {', '.join(checks.failed)}")
        return 1
    print("all 4 checks passed")
    return 0


def _first_chat_model(client) -> str:
    """The first listed model that is not an embedding model (the list says no mode, so the id tells)."""
    ids = [model.id for model in client.models.list().data if "embedding" not in model.id]
    if not ids:
        raise SystemExit("this key may use no chat model; pass --model")
    return ids[0]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
