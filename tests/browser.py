"""A headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``): no
network port, no extra Python package. Enough to load a page, run JavaScript in it and take a screenshot."""
from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """``with Browser() as b: b.open(url); b.evaluate("1 + 1"); b.screenshot(path)``."""

    def __init__(self, executable: str | None = None, *, size=(1280, 1600), timeout: float = 60.0):
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise RuntimeError("no Chromium found (apt-get install chromium)")
        self.size, self.timeout = size, timeout
        self._next_id = 0
        self._buffer = b""

    def __enter__(self) -> "Browser":
        self._profile = tempfile.mkdtemp(prefix="segbench-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4 (copied high first: either may be 3 or 4).
        def wire_fds():
            reading = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            writing = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(reading, 3)  # dup2 makes 3 and 4 inheritable; Python's own pipe ends are not
            os.dup2(writing, 4)
            os.close(reading)
            os.close(writing)

        self.process = subprocess.Popen(
            [self.executable, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
             f"--user-data-dir={self._profile}", f"--window-size={self.size[0]},{self.size[1]}", "about:blank"],
            preexec_fn=wire_fds, close_fds=False, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        targets = self._command("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self._session = self._command("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self._command("Page.enable", session=True)
        return self

    def __exit__(self, *exc):
        try:
            self._command("Browser.close")
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        shutil.rmtree(self._profile, ignore_errors=True)

    def _command(self, method: str, *, session: bool = False, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
            if time.monotonic() > deadline:
                raise TimeoutError(f"no reply to {method} within {self.timeout} s")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe")
            self._buffer += chunk

    def evaluate(self, expression: str):
        """The JSON value of ``expression`` in the page (promises awaited); a thrown error raises."""
        result = self._command("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                               awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        """Navigate and wait until the page and all its images have loaded."""
        self._command("Page.navigate", session=True, url=url)
        deadline = time.monotonic() + self.timeout
        ready = "document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"
        while not self.evaluate(ready):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not finish loading")
            time.sleep(0.1)

    def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        params = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            width, height = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        data = self._command("Page.captureScreenshot", session=True, **params)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)
