"""`python app.py` in a subprocess on a free loopback port, for the benchmark and the tests.

Its own process, so its memory and CPU time can be read from /proc and a crash cannot take the caller
with it. Settings reach the app through the environment (CROSSGEN_CHECKPOINTS, CROSSGEN_DEVICE, and any
extra variables such as CROSSGEN_BATCHING / CROSSGEN_CONCURRENCY / OMP_NUM_THREADS).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status_kb(pid: int, field: str) -> int | None:
    """A `kB` field of /proc/<pid>/status (VmRSS, VmHWM, ...); None where /proc or the field is not there."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class AppServer:
    """`python app.py` on 127.0.0.1:<free port> until `stop()` (or the end of a `with` block): models from
    `checkpoints` (None: the app's default), uploads under `work/uploads`, its other temp files (downloads) under
    `work`, its output in `work/server.log`."""

    def __init__(self, checkpoints: str | Path | None, work: str | Path, device: str | None = "cpu",
                 port: int | None = None, start_timeout: float = 180.0, env: dict[str, str] | None = None):
        self.checkpoints, self.work, self.device, self.extra_env = checkpoints, Path(work), device, env or {}
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = self.work / "server.log"
        self.upload_dir = self.work / "uploads"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.started = 0.0  # time.perf_counter() just before the process was spawned
        self.ready_s = 0.0  # process start -> first HTTP answer (the app loads its models before it listens)

    def __enter__(self) -> "AppServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def process(self) -> subprocess.Popen:
        return self.proc

    def environment(self) -> dict[str, str]:
        env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(self.port),
                   GRADIO_TEMP_DIR=str(self.upload_dir), GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1",
                   TMPDIR=str(self.work))  # the app's downloads (GIFs, PNGs) stay in the work folder with the rest
        if self.checkpoints is not None:
            env["CROSSGEN_CHECKPOINTS"] = str(self.checkpoints)
        if self.device:
            env["CROSSGEN_DEVICE"] = self.device
        return {**env, **self.extra_env}

    def start(self) -> None:
        """Spawn the app and wait until it answers HTTP (RuntimeError with its log when it exits or times out)."""
        self.work.mkdir(parents=True, exist_ok=True)
        self.upload_dir.mkdir(exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.started = time.perf_counter()
            self.proc = subprocess.Popen([sys.executable, str(APP)], cwd=ROOT, env=self.environment(),
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        while time.perf_counter() - self.started < self.start_timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                with urllib.request.urlopen(self.url + "config", timeout=5) as r:
                    if r.status == 200:
                        self.ready_s = time.perf_counter() - self.started
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"app.py did not answer on {self.url} within {self.start_timeout:.0f} s:\n{self.log()[-4000:]}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_bytes(self) -> int:
        """Resident memory of the server process, from /proc/<pid>/status."""
        kb = proc_status_kb(self.proc.pid, "VmRSS")
        if kb is None:
            raise RuntimeError("no VmRSS in /proc status")
        return kb * 1024

    def peak_rss_mb(self) -> float | None:
        """The server's peak resident set size (VmHWM) in MB; None where /proc is not available."""
        kb = proc_status_kb(self.proc.pid, "VmHWM")
        return None if kb is None else kb / 1024

    def client(self):
        """A gradio_client on the app; the generated images are not downloaded (on a small machine the
        clients share the CPU with the app)."""
        from gradio_client import Client
        return Client(self.url, verbose=False, analytics_enabled=False, download_files=False)

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
