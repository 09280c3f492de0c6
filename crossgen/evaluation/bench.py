"""`python -m crossgen.bench`: latency, throughput and memory of both directions, against the floor and the naive path.

In one run: text -> image for n = 1, 4, 16; image -> text greedy, beam 3, beam 5; the floor (a bare
torchvision ResNet18 forward at the feature size, 64 px); the naive path (every model loaded from disk
on every call); cold start of `python app.py`; 16 gradio_client clients against the app on loopback,
one at a time / concurrent / concurrent + micro-batching. Prints a table and writes JSON (--out).

    python -m crossgen.bench                       # full run on checkpoints/, writes runs/bench.json
    python -m crossgen.bench --quick --checkpoints /tmp/ckpt --out /tmp/bench.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable

import torch

from ..checkpoint import WORD_VECTORS, load_model
from ..models.captioner import Captioner, CaptionerConfig, Vocab
from ..models.image_features import FeatureConfig, ImageFeatures
from ..models.text_encoder import TextEncoder
from ..models.vae import CVAE, CVAEConfig
from ..preprocess import load_image, resize, to_pil, to_tensor
from ..serving.batching import batching_enabled
from ..serving.pipeline import Pipeline, default_checkpoints
from . import bench_server

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "runs" / "bench.json"  # git-ignored; `--out assets/bench.json` refreshes the committed figures
EXAMPLE = ROOT / "assets" / "examples" / "twemoji_red_apple.png"
PROMPT = bench_server.PROMPT
# The targets in force (the naive path's 50x speed-up and batching's 3x throughput were retired: docs/speed.md)
TARGETS = {"image_to_text_beam3_vs_floor": 1.5, "text_to_image_n4_p50_ms": 20.0, "edit_p50_ms": 30.0, "cold_start_s": 8.0,
           "server_peak_rss_mb": 1536.0}


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def latency_stats(times: list[float], items: int = 1) -> dict:
    """Call durations (s) -> iters, p50/p95 latency (ms), throughput in items/s, peak RSS so far."""
    times = sorted(times)
    return {"iters": len(times), "p50_ms": 1000 * statistics.median(times),
            "p95_ms": 1000 * times[min(len(times) - 1, int(0.95 * len(times)))],
            "throughput": items * len(times) / sum(times), "peak_rss_mb": peak_rss_mb()}


def measure(fn: Callable[[], object], iters: int, warmup: int = 2, items: int = 1) -> dict:
    """p50/p95 latency (ms) of fn() over `iters` calls after `warmup`, throughput in items/s."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return latency_stats(times, items)


# ---------------------------------------------------------------------------- the naive path

def naive_text_to_image(directory: Path, prompt: str, n: int, seed: int = 1) -> list:
    """The seed article's way: load the word vectors and the VAE from disk, then draw."""
    encoder = TextEncoder.load(directory / WORD_VECTORS)
    vae, _ = load_model(directory, "vae", CVAE, CVAEConfig)
    x = vae.sample(torch.from_numpy(encoder.encode(prompt).words.reshape(-1)), n=n, generator=torch.Generator().manual_seed(seed))
    return to_pil(x)


def naive_image_to_text(directory: Path, image: Path, beam: int) -> list[str]:
    """The seed article's way: load ResNet18 and the LSTM from disk, then caption."""
    features, _ = load_model(directory, "features", ImageFeatures, FeatureConfig)
    captioner, meta = load_model(directory, "captioner", Captioner, CaptionerConfig)
    vocab = Vocab(meta["vocab"])
    x = to_tensor(resize(load_image(image), features.config.image_size))
    hyps = captioner.generate(features.embed(x), beam=beam, max_len=20, n_best=beam)[0]  # the app's settings
    return [vocab.decode(h.tokens) for h in hyps]


def bare_resnet18(size: int) -> Callable[[], object]:
    """The floor: torchvision's ResNet18 forward on one (1, 3, size, size) image, nothing else."""
    from torchvision.models import resnet18

    model, x = resnet18(weights=None).eval(), torch.rand(1, 3, size, size)

    def forward():
        with torch.inference_mode():
            return model(x)
    return forward


# ---------------------------------------------------------------------------- the run

