import shutil
import threading

import numpy as np
import torch
import pytest
from PIL import Image

import crossgen
from crossgen import CheckpointError, InvalidImageError, InvalidRequestError, UnknownWordsError

from helpers import make_tiny_checkpoints


def test_text_to_image_count_size_and_seed(tiny_pipeline):
    ims = tiny_pipeline.text_to_image("red apple", n=3, seed=7)
    assert len(ims) == 3 and all(isinstance(i, Image.Image) and i.size == (64, 64) and i.mode == "RGB" for i in ims)
    again = tiny_pipeline.text_to_image("red apple", n=3, seed=7)
    other = tiny_pipeline.text_to_image("red apple", n=3, seed=8)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(ims, again))
    assert not np.array_equal(np.asarray(ims[0]), np.asarray(other[0]))
    g = tiny_pipeline.generate("dog", n=1)
    assert 0 <= g.seed < 2**31 and g.prompt.known == ["dog"]


def test_text_to_image_errors(tiny_pipeline):
    with pytest.raises(UnknownWordsError):
        tiny_pipeline.text_to_image("zzzz qqqq")
    with pytest.raises(InvalidRequestError):
        tiny_pipeline.text_to_image("dog", n=0)
    with pytest.raises(InvalidRequestError):
        tiny_pipeline.text_to_image("dog", n=17)
    with pytest.raises(InvalidRequestError):
        tiny_pipeline.text_to_image("dog", temperature=-1)


def test_image_to_text_nbest_sorted(tiny_pipeline):
    img = Image.new("RGB", (100, 60), (200, 30, 30))
    caps = tiny_pipeline.image_to_text(img, beam=4, n_best=3)
    assert 1 <= len(caps) <= 3
    assert all(isinstance(t, str) and t and lp <= 0 for t, lp in caps)
    assert [lp for _, lp in caps] == sorted((lp for _, lp in caps), reverse=True)
    greedy = tiny_pipeline.image_to_text(img, beam=1)
    assert len(greedy) == 1
    with pytest.raises(InvalidImageError):
        tiny_pipeline.image_to_text(b"not an image")
    with pytest.raises(InvalidRequestError):
        tiny_pipeline.image_to_text(img, beam=0)


def test_load_is_cached(tiny_checkpoints):
    a = crossgen.load(tiny_checkpoints, device="cpu")
    b = crossgen.load(str(tiny_checkpoints), device="cpu")
    assert a is b and str(a.device) == "cpu"


def test_load_is_thread_safe(tmp_path, monkeypatch):
    directory = make_tiny_checkpoints(tmp_path / "ckpt")
    calls = []
    real = crossgen.Pipeline.from_checkpoints.__func__

    def counting(cls, *args, **kw):
        calls.append(1)
        return real(cls, *args, **kw)

    monkeypatch.setattr(crossgen.Pipeline, "from_checkpoints", classmethod(counting))
    results, barrier = [], threading.Barrier(16)

    def worker():
        barrier.wait()
        results.append(crossgen.load(directory, device="cpu"))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 16 and all(r is results[0] for r in results)


def test_device_auto_resolves(monkeypatch):
    monkeypatch.setenv("CROSSGEN_DEVICE", "cpu")
    assert str(crossgen.get_device("auto")) == "cpu"
    monkeypatch.delenv("CROSSGEN_DEVICE")
    import torch
    assert crossgen.get_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_missing_and_corrupt_checkpoints(tmp_path, tiny_checkpoints):
    with pytest.raises(CheckpointError, match="No checkpoints installed"):
        crossgen.Pipeline.from_checkpoints(tmp_path / "empty")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoints, broken)
    data = bytearray((broken / "vae.safetensors").read_bytes())
    data[-10:] = b"0123456789"
    (broken / "vae.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="vae.safetensors"):
        crossgen.Pipeline.from_checkpoints(broken)
    (broken / "captioner.json").unlink()
    with pytest.raises(CheckpointError, match="captioner.json"):
        crossgen.Pipeline.from_checkpoints(broken, verify=False)


def test_the_composing_vae_serves_every_call(tiny_pipeline):
    """The Pipeline with the composing VAE: the word vectors reach it, one request's images take different exemplars
    of the prompt's object, the same seed gives the same images (batched or not), and an interpolation starts on
    the first image."""
    from crossgen.serving.batching import BatchedModels
    from crossgen.serving.pipeline import Pipeline

    p = tiny_pipeline
    vae = p.vae
    words = p.text_input(p.encode_prompt("red apple"))
    assert words.shape == (vae.config.text_in,) and np.count_nonzero(np.abs(words).reshape(12, -1).sum(1)) == 2
    a = p.generate("red apple", n=4, seed=5).images
    assert [np.asarray(x).tolist() for x in a] == [np.asarray(x).tolist() for x in p.text_to_image("red apple", 4, 5)]
    assert len({np.asarray(x).tobytes() for x in a}) == 4
    eps = vae.noise(4, generator=torch.Generator().manual_seed(5))
    picked = vae.nearest_by_object(eps, torch.from_numpy(words)[None].repeat(4, 1), vae.request_slots(eps))
    assert len(set(picked.tolist())) == 4 and {0, 1, 2} <= set(picked.tolist())  # the 2 red apples, the green one, ...
    unbatched = Pipeline(p.text_encoder, vae, p.features, p.captioner, p.vocab, p.device)
    unbatched.batched = BatchedModels(vae, p.features, p.captioner, enabled=False)
    assert [np.asarray(x).tolist() for x in unbatched.text_to_image("red apple", 4, 5)] == [np.asarray(x).tolist() for x in a]
    frames = p.interpolate("red apple", "dog", k=3, seed=5).images
    assert np.abs(np.asarray(frames[0], dtype=int) - np.asarray(a[0], dtype=int)).max() <= 1


def test_each_image_credits_the_drawing_it_came_from(tiny_pipeline):
    """Generation.credits: per image, the training drawing whose latent it was drawn near (its name, the artwork and
    that artwork's licence, from crossgen/data/split.json), in the order of the images, the same for the same seed."""
    p = tiny_pipeline
    g = p.generate("red apple", n=4, seed=5)
    eps = p.vae.noise(4, generator=torch.Generator().manual_seed(5))
    words = torch.from_numpy(p.text_input(g.prompt))[None].repeat(4, 1)
    rows = p.vae.nearest_by_object(eps, words, p.vae.request_slots(eps)).tolist()
    names = p.sources["name"]
    assert [c.name for c in g.credits] == [names[r] for r in rows]
    expected = {0: ("Noto Emoji (Google)", "Apache-2.0"), 1: ("OpenMoji", "CC-BY-SA-4.0")}
    assert [(c.artwork, c.licence) for c in g.credits] == [expected[r % 2] for r in rows]
    assert g.credits == p.generate("red apple", n=4, seed=5).credits
    assert p.generate("dog", n=1, seed=1).credits[0].name in ("dog", "dog face")
    assert p.credit(-1) is None and p.credit(len(names)) is None  # no exemplar, or a row the checkpoint does not name
