"""Benchmark helpers that need the running app: cold start and concurrent clients through gradio_client.

The app runs as `python app.py` in a subprocess on a free loopback port; its settings come from the
environment (CROSSGEN_CHECKPOINTS, CROSSGEN_BATCHING, CROSSGEN_CONCURRENCY, GRADIO_SERVER_PORT).
"""
from __future__ import annotations

import itertools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
PROMPT = "red apple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float | None:
    """A process's peak resident set size (VmHWM) in MB; None where /proc is not available."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far; None where /proc is not available."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    started: float  # time.perf_counter() just before the process was spawned
    ready_s: float  # process start -> first HTTP answer (models are loaded before the app listens)

    def client(self):
        from gradio_client import Client
        # the generated images are not downloaded: on a small machine the clients share the CPU with the app
        return Client(self.url, verbose=False, analytics_enabled=False, download_files=False)

    def peak_rss_mb(self) -> float | None:
        return peak_rss_mb(self.process.pid)


@contextmanager
def app_server(checkpoints: Path, batching: bool = True, concurrency: int = 16, threads: int | None = None,
               timeout_s: float = 180) -> Iterator[Server]:
    """`python app.py` on a free loopback port until the block ends."""
    port = free_port()
    env = {**os.environ, "CROSSGEN_CHECKPOINTS": str(checkpoints), "CROSSGEN_BATCHING": "1" if batching else "0",
           "CROSSGEN_CONCURRENCY": str(concurrency), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(APP)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                if proc.poll() is not None or time.perf_counter() - started > timeout_s:
                    log.seek(0)
                    raise RuntimeError(f"app.py did not start (exit code {proc.returncode}):\n"
                                       + log.read().decode(errors="replace")[-3000:])
                try:
                    with urllib.request.urlopen(url + "config", timeout=2):
                        break
                except OSError:
                    time.sleep(0.05)
            yield Server(url, proc, started, time.perf_counter() - started)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


_seeds = itertools.count(1)  # a new seed per call: equal images share a file in Gradio's cache, and
# rewriting that file while another client downloads it breaks the download


def call_text_to_image(client, n: int = 4, seed: int | None = None):
    seed = next(_seeds) if seed is None else seed
    return client.predict(PROMPT, n, seed, 1.0, api_name="/text_to_image")


def call_image_to_text(client, image: Path, beam: int = 3):
    from gradio_client import handle_file
    return client.predict(handle_file(str(image)), beam, api_name="/image_to_text")


def first_answers(server: Server, image: Path) -> dict:
    """Process start -> the app answering, and -> the first answer of each endpoint (t2i first, then i2t).
    Call it first thing on a fresh server."""
    client = server.client()
    call_text_to_image(client)
    t2i = time.perf_counter() - server.started
    call_image_to_text(client, image)
    i2t = time.perf_counter() - server.started
    return {"ready_s": server.ready_s, "text_to_image_s": t2i, "image_to_text_s": i2t}


def load_test(server: Server, call: Callable, clients: int, requests: int) -> dict:
    """`clients` threads, each with its own gradio_client, each making `requests` calls back to back."""
    pool = [server.client() for _ in range(clients)]
    for c in pool[:2]:
        call(c)  # warm-up
    latencies: list[float] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)

    def worker(client):
        barrier.wait()
        for _ in range(requests):
            t = time.perf_counter()
            try:
                call(client)
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors.append(e)
            latencies.append(time.perf_counter() - t)

    threads = [threading.Thread(target=worker, args=(c,)) for c in pool]
    for t in threads:
        t.start()
    barrier.wait()
    start, server_cpu, own_cpu = time.perf_counter(), cpu_seconds(server.process.pid), sum(os.times()[:2])
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    server_cpu_after, own_cpu = cpu_seconds(server.process.pid), sum(os.times()[:2]) - own_cpu
    if errors:
        raise RuntimeError(f"{len(errors)} of {clients * requests} requests failed: {errors[0]!r}")
    latencies.sort()
    return {"clients": clients, "requests": clients * requests, "wall_s": wall,
            "throughput_rps": clients * requests / wall,
            # CPU per request: the app's, and the clients' (this process), which share the machine
            "server_cpu_ms_per_request": None if server_cpu is None or server_cpu_after is None
            else 1000 * (server_cpu_after - server_cpu) / (clients * requests),
            "client_cpu_ms_per_request": 1000 * own_cpu / (clients * requests),
            "p50_ms": 1000 * statistics.median(latencies),
            "p95_ms": 1000 * latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]}


# the three ways a server can take 16 clients
MODES = {"one at a time": dict(batching=False, concurrency=1),
         "concurrent, no batching": dict(batching=False, concurrency=16),
         "concurrent + batching": dict(batching=True, concurrency=16)}


def concurrency(checkpoints: Path, image: Path, clients: int = 16, requests: int = 8,
                threads: int | None = None, modes: dict = MODES) -> tuple[dict, dict]:
    """Throughput of both endpoints under `clients` concurrent clients, for each server mode, and the cold
    start of the app as shipped (batching on, 16 concurrent), measured on that mode's fresh server."""
    out, cold = {}, {}
    for name, mode in modes.items():
        with app_server(checkpoints, threads=threads, **mode) as server:
            single = {}
            if mode == MODES["concurrent + batching"]:
                cold = first_answers(server, image)
                # one client, one request after another: what a request costs in the app beside the models
                single = {"one client": {"image_to_text": load_test(server, lambda c: call_image_to_text(c, image), 1, requests),
                                         "text_to_image": load_test(server, call_text_to_image, 1, requests)}}
            out[name] = {**mode, **single,
                         "image_to_text": load_test(server, lambda c: call_image_to_text(c, image), clients, requests),
                         "text_to_image": load_test(server, call_text_to_image, clients, requests),
                         "server_peak_rss_mb": server.peak_rss_mb()}
    return out, cold
