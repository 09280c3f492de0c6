"""Load over loopback: 500 requests from 16 concurrent gradio_client clients, both endpoints mixed,
against `python app.py` with tiny random checkpoints (so the models cost little and the server's own
handling is what is measured).

Asserted: no request fails or answers wrongly, the server stays up, and its resident memory after the run
is at most 1.2x what it was after the first 50 requests. Recorded, not asserted: p50/p95 latency per
endpoint, printed, and written as JSON to $CROSSGEN_LOAD_REPORT when it is set (a passing test's tmp dir is
removed when it ends).
"""
from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file

from browser import ROOT, AppServer
from helpers import scratch

pytestmark = pytest.mark.slow  # 500 requests against the app in a subprocess

REQUESTS = 500
CLIENTS = 16
WARMUP = 50  # memory is compared with what it is after this many requests
MAX_RSS_GROWTH = 1.2
REQUEST_TIMEOUT_S = 120  # each request; a request that takes longer counts as an error
PROMPTS = ["red apple", "dog", "smiling cat face", "thumbs up", "pizza", "red heart", "racing car", "full moon"]
IMAGES = sorted((ROOT / "assets" / "examples").glob("*.png"))


@dataclass
class Result:
    index: int
    endpoint: str
    seconds: float
    error: str | None = None


class LoadClients:
    """One gradio_client Client per worker thread (created on the thread's first request)."""

    def __init__(self, url: str, downloads: Path):
        self.url, self.downloads = url, downloads
        self.local = threading.local()

    def client(self) -> Client:
        if not hasattr(self.local, "client"):
            self.local.client = Client(self.url, verbose=False, download_files=str(self.downloads))
        return self.local.client

    def request(self, i: int) -> Result:
        """Request number `i`: even numbers draw, odd numbers caption; the answer is checked."""
        endpoint = "/text_to_image" if i % 2 == 0 else "/image_to_text"
        start = time.perf_counter()
        try:
            client = self.client()
            if endpoint == "/text_to_image":
                n = 1 + i % 4
                job = client.submit(PROMPTS[i % len(PROMPTS)], n, i, 1.0, api_name=endpoint)
                gallery, seed, words, _ = job.result(timeout=REQUEST_TIMEOUT_S)  # then the transparent PNGs
                ok = len(gallery) == n and seed == i and "Words used" in words
                error = None if ok else f"wrong answer: {len(gallery)} images, seed {seed}, {words!r}"
            else:
                job = client.submit(handle_file(str(IMAGES[i % len(IMAGES)])), 1 + i % 3, api_name=endpoint)
                text, label, *_ = job.result(timeout=REQUEST_TIMEOUT_S)  # then the not-an-emoji notice and check
                shown = {c["label"] for c in label["confidences"]}
                ok = isinstance(text, str) and text and text in shown and "something else" in shown
                error = None if ok else f"wrong answer: {text!r}, {label!r}"
        except Exception as e:  # every failure is counted and reported, none stops the run
            error = f"{type(e).__name__}: {e}"
        return Result(i, endpoint, time.perf_counter() - start, error)


def run_requests(load: LoadClients, pool: ThreadPoolExecutor, indices: range) -> list[Result]:
    return list(pool.map(load.request, indices))


def latency_summary(results: list[Result]) -> dict:
    out = {}
    for endpoint in sorted({r.endpoint for r in results}):
        ms = np.array([r.seconds * 1000 for r in results if r.endpoint == endpoint])
        out[endpoint] = {"requests": int(ms.size), "p50_ms": round(float(np.percentile(ms, 50)), 1),
                         "p95_ms": round(float(np.percentile(ms, 95)), 1), "max_ms": round(float(ms.max()), 1)}
    return out


@pytest.fixture(scope="module")
def server(tiny_checkpoints, tmp_path_factory):
    with scratch(tmp_path_factory, "load_server") as folder, AppServer(tiny_checkpoints, folder) as srv:
        yield srv


def test_500_requests_16_clients(server, tmp_path, capsys):
    assert len(IMAGES) >= 2, "assets/examples/*.png are the uploaded images"
    load = LoadClients(server.url, tmp_path / "downloads")
    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS, thread_name_prefix="load") as pool:
        results = run_requests(load, pool, range(WARMUP))
        rss_warm = server.rss_bytes()
        results += run_requests(load, pool, range(WARMUP, REQUESTS))
    wall = time.perf_counter() - started
    rss_end = server.rss_bytes()

    errors = [r for r in results if r.error]
    report = {
        "requests": len(results), "clients": CLIENTS, "errors": len(errors), "wall_s": round(wall, 1),
        "requests_per_s": round(len(results) / wall, 1), "latency": latency_summary(results),
        "rss_after_warmup_mb": round(rss_warm / 2**20, 1), "rss_after_run_mb": round(rss_end / 2**20, 1),
        "rss_ratio": round(rss_end / rss_warm, 3), "first_errors": [vars(r) for r in errors[:10]],
        "queue": "app.py: default_concurrency_limit=4, max_size=64",
    }
    text = json.dumps(report, indent=2)
    if os.environ.get("CROSSGEN_LOAD_REPORT"):
        Path(os.environ["CROSSGEN_LOAD_REPORT"]).write_text(text)
    with capsys.disabled():
        lat = ", ".join(f"{e} p50 {v['p50_ms']} ms p95 {v['p95_ms']} ms" for e, v in report["latency"].items())
        print(f"\nload: {len(results)} requests, {CLIENTS} clients, {len(errors)} errors, {wall:.1f} s; {lat}; "
              f"RSS {report['rss_after_warmup_mb']} -> {report['rss_after_run_mb']} MB (x{report['rss_ratio']})")

    assert len(results) == REQUESTS
    assert not errors, f"{len(errors)} of {REQUESTS} requests failed, e.g. {errors[:3]}"
    assert server.alive(), f"the server died:\n{server.log()[-3000:]}"
    assert rss_end <= MAX_RSS_GROWTH * rss_warm, \
        f"server memory grew from {rss_warm / 2**20:.0f} MB to {rss_end / 2**20:.0f} MB over {REQUESTS} requests"
