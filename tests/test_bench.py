"""`python -m crossgen.bench --quick` runs end to end on tiny checkpoints and writes a sane report. No timing is asserted."""
import json

import pytest

from crossgen.evaluation import bench

LATENCY_KEYS = {"floor", "text_to_image_n1", "text_to_image_n4", "text_to_image_n16", "image_to_text_beam1",
                "image_to_text_beam3", "image_to_text_beam5", "naive_text_to_image_n4", "naive_image_to_text_beam3",
                "edit_colour"}


@pytest.mark.slow
def test_quick_bench_writes_report(tiny_checkpoints, tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench.main(["--quick", "--checkpoints", str(tiny_checkpoints), "--out", str(out), "--clients", "3"])
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert {"date", "machine", "latency", "cold_start", "concurrency", "targets"} <= report.keys()
    assert report["machine"]["cores"] >= 1 and report["machine"]["torch_threads"] >= 1
    rows = {r["key"]: r for r in report["latency"]}
    assert set(rows) == LATENCY_KEYS
    for r in rows.values():
        assert 0 < r["p50_ms"] <= r["p95_ms"] and r["throughput"] > 0 and r["peak_rss_mb"] > 0 and r["iters"] >= 1
        assert r["name"] in printed
    cold = report["cold_start"]
    assert 0 < cold["ready_s"] <= cold["text_to_image_s"] <= cold["image_to_text_s"]
    assert set(report["concurrency"]) == {"one at a time", "concurrent + batching"}
    for mode in report["concurrency"].values():
        for ep in ("image_to_text", "text_to_image"):
            assert mode[ep]["requests"] == 3 and mode[ep]["throughput_rps"] > 0
    assert report["concurrency"]["concurrent + batching"]["one client"]["image_to_text"]["requests"] == 1
    assert "1 client, sequential" in printed
    assert len(report["targets"]) == 5 and all(isinstance(t["met"], bool) for t in report["targets"])
    # only the targets in force: the naive speed-up and the batching gain were retired
    assert not any("naive" in t["target"] or "batching" in t["target"] for t in report["targets"])
    assert bench.DEFAULT_OUT.parent.name == "runs"  # a run does not overwrite the committed assets/bench.json


def test_naive_path_matches_the_pipeline(tiny_pipeline, tiny_checkpoints):
    """The baseline does the same work: same captions, same images."""
    import numpy as np

    assert bench.naive_image_to_text(tiny_checkpoints, bench.EXAMPLE, 3) == \
        [t for t, _ in tiny_pipeline.image_to_text(bench.EXAMPLE, beam=3, n_best=3)]
    a = bench.naive_text_to_image(tiny_checkpoints, "red apple", 2, seed=4)
    b = tiny_pipeline.text_to_image("red apple", n=2, seed=4)
    assert all(np.abs(np.asarray(x, dtype=int) - np.asarray(y)).max() <= 1 for x, y in zip(a, b))


def test_interleaved_rows_take_turns():
    from crossgen.evaluation.bench import measure_interleaved

    calls = []
    rows = measure_interleaved({"a": (lambda: calls.append("a"), 1), "b": (lambda: calls.append("b"), 4)},
                               iters=4, warmup=1, block=3, skip=1)
    # warm-up, then blocks of 3 calls taking turns until each has 4 counted calls (2 per block)
    assert calls == ["a", "b"] + ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3
    assert rows["a"]["iters"] == rows["b"]["iters"] == 4
    assert rows["b"]["throughput"] > rows["a"]["throughput"]  # 4 items per call against 1
