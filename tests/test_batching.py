"""The micro-batcher: concurrent calls are batched and give what unbatched calls give."""
import threading

import numpy as np
import pytest
import torch
from PIL import Image

import crossgen
import crossgen.serving.batching
from crossgen.serving.batching import BatchedModels, MicroBatcher


def run_concurrently(fn, args_list):
    """fn(*args) for every args from its own thread, all released together; results in order."""
    results, errors = [None] * len(args_list), []
    barrier = threading.Barrier(len(args_list))

    def worker(i, args):
        barrier.wait()
        try:
            results[i] = fn(*args)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i, a)) for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def test_micro_batcher_batches_keeps_order_and_raises():
    seen = []

    def run(items):
        seen.append(len(items))
        if "boom" in items:
            raise ValueError("boom")
        return [x * 2 for x in items]

    b = MicroBatcher(run, max_batch=8)
    assert run_concurrently(b, [(i,) for i in range(32)]) == [2 * i for i in range(32)]
    assert sum(seen) == 32 and max(seen) <= 8
    with pytest.raises(ValueError, match="boom"):
        b("boom")
    assert b(5) == 10  # the worker survives an error
    off = MicroBatcher(run, enabled=False)
    assert off(3) == 6 and off._worker is None


def image(i: int) -> Image.Image:
    rng = np.random.default_rng(i)
    return Image.fromarray(rng.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8))


def test_batched_captions_equal_unbatched(tiny_pipeline):
    p = tiny_pipeline
    ref = []
    for i in range(12):
        feats = p.features.embed(p.image_tensor(image(i)))  # the plain model, one image at a time
        beam = 1 + i % 4
        ref.append(p.captioner.generate(feats, beam=beam, max_len=20, n_best=beam)[0])
    calls = [(image(i), 1 + i % 4, 20, 1 + i % 4) for i in range(12)]
    got = run_concurrently(lambda im, b, m, n: p.image_to_text(im, beam=b, max_len=m, n_best=n), calls)
    assert max(p.batched.captions.batch_sizes) > 1  # some calls were batched
    for r, g in zip(ref, got):
        assert [p.vocab.decode(h.tokens) for h in r] == [t for t, _ in g]
        assert np.allclose([h.logprob for h in r], [lp for _, lp in g], atol=1e-4)


def test_batched_samples_equal_unbatched(tiny_pipeline):
    p = tiny_pipeline
    calls = [(("red apple", "dog", "pizza")[i % 3], 1 + i % 3, i, 0.5 + 0.25 * (i % 3)) for i in range(12)]
    ref = [p.vae.sample(torch.from_numpy(p.text_input(p.encode_prompt(t))), n=n, temperature=temp,
                        generator=torch.Generator().manual_seed(s)) for t, n, s, temp in calls]
    got = run_concurrently(lambda t, n, s, temp: p.text_to_image(t, n=n, seed=s, temperature=temp), calls)
    assert max(p.batched.samples.batch_sizes) > 1
    for r, g in zip(ref, got):
        r8 = (r.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        g8 = np.stack([np.asarray(im) for im in g])
        assert r8.shape == g8.shape and np.abs(r8.astype(int) - g8).max() <= 1


def test_batching_can_be_turned_off(tiny_pipeline, monkeypatch):
    monkeypatch.setenv("CROSSGEN_BATCHING", "0")
    off = BatchedModels(tiny_pipeline.vae, tiny_pipeline.features, tiny_pipeline.captioner)
    assert not off.captions.enabled and not off.samples.enabled
    x = tiny_pipeline.image_tensor(image(0))
    assert off.caption(x, 3, 20, 3, 0.0).hyps == tiny_pipeline.batched.caption(x, 3, 20, 3, 0.0).hyps


def test_no_fx_tracing_while_serving(tiny_checkpoints, monkeypatch):
    """torch.fx tracing patches nn.Module.__call__ process-wide: done on a request, it broke the VAE calls
    running beside it. The folded ResNet18 is built with the pipeline, so serving never traces."""
    p = crossgen.Pipeline.from_checkpoints(tiny_checkpoints, device="cpu")

    def refuse(*args, **kwargs):
        raise AssertionError("traced while serving")

    monkeypatch.setattr(crossgen.serving.batching, "fused_backbone", refuse)
    monkeypatch.setattr(torch.fx.Tracer, "trace", refuse)
    assert p.image_to_text(Image.new("RGB", (40, 40), "red"), beam=2)
    assert len(p.text_to_image("red apple", n=2, seed=0)) == 2
