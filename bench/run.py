"""Benchmark Waybill against a bare Flask pass-through, both on gunicorn with the same settings.

    .venv/bin/python bench/run.py            # SQLite in a temp folder
    .venv/bin/python bench/run.py --quick    # fewer requests, for a smoke run

The simulator is the upstream. Each server under test gets one gunicorn worker pinned to core 0;
the simulator and the load generator share core 1. Traffic stays on 127.0.0.1.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SIM_PORT, BARE_PORT, WAYBILL_PORT = 9301, 9302, 9303

CONFIG = """
[[models]]
id = "gpt-4o-mini"
provider = "openai"
context_window = 128000
max_output_tokens = 16384
input_per_mtok = 0.15
output_per_mtok = 0.60
[[channels]]
name = "bench"
provider = "openai"
base_url = "http://127.0.0.1:{port}/bench/v1"
api_key = "sk-bench-0000"
lane = "official"
[channels.models]
"gpt-4o-mini" = "gpt-4o-mini"
[[routes]]
model = "gpt-4o-mini"
channels = ["bench"]
"""


def start(args: list[str], env: dict, core: int) -> subprocess.Popen:
    return subprocess.Popen(["taskset", "-c", str(core), *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def wait_up(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def load(url: str, key: str = "none", **options) -> dict:
    args = [str(BIN / "python"), str(ROOT / "bench" / "load.py"), url, "--key", key]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    out = subprocess.run(["taskset", "-c", "1", *args], capture_output=True, text=True, timeout=900, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def worker_rss_kb(master: subprocess.Popen) -> int:
    """Resident memory of the gunicorn worker(s) under a master (started through taskset)."""
    total = 0
    for child in Path("/proc").iterdir():
        if not child.name.isdigit():
            continue
        try:
            status = (child / "status").read_text()
        except OSError:
            continue
        ppid = int(next(l for l in status.splitlines() if l.startswith("PPid:")).split()[1])
        if ppid == master.pid:
            total += int(next(l for l in status.splitlines() if l.startswith("VmRSS:")).split()[1])
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--streams", type=int, default=1000)
    opts = parser.parse_args()
    n1, n16 = (100, 400) if opts.quick else (400, 2000)
    tmp = Path(tempfile.mkdtemp(prefix="waybill-bench-"))
    env = {**os.environ, "WAYBILL_INSTANCE_PATH": str(tmp), "WAYBILL_DATABASE_URL": os.environ.get(
        "WAYBILL_DATABASE_URL", f"sqlite:///{tmp}/bench.db"), "WAYBILL_WORKERS": "1",
        "BENCH_UPSTREAM": f"http://127.0.0.1:{SIM_PORT}/bare/v1",
        # One key opens every held stream, so the per-key in-flight bound must not be what is measured.
        "WAYBILL_MAX_IN_FLIGHT_PER_KEY": str(opts.streams + 100)}
    waybill = [str(BIN / "waybill")]
    (tmp / "bench.toml").write_text(CONFIG.format(port=SIM_PORT))
    for cmd in (["init-db"], ["config", "import", str(tmp / "bench.toml")],
                ["users", "create", "bench@example.com", "--password", "bench-password"],
                ["wallets", "topup", "bench@example.com", "credit", "100000"]):
        subprocess.run(waybill + cmd, env=env, check=True, capture_output=True)
    key = subprocess.run(waybill + ["keys", "create", "bench@example.com"], env=env, check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]

    sim = start([str(BIN / "gunicorn"), "-k", "gevent", "-w", "1", "--worker-connections", "4000",
                 "-b", f"127.0.0.1:{SIM_PORT}", "app.simulator.app:create_simulator()"], env, core=1)
    results: dict = {}
    try:
        wait_up(f"http://127.0.0.1:{SIM_PORT}/_control/health")
        direct = f"http://127.0.0.1:{SIM_PORT}/direct/v1/chat/completions"
        results["direct c1"] = load(direct, concurrency=1, count=n1)
        results["direct c16 stream"] = load(direct, concurrency=16, count=n16 // 4, stream=True)
        for name, port, app_args in (("bare", BARE_PORT, ["bench.bare_app:app"]), ("waybill", WAYBILL_PORT, [])):
            server = start([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", *app_args],
                           env, core=0)
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            try:
                wait_up(f"http://127.0.0.1:{port}/")
                results[f"{name} c1"] = load(url, key, concurrency=1, count=n1)
                results[f"{name} c16"] = load(url, key, concurrency=16, count=n16)
                results[f"{name} c16 stream"] = load(url, key, concurrency=16, count=n16 // 4, stream=True)
                if name == "waybill":
                    results["streams"] = held_streams(url, key, server, opts.streams, env)
            finally:
                stop(server)
    finally:
        stop(sim)
    report(results)


def held_streams(url: str, key: str, server: subprocess.Popen, streams: int, env: dict) -> dict:
    """Hold many slow streams on one worker; measure memory and check every receipt was written."""
    requests.put(f"http://127.0.0.1:{SIM_PORT}/_control/faults/bench",
                 json={"chunk_delay_ms": 500, "reply_tokens": 20}, timeout=5).raise_for_status()
    idle = worker_rss_kb(server)
    proc = subprocess.Popen([str(BIN / "python"), str(ROOT / "bench" / "load.py"), url, "--key", key,
                             "--hold-streams", str(streams), "--max-seconds", "240"],
                            stdout=subprocess.PIPE, text=True)
    time.sleep(6)  # all streams are open by now and will run ~10 s
    busy = worker_rss_kb(server)
    out, _ = proc.communicate(timeout=300)
    requests.delete(f"http://127.0.0.1:{SIM_PORT}/_control/faults", timeout=5)
    result = json.loads(out.strip().splitlines()[-1])
    from sqlalchemy import create_engine, text
    engine = create_engine(env["WAYBILL_DATABASE_URL"])
    with engine.connect() as conn:
        # Only this phase's receipts: they are the ones for the slow, held streams.
        result["receipts_succeeded_streams"] = conn.execute(text(
            "SELECT count(*) FROM receipt WHERE stream AND status = 'succeeded' AND latency_ms > 5000")).scalar()
    engine.dispose()
    check = subprocess.run([str(BIN / "waybill"), "ledger", "check"], env=env, capture_output=True, text=True)
    result.update(idle_rss_mb=idle / 1024, held_rss_mb=busy / 1024,
                  rss_per_stream_kb=(busy - idle) / streams if streams else None,
                  ledger_check=check.stdout.strip() or check.stderr.strip()[-300:])
    return result


def report(results: dict) -> None:
    print(json.dumps(results, indent=2))
    direct = results["direct c1"]["p50_ms"]
    bare_added = results["bare c1"]["p50_ms"] - direct
    way_added = results["waybill c1"]["p50_ms"] - direct
    ttfb_direct = results["direct c16 stream"]["ttfb_p50_ms"]
    print("\nfigure                                   bare      waybill   target")
    print(f"added p50 latency, c1 (ms)            {bare_added:7.2f}   {way_added:7.2f}   <= 2x bare "
          f"({'met' if way_added <= 2 * bare_added else 'NOT met'}: {way_added / bare_added:.2f}x)")
    bare_rps, way_rps = results["bare c16"]["rps"], results["waybill c16"]["rps"]
    print(f"req/s, c16                            {bare_rps:7.1f}   {way_rps:7.1f}   >= 50% of bare "
          f"({'met' if way_rps >= bare_rps / 2 else 'NOT met'}: {100 * way_rps / bare_rps:.0f}%)")
    bare_ttfb = results["bare c16 stream"]["ttfb_p50_ms"] - ttfb_direct
    way_ttfb = results["waybill c16 stream"]["ttfb_p50_ms"] - ttfb_direct
    print(f"TTFB overhead p50, c16 stream (ms)    {bare_ttfb:7.2f}   {way_ttfb:7.2f}   <= 5 ms "
          f"({'met' if way_ttfb <= 5 else 'NOT met'})")
    if "streams" in results:
        s = results["streams"]
        print(f"held streams: {s['completed']}/{s['streams']} completed, {s['receipts_succeeded_streams']} receipts, "
              f"RSS {s['idle_rss_mb']:.0f} -> {s['held_rss_mb']:.0f} MB ({s['rss_per_stream_kb']:.1f} KB per stream), "
              f"{s['ledger_check']}")


if __name__ == "__main__":
    main()