def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    busy = subprocess.run(["pgrep", "-f", "crossgen.(train|evaluate)"], capture_output=True, text=True).stdout.split()
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "load_avg_1m": os.getloadavg()[0],
            "training_running": bool([p for p in busy if int(p) != os.getpid()])}


def measure_interleaved(fns: dict[str, tuple[Callable[[], object], int]], iters: int, warmup: int = 2,
                        block: int = 10, skip: int = 2) -> dict[str, dict]:
    """Like `measure`, for several functions taking turns in blocks of `block` calls, so that every row
    sees the same machine: on a shared 2-core VM the speed drifts by tens of percent within a minute,
    and rows measured one after another compare different machines. The first `skip` calls of a block
    are not counted: the pipeline computes on its batching threads, and just after a switch the other
    threads' OpenMP workers are still spinning (one call at a time, strictly alternating, slowed the
    bare ResNet18 to twice its time). fns: key -> (function, items per call)."""
    for fn, _ in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    while min(len(ts) for ts in times.values()) < iters:
        for key, (fn, _) in fns.items():
            for i in range(block):
                t = time.perf_counter()
                fn()
                if i >= skip:
                    times[key].append(time.perf_counter() - t)
    return {key: latency_stats(ts[:iters], fns[key][1]) for key, ts in times.items()}


def latency_rows(directory: Path, iters: int, naive_iters: int, device: str) -> list[dict]:
    """Pipeline rows and the floor, measured interleaved in this process; then the naive path."""
    pipe = Pipeline.from_checkpoints(directory, device)
    size = pipe.features.config.image_size
    rows = [(f"floor: bare ResNet18 forward {size}px", "floor", bare_resnet18(size), 1)]
    for n in (1, 4, 16):
        rows.append((f"text→image n={n}", f"text_to_image_n{n}", lambda n=n: pipe.generate(PROMPT, n=n, seed=1), n))
    for beam, label in ((1, "greedy"), (3, "beam 3"), (5, "beam 5")):
        rows.append((f"image→text {label}", f"image_to_text_beam{beam}",
                     lambda beam=beam: pipe.image_to_text(EXAMPLE, beam=beam, n_best=beam), 1))
    rows.append(("edit: colour (read, encode, decode)", "edit_colour", lambda: pipe.edit(EXAMPLE, "blue"), 1))
    measured = measure_interleaved({key: (fn, items) for _, key, fn, items in rows}, iters)
    out = [{"name": name, "key": key, "unit": "images/s", **measured[key]} for name, key, _, _ in rows]
    out.append({"name": "naive text→image n=4 (load per call)", "key": "naive_text_to_image_n4", "unit": "images/s",
                **measure(lambda: naive_text_to_image(directory, PROMPT, 4), naive_iters, warmup=1, items=4)})
    out.append({"name": "naive image→text beam 3 (load per call)", "key": "naive_image_to_text_beam3",
                "unit": "images/s", **measure(lambda: naive_image_to_text(directory, EXAMPLE, 3), naive_iters, warmup=1)})
    return out


def targets(rows: dict, cold: dict | None, conc: dict | None) -> list[dict]:
    """Each target in force (TARGETS) with the measured value and whether it is met; the naive path and the
    batching gain stay in the latency and concurrency tables."""
    out = [("image→text beam 3 p50 / floor p50", rows["image_to_text_beam3"]["p50_ms"] / rows["floor"]["p50_ms"],
            TARGETS["image_to_text_beam3_vs_floor"], "max"),
           ("text→image n=4 p50 (ms)", rows["text_to_image_n4"]["p50_ms"], TARGETS["text_to_image_n4_p50_ms"], "max"),
           ("edit p50 (ms)", rows["edit_colour"]["p50_ms"], TARGETS["edit_p50_ms"], "max")]
    if cold:
        out.append(("cold start to first answer, slower endpoint (s)", max(cold["text_to_image_s"], cold["image_to_text_s"]),
                    TARGETS["cold_start_s"], "max"))
    if conc:
        rss = [m["server_peak_rss_mb"] for m in conc.values() if m.get("server_peak_rss_mb")]
        if rss:
            out.append(("server peak RSS (MB)", max(rss), TARGETS["server_peak_rss_mb"], "max"))
    return [{"target": name, "value": round(v, 3), "limit": lim, "met": bool(v <= lim if kind == "max" else v >= lim)}
            for name, v, lim, kind in out]


