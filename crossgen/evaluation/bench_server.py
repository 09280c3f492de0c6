"""Benchmark helpers that need the running app: cold start and concurrent clients through gradio_client.

The app runs as `python app.py` in a subprocess on a free loopback port (`crossgen.serving.app_process.AppServer`);
its settings come from the environment (CROSSGEN_CHECKPOINTS, CROSSGEN_BATCHING, CROSSGEN_CONCURRENCY).
"""
from __future__ import annotations

import itertools
import os
import statistics
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ..serving.app_process import AppServer

PROMPT = "red apple"


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far; None where /proc is not available."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


@contextmanager
def app_server(checkpoints: Path, batching: bool = True, concurrency: int = 16, threads: int | None = None,
               timeout_s: float = 180) -> Iterator[AppServer]:
    """`python app.py` on a free loopback port until the block ends, with these server settings."""
    env = {"CROSSGEN_BATCHING": "1" if batching else "0", "CROSSGEN_CONCURRENCY": str(concurrency)}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory(prefix="crossgen_bench_") as work, \
            AppServer(checkpoints, work, device=None, start_timeout=timeout_s, env=env) as server:
        yield server


_seeds = itertools.count(1)  # a new seed per call: equal images share a file in Gradio's cache, and
# rewriting that file while another client downloads it breaks the download


def call_text_to_image(client, n: int = 4, seed: int | None = None):
    seed = next(_seeds) if seed is None else seed
    return client.predict(PROMPT, n, seed, 1.0, api_name="/text_to_image")


def call_image_to_text(client, image: Path, beam: int = 3):
    from gradio_client import handle_file
    return client.predict(handle_file(str(image)), beam, api_name="/image_to_text")


def first_answers(server: AppServer, image: Path) -> dict:
    """Process start -> the app answering, and -> the first answer of each endpoint (t2i first, then i2t).
    Call it first thing on a fresh server."""
    client = server.client()
    call_text_to_image(client)
    t2i = time.perf_counter() - server.started
    call_image_to_text(client, image)
    i2t = time.perf_counter() - server.started
    return {"ready_s": server.ready_s, "text_to_image_s": t2i, "image_to_text_s": i2t}


def load_test(server: AppServer, call: Callable, clients: int, requests: int) -> dict:
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
