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
    """A few plain requests, one that falls back, one where every route fails, and an assistant conversation;
    the paths of the pages they made."""
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
    return {"receipt": f"/receipts/{served.headers['X-Waybill-Receipt']}", "receipt-failed": f"/receipts/{failed}",
            "assistant": "/assistant", "assistant-conversation": make_conversation(base, simulator)}


DEMO_ANSWER = """**Summary.** The stock rose **+6.22%** over the period, with a **-7.61%** drawdown from 2024-03-06 to
2024-03-12 before it recovered: a V shape, on the data card's figures.

| Figure | Value |
|---|---|
| Return | +6.22% |
| Annualised volatility | 22.07% |

- Momentum resumed after the trough; volume would tell whether it is broad.
- Risks: the drawdown shows how fast the gains can reverse.

*Research support, not financial advice.*"""
DEMO_PRICES = "\n".join(["Date,Close"] + [f"2024-03-{day:02d},{price}" for day, price in zip(
    range(1, 22), (180.1, 182.3, 181.0, 184.9, 186.2, 188.0, 187.4, 185.0, 179.9, 176.5, 174.9, 173.7, 176.0, 178.8,
                   177.2, 180.5, 183.9, 185.2, 186.8, 189.4, 191.3))])


def make_conversation(base: str, simulator: str) -> str:
    """A research conversation through the real form (signed in, with CSRF), answered in Markdown; its path."""
    set_remote_fault(simulator, "openai-direct", reply_text=DEMO_ANSWER)
    session = requests.Session()
    token = lambda html: re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)  # noqa: E731
    page = session.get(f"{base}/login", timeout=10).text
    session.post(f"{base}/login", data={"email": USER[0], "password": USER[1], "csrf_token": token(page)}, timeout=10)
    page = session.get(f"{base}/assistant", timeout=10).text
    created = session.post(f"{base}/assistant/conversations", data={"csrf_token": token(page)}, timeout=10)
    session.post(f"{created.url}/messages", timeout=60, data={
        "csrf_token": token(created.text), "model": "gpt-4o-mini", "lane": "any", "data": DEMO_PRICES,
        "content": "Explain the chart pattern in the pasted prices: is this a V-shaped recovery?"})
    set_remote_fault(simulator, "openai-direct")  # healthy and plain again
    return created.url.removeprefix(base)


ADMIN_PAGES = {"admin": "/admin/", "admin-channels": "/admin/channels", "admin-channel": "/admin/channels/1",
               "admin-routes": "/admin/routes", "admin-health": "/admin/health", "admin-users": "/admin/users",
               "admin-user": "/admin/users/2", "admin-codes": "/admin/codes", "admin-review": "/admin/review",
               "admin-catalog": "/admin/catalog", "admin-audit": "/admin/audit"}


def shoot(base: str, made: dict[str, str], only: list[str]) -> None:
    user_pages = {"dashboard": "/", "marketplace": "/models", "model": "/models/gpt-4o-mini",
                  "receipts": "/receipts", **made, "wallet": "/wallets/credit", "keys": "/keys"}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        admin_pages = {**ADMIN_PAGES, "admin-receipt": f"/admin{made['receipt']}"}
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