def table(result: dict) -> str:
    """The report as Markdown tables."""
    lines = ["| | p50 ms | p95 ms | throughput | peak RSS MB |", "| --- | ---: | ---: | ---: | ---: |"]
    for r in result["latency"]:
        lines.append(f"| {r['name']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['throughput']:.1f} {r['unit']} | {r['peak_rss_mb']:.0f} |")
    for mode, m in (result.get("concurrency") or {}).items():
        runs = [(f"{m[ep]['clients']} clients, {mode}", ep, m[ep]) for ep in ("image_to_text", "text_to_image")]
        runs = [("1 client, sequential", ep, m["one client"][ep]) for ep in ("image_to_text", "text_to_image")
                if "one client" in m] + runs
        for label, ep, c in runs:
            lines.append(f"| app, {label}: {ep.replace('_to_', '→')}{' n=4' if ep == 'text_to_image' else ' beam 3'} "
                         f"| {c['p50_ms']:.1f} | {c['p95_ms']:.1f} | {c['throughput_rps']:.1f} requests/s | {m['server_peak_rss_mb'] or 0:.0f} |")
    conc = result.get("concurrency") or {}
    if conc:
        lines += ["", "| CPU per request (app / clients, ms) | image→text | text→image |", "| --- | ---: | ---: |"]
        fmt = lambda c: f"{c['server_cpu_ms_per_request'] or 0:.0f} / {c['client_cpu_ms_per_request']:.0f}"  # noqa: E731
        for mode, m in conc.items():
            lines.append(f"| {mode} | {fmt(m['image_to_text'])} | {fmt(m['text_to_image'])} |")
    cold = result.get("cold_start")
    if cold:
        lines += ["", f"Cold start (`python app.py`): answering after {cold['ready_s']:.1f} s, first text→image answer "
                  f"{cold['text_to_image_s']:.1f} s, first image→text answer {cold['image_to_text_s']:.1f} s after process start."]
    lines += ["", "| target | measured | limit | met |", "| --- | ---: | ---: | --- |"]
    lines += [f"| {t['target']} | {t['value']:.2f} | {t['limit']:g} | {'yes' if t['met'] else 'no'} |" for t in result["targets"]]
    return "\n".join(lines)


def run(directory: Path, quick: bool = False, server: bool = True, clients: int = 16, device: str = "cpu") -> dict:
    iters, naive_iters, requests = (5, 1, 1) if quick else (100, 5, 8)
    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "checkpoints": str(directory),
              "quick": quick, "machine": machine(), "device": device,
              # CROSSGEN_BATCHING=0: the in-process rows run on the calling thread, like the floor (the app's
              # modes below set it themselves)
              "in_process_batching": batching_enabled()}
    rows = latency_rows(directory, iters, naive_iters, device)
    result["latency"] = rows
    cold = conc = None
    if server:
        modes = bench_server.MODES
        if quick:  # the two ends only
            modes = {k: v for k, v in modes.items() if k != "concurrent, no batching"}
        conc, cold = bench_server.concurrency(directory, EXAMPLE, clients=clients, requests=requests, modes=modes)
    result["cold_start"], result["concurrency"] = cold, conc
    result["targets"] = targets({r["key"]: r for r in rows}, cold, conc)
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m crossgen.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoints", type=Path, default=None, help="checkpoint folder (default: CROSSGEN_CHECKPOINTS or checkpoints/)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default: {DEFAULT_OUT.relative_to(ROOT)})")
    ap.add_argument("--quick", "--tiny", action="store_true", help="a few iterations and 4 clients: a smoke test, not figures")
    ap.add_argument("--no-server", action="store_true", help="skip cold start and the concurrent clients")
    ap.add_argument("--clients", type=int, default=None, help="concurrent clients (default 16, 4 with --quick)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads in this process and the app (default: torch's)")
    ap.add_argument("--device", default="cpu", help="device of the in-process rows (default cpu)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by the app subprocesses
    directory = args.checkpoints or default_checkpoints()
    clients = args.clients or (4 if args.quick else 16)
    result = run(directory, quick=args.quick, server=not args.no_server, clients=clients, device=args.device)
    print(table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    return result

