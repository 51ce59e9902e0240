"""Re-take the README's screenshots from a runs folder: TensorBoard and the HTML report, in headless Chromium.

    python docs/screenshots.py RUNS_DIR        # from the repository root; needs chromium and tensorboard

TensorBoard serves on a loopback port for the shot and is stopped afterwards; the report is written to a
temporary folder. The PNGs are scaled to 1000 pixels wide and palette-quantised to stay small.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.browser import Browser  # noqa: E402

WIDTH = 1000


def _shrink(path: Path) -> None:
    with Image.open(path) as image:
        image = image.convert("RGB")
        height = round(image.height * WIDTH / image.width)
        image = image.resize((WIDTH, height), Image.LANCZOS).quantize(colors=128, dither=Image.Dither.NONE)
    image.save(path, optimize=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tensorboard_shot(runs: Path, out: Path) -> Path:
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(runs), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("tensorboard did not start")
                time.sleep(0.5)
        with Browser(size=(1500, 1100), timeout=120) as browser:
            browser.open(f"http://127.0.0.1:{port}/?darkMode=false#scalars&tagFilter=train%2F%7Cselect%2FmIoU")
            time.sleep(15)  # the dashboard fetches and draws its charts after the page has loaded
            browser.screenshot(out, full_page=False)
    finally:
        server.terminate()
        server.wait(timeout=30)
    _shrink(out)
    return out


def report_shot(runs: Path, out: Path) -> Path:
    from segbench.report.html import build_report

    with tempfile.TemporaryDirectory() as folder:
        page = build_report(runs, Path(folder) / "report", images=2)
        with Browser(size=(1300, 1250)) as browser:
            browser.open(page.as_uri())
            browser.screenshot(out, full_page=False)  # the tables; the figures follow below
    _shrink(out)
    return out


if __name__ == "__main__":
    runs = Path(sys.argv[1])
    print(tensorboard_shot(runs, REPO / "docs" / "tensorboard.png"))
    print(report_shot(runs, REPO / "docs" / "report.png"))
