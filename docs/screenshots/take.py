"""Take the screenshots in this folder: `waybill demo` in a scratch folder, some traffic, then Chromium.

Run from the repository root: `.venv/bin/python docs/screenshots/take.py [page ...]`.
Each page is shot at desktop width (1280 px) and at phone width (390 px), full length.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai
import requests
from playwright.sync_api import sync_playwright

from app.demo import ADMIN, USER
from app.simulator.server import set_remote_fault

HERE = Path(__file__).parent
WIDTHS = {"desktop": 1280, "390": 390}
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_demo(folder: Path) -> tuple[subprocess.Popen, str, str, str]:
    """`waybill demo` on free ports; returns the process, its URL, the simulator's root and the printed key."""
    port, simulator_port = free_port(), free_port()
    env = {**os.environ, "WAYBILL_INSTANCE_PATH": str(folder), "WAYBILL_DATABASE_URL": f"sqlite:///{folder / 'demo.db'}"}
    waybill = Path(sys.executable).parent / "waybill"
    process = subprocess.Popen([str(waybill), "demo", "--port", str(port), "--simulator-port", str(simulator_port)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    key, deadline = None, time.monotonic() + 60
    while key is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            raise SystemExit("waybill demo exited early")
        match = re.search(r"API key: (\S+)", line)
        key = match.group(1) if match else None
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):  # the server starts just after the key is printed
        try:
            requests.get(f"{base}/login", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    return process, base, f"http://127.0.0.1:{simulator_port}", key


def make_traffic(base: str, simulator: str, key: str) -> dict[str, str]:
    """A few plain requests, one that falls back, and one where every route fails; their receipts' paths."""
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
    say = [{"role": "user", "content": "Where is my shipment?"}]
    for model in ("gpt-4o-mini", "claude-sonnet-4-6", "gemini-2.5-flash", "gpt-4o"):
        client.chat.completions.create(model=model, messages=say, max_tokens=64)
    set_remote_fault(simulator, "openai-direct", status=503, times=1)
    served = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=say, max_tokens=64)
    set_remote_fault(simulator, "openai-direct", status=503, times=1)
    set_remote_fault(simulator, "relay-b", status=502, times=1)
    try:
        client.chat.completions.create(model="gpt-4.1-mini", messages=say, max_tokens=64)
        raise SystemExit("expected every route of gpt-4.1-mini to fail")
    except openai.APIStatusError as error:
        failed = error.response.headers["X-Waybill-Receipt"]
    return {"receipt": f"/receipts/{served.headers['X-Waybill-Receipt']}", "receipt-failed": f"/receipts/{failed}"}


ADMIN_PAGES = {"admin": "/admin/", "admin-channels": "/admin/channels", "admin-channel": "/admin/channels/1",
               "admin-routes": "/admin/routes", "admin-health": "/admin/health", "admin-users": "/admin/users",
               "admin-user": "/admin/users/2", "admin-codes": "/admin/codes", "admin-review": "/admin/review",
               "admin-catalog": "/admin/catalog", "admin-audit": "/admin/audit"}


def shoot(base: str, receipts: dict[str, str], only: list[str]) -> None:
    user_pages = {"dashboard": "/", "marketplace": "/models", "model": "/models/gpt-4o-mini",
                  "receipts": "/receipts", **receipts, "wallet": "/wallets/credit", "keys": "/keys"}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        admin_pages = {**ADMIN_PAGES, "admin-receipt": f"/admin{receipts['receipt']}"}
        for (email, password), pages in ((USER, user_pages), (ADMIN, admin_pages)):
            for width_name, width in WIDTHS.items():
                context = browser.new_context(base_url=base, viewport={"width": width, "height": 900})
                page = context.new_page()
                page.goto("/login")
                page.fill("input[name=email]", email)
                page.fill("input[name=password]", password)
                page.click("button[type=submit]")
                page.wait_for_url(f"{base}/")
                _shoot_pages(page, pages, width_name, only)
                context.close()
        browser.close()


def _shoot_pages(page, pages: dict[str, str], width_name: str, only: list[str]) -> None:
    for name, path in pages.items():
        if only and name not in only:
            continue
        page.goto(path)
        page.wait_for_load_state("load")
        page.screenshot(path=str(HERE / f"{name}-{width_name}.png"), full_page=True)
        print(f"{name}-{width_name}.png")


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        process, base, simulator, key = start_demo(Path(folder))
        try:
            shoot(base, make_traffic(base, simulator, key), sys.argv[1:])
        finally:
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
