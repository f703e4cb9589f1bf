"""``tui DATASET --serve``: the app through textual-serve, driven by a headless Chromium.

The browser is driven over the DevTools protocol (aiohttp's websocket client,
which textual-serve needs anyway): a script injected before the page loads
keeps what the app sends to xterm.js, so the test reads the image names the app
drew; an ArrowDown typed into the page must move the app's cursor, which the
app stores in the dataset (read back here).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fluxgym_coach.dataset import Dataset
from fluxgym_coach.tui.serve import app_command
from tests.real_terminals.artifacts import save_artifact

aiohttp = pytest.importorskip("aiohttp", reason="textual-serve (and aiohttp) not installed")
pytest.importorskip("textual_serve", reason="textual-serve not installed: pip install textual-serve")
ROOT = Path(__file__).resolve().parents[1]
KEEP_OUTPUT = """
(() => {
  const Orig = window.WebSocket, decoder = new TextDecoder();
  window.__fgcText = "";
  window.WebSocket = function (url, protocols) {
    const ws = new Orig(url, protocols);
    ws.addEventListener("message", (e) => {
      if (typeof e.data !== "string")
        window.__fgcText += decoder.decode(new Uint8Array(e.data), {stream: true});
    });
    return ws;
  };
  window.WebSocket.prototype = Orig.prototype;
})();
"""


def _browser() -> str | None:
    for name in ("chromium-headless-shell", "chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _until(check, what: str, deadline: float = 60.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class DevTools:
    """The least of the Chrome DevTools protocol: numbered commands on one page."""

    def __init__(self, ws) -> None:
        self.ws, self.next_id = ws, 0

    async def call(self, method: str, **params):
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            msg = json.loads((await self.ws.receive()).data)
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")


def test_app_command_keeps_credentials_off_the_command_line(tmp_path):
    cmd = app_command(tmp_path, api_url="http://127.0.0.1:7860", scan=False)
    assert "--preview halfcell" in cmd and "--no-scan" in cmd and "api-auth" not in cmd


def test_serve_refuses_a_port_in_use(tui_dataset):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "fluxgym_coach", "tui", str(tui_dataset),
                               "--serve", "--port", str(port)], capture_output=True, text=True,
                              timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)), check=False)
    assert done.returncode != 0 and f"port {port}" in done.stderr + done.stdout


@pytest.mark.skipif(_browser() is None, reason="no headless Chromium installed "
                    "(apt-get install chromium-headless-shell)")
def test_served_app_in_headless_chromium_lists_images_and_moves(tui_dataset, tmp_path):
    with Dataset(tui_dataset) as ds:
        ds.scan()
        names = sorted(p.name for p in tui_dataset.iterdir()
                       if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    port, debug_port = _free_port(), _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), FLUXGYM_COACH_CACHE_DIR=str(tmp_path / "cache"))
    server = subprocess.Popen([sys.executable, "-m", "fluxgym_coach", "tui", str(tui_dataset),
                               "--serve", "--port", str(port), "--no-scan"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    browser = subprocess.Popen([_browser(), "--headless", "--no-sandbox", "--disable-gpu",
                                f"--remote-debugging-port={debug_port}",
                                f"--user-data-dir={tmp_path / 'chromium'}",
                                "--window-size=1400,900", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        asyncio.run(_drive(port, debug_port, tui_dataset, names))
    finally:
        for proc in (browser, server):
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    out = server.stdout.read() if server.stdout else ""
    assert f"http://127.0.0.1:{port}" in out


async def _drive(port: int, debug_port: int, dataset: Path, names: list[str]) -> None:
    async with aiohttp.ClientSession() as http:
        async def page_target():
            try:
                async with http.get(f"http://127.0.0.1:{debug_port}/json") as r:
                    pages = [t for t in await r.json() if t.get("type") == "page"]
            except aiohttp.ClientError:
                return None
            return pages[0]["webSocketDebuggerUrl"] if pages else None

        async def serving():
            try:
                async with http.get(f"http://127.0.0.1:{port}/") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        ws_url = await _until(page_target, "Chromium's DevTools")
        await _until(serving, "the --serve server")
        async with http.ws_connect(ws_url, max_msg_size=0) as ws:
            tools = DevTools(ws)
            await tools.call("Page.enable")
            await tools.call("Page.addScriptToEvaluateOnNewDocument", source=KEEP_OUTPUT)
            await tools.call("Page.navigate", url=f"http://127.0.0.1:{port}/")

            async def drawn_names():
                text = await tools.evaluate("window.__fgcText || ''") or ""
                plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
                return [n for n in names if Path(n).name in plain] == names and plain
            await _until(drawn_names, "the image list in the browser")
            await _until(lambda: _async(_cursor(dataset)), "the app to store its cursor")
            first = _cursor(dataset)
            await tools.evaluate("document.querySelector('.xterm-helper-textarea').focus()")
            for kind in ("keyDown", "keyUp"):
                await tools.call("Input.dispatchKeyEvent", type=kind, key="ArrowDown",
                                 code="ArrowDown", windowsVirtualKeyCode=40)
            moved = await _until(lambda: _async((c := _cursor(dataset)) != first and c),
                                 "the cursor to move after ArrowDown")
            assert moved in names and moved != first
            await asyncio.sleep(1.0)  # let the preview of the new image paint for the artefact
            shot = await tools.call("Page.captureScreenshot", format="png")
            save_artifact("serve-chromium.png", base64.b64decode(shot["data"]))


async def _async(value):
    return value


def _cursor(dataset: Path) -> str | None:
    with Dataset(dataset) as ds:
        return (ds.store.get_setting("tui.state", {}) or {}).get("cursor")
