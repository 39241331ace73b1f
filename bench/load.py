"""Load generator (gevent): latency, throughput, time to first byte and held streams.

Run by bench/run.py; prints one JSON line of results. Every loop is bounded in count and time.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402
import requests  # noqa: E402

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "benchmark request " * 8}], "max_tokens": 16}


def one(session: requests.Session, url: str, key: str, stream: bool) -> tuple[float, float]:
    """One request: (total seconds, seconds to first body byte)."""
    body = dict(BODY, stream=True) if stream else BODY
    started = time.perf_counter()
    with session.post(url, json=body, headers={"Authorization": f"Bearer {key}"}, stream=True, timeout=120) as r:
        if r.status_code >= 400:
            raise requests.HTTPError(f"{r.status_code}: {r.text[:200]}")
        first = None
        for _ in r.iter_content(chunk_size=None):
            if first is None:
                first = time.perf_counter() - started
        return time.perf_counter() - started, first or 0.0


def run(url: str, key: str, concurrency: int, count: int, stream: bool, max_seconds: float) -> dict:
    sessions = [requests.Session() for _ in range(concurrency)]
    totals, firsts, errors, first_error = [], [], 0, {}
    deadline = time.monotonic() + max_seconds

    def worker(index: int) -> None:
        nonlocal errors
        session = sessions[index % concurrency]
        if time.monotonic() > deadline:
            return
        try:
            total, first = one(session, url, key, stream)
            totals.append(total)
            firsts.append(first)
        except requests.RequestException as exc:
            errors += 1
            first_error.setdefault("error", str(exc))

    for i in range(min(20, count)):  # warm connections and caches
        worker(i)
    totals.clear(), firsts.clear()
    pool = gevent.pool.Pool(concurrency)
    started = time.perf_counter()
    for i in range(count):
        pool.spawn(worker, i)
    pool.join(timeout=max_seconds + 30)
    elapsed = time.perf_counter() - started
    return {"n": len(totals), "errors": errors, "p50_ms": statistics.median(totals) * 1000 if totals else None,
            "p90_ms": statistics.quantiles(totals, n=10)[-1] * 1000 if len(totals) > 10 else None,
            "ttfb_p50_ms": statistics.median(firsts) * 1000 if firsts else None,
            "rps": len(totals) / elapsed if elapsed else None, **first_error}


def hold_streams(url: str, key: str, streams: int, max_seconds: float) -> dict:
    """Open `streams` streams at once; each upstream stream is slow, so all are held together."""
    done, errors, started = [], [], time.perf_counter()

    def worker() -> None:
        try:
            with requests.post(url, json=dict(BODY, stream=True), headers={"Authorization": f"Bearer {key}"},
                               stream=True, timeout=120) as r:
                r.raise_for_status()
                for _ in r.iter_content(chunk_size=None):
                    pass
            done.append(1)
        except requests.RequestException as exc:
            errors.append(type(exc).__name__)

    greenlets = [gevent.spawn(worker) for _ in range(streams)]
    gevent.joinall(greenlets, timeout=max_seconds)
    return {"streams": streams, "completed": len(done), "errors": len(errors),
            "error_kinds": sorted(set(errors))[:5], "seconds": time.perf_counter() - started}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--key", default="none")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--hold-streams", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=120)
    args = parser.parse_args()
    if args.hold_streams:
        print(json.dumps(hold_streams(args.url, args.key, args.hold_streams, args.max_seconds)))
    else:
        print(json.dumps(run(args.url, args.key, args.concurrency, args.count, args.stream, args.max_seconds)))
