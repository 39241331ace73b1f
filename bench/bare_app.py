"""The baseline: bare Flask + requests pass-through to the upstream, no auth, no database."""
from __future__ import annotations

import os

import requests
from flask import Flask, Response, request, stream_with_context

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:9301/bare/v1")
app = Flask(__name__)
session = requests.Session()
session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=1024))


@app.post("/v1/chat/completions")
def chat():
    upstream = session.post(f"{UPSTREAM}/chat/completions", data=request.get_data(),
                            headers={"Content-Type": "application/json", "Authorization": "Bearer sk-bench"},
                            stream=True, timeout=60)
    if "text/event-stream" in upstream.headers.get("Content-Type", ""):
        return Response(stream_with_context(upstream.iter_content(chunk_size=None)), mimetype="text/event-stream")
    return Response(upstream.content, status=upstream.status_code, mimetype="application/json")
