"""Driving the app as a user would, shared by the tests and `tests/screenshots.py`:

- `AppServer`: `python app.py` in a subprocess on 127.0.0.1 (its own process, so its memory can be read
  and a crash cannot take the test runner with it);
- `chromium_page`: Debian's Chromium driven by Playwright's Python package (never `playwright install`);
- `draw` / `caption`: the two user journeys in the page.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("CROSSGEN_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
UI_TIMEOUT_MS = 60_000  # generous: the machine may be busy; nothing here measures speed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """`python app.py` on 127.0.0.1:<free port>, models from `checkpoints`, uploads under `work/uploads`,
    its output in `work/server.log`."""

    def __init__(self, checkpoints: str | Path | None, work: str | Path, device: str | None = "cpu",
                 port: int | None = None, start_timeout: float = 180.0):
        self.checkpoints, self.work, self.device = checkpoints, Path(work), device
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = self.work / "server.log"
        self.upload_dir = self.work / "uploads"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "AppServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.upload_dir.mkdir(exist_ok=True)
        env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(self.port),
                   GRADIO_TEMP_DIR=str(self.upload_dir), GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
        if self.checkpoints is not None:
            env["CROSSGEN_CHECKPOINTS"] = str(self.checkpoints)
        if self.device:
            env["CROSSGEN_DEVICE"] = self.device
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env,
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                with urllib.request.urlopen(self.url + "config", timeout=5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"app.py did not answer on {self.url} within {self.start_timeout:.0f} s:\n{self.log()[-4000:]}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_bytes(self) -> int:
        """Resident memory of the server process, from /proc/<pid>/status."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS in /proc status")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)


# ----------------------------------------------------------------------------------------- the browser


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.is_file():
        return f"Chromium not found at {CHROMIUM} (install Debian's `chromium` or set CROSSGEN_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the `playwright` Python package is not installed (pip install -r requirements-dev.txt)"
    return None


@contextmanager
def chromium_page(user_data_dir: str | Path, width: int = 1280, height: int = 900) -> Iterator:
    """A page in a headless Chromium with a fresh profile in `user_data_dir` (deleted afterwards)."""
    from playwright.sync_api import sync_playwright

    user_data_dir = Path(user_data_dir)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(user_data_dir), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height})
        try:
            context.set_default_timeout(UI_TIMEOUT_MS)
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()
            shutil.rmtree(user_data_dir, ignore_errors=True)
