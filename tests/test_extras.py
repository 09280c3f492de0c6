"""Issue 7 in the library: interpolation (+ GIF), round trip, prompt-word hints, reproducibility."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from crossgen import (InvalidPromptError, InvalidRequestError, UnknownWordsError, replace_word, slerp,
                      write_gif)
from crossgen.serving.prompt_hints import split_compound

from helpers import ROOT


def pixels(images) -> list[np.ndarray]:
    return [np.asarray(im, dtype=np.int16) for im in images]


# ------------------------------------------------------------------ reproducibility


def test_same_prompt_and_seed_give_same_images(tiny_pipeline):
    a = tiny_pipeline.generate("red apple", n=3, seed=1234, temperature=1.0)
    b = tiny_pipeline.generate("red apple", n=3, seed=1234, temperature=1.0)
    assert a.seed == b.seed == 1234
    assert [im.tobytes() for im in a.images] == [im.tobytes() for im in b.images]
    c = tiny_pipeline.generate("red apple", n=3, seed=1235, temperature=1.0)
    assert [im.tobytes() for im in a.images] != [im.tobytes() for im in c.images]


def test_random_seed_is_reported_and_replays(tiny_pipeline):
    first = tiny_pipeline.generate("dog", n=2, seed=None)
    assert 0 <= first.seed <= 2**31 - 1
    replay = tiny_pipeline.generate("dog", n=2, seed=first.seed)
    assert [im.tobytes() for im in first.images] == [im.tobytes() for im in replay.images]


# ------------------------------------------------------------------ interpolation


def test_slerp_keeps_unit_vectors_unit_and_hits_the_ends():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, generator=g), torch.randn(16, generator=g)
    a, b = a / a.norm(), b / b.norm()
    path = slerp(a, b, torch.linspace(0, 1, 7))
    assert path.shape == (7, 16)
    assert torch.allclose(path.norm(dim=1), torch.ones(7), atol=1e-5)
    assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    same = slerp(a, a, torch.linspace(0, 1, 3))  # degenerate angle: no NaN
    assert torch.isfinite(same).all() and torch.allclose(same[1], a, atol=1e-5)


def test_interpolate_strip(tiny_pipeline):
    result = tiny_pipeline.interpolate("red apple", "dog face", k=5, seed=7)
    assert len(result.images) == 5 and result.seed == 7
    assert all(im.size == (64, 64) and im.mode == "RGB" for im in result.images)
    assert result.steps == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert result.start.known == ["red", "apple"] and result.end.known == ["dog", "face"]
    frames = pixels(result.images)
    assert any(np.abs(f - frames[0]).max() > 0 for f in frames[1:])  # it does move
    # the first frame is what Draw gives for the start prompt with the same seed
    drawn = pixels(tiny_pipeline.generate("red apple", n=1, seed=7).images)[0]
    assert np.abs(frames[0] - drawn).max() <= 1


def test_interpolate_is_reproducible(tiny_pipeline):
    a = tiny_pipeline.interpolate("red apple", "full moon", k=4, seed=99, temperature=0.8)
    b = tiny_pipeline.interpolate("red apple", "full moon", k=4, seed=99, temperature=0.8)
    assert [im.tobytes() for im in a.images] == [im.tobytes() for im in b.images]
    other = tiny_pipeline.interpolate("red apple", "full moon", k=4, seed=100, temperature=0.8)
    assert [im.tobytes() for im in a.images] != [im.tobytes() for im in other.images]
    assert tiny_pipeline.interpolate("dog", "cat", k=2, seed=None).seed >= 0


@pytest.mark.parametrize("k", [0, 1, 17])
def test_interpolate_frame_count_is_checked(tiny_pipeline, k):
    with pytest.raises(InvalidRequestError, match="between 2 and 16"):
        tiny_pipeline.interpolate("red apple", "dog", k=k, seed=0)


def test_interpolate_bad_prompts(tiny_pipeline):
    with pytest.raises(UnknownWordsError):
        tiny_pipeline.interpolate("red apple", "zzzz qqqq", k=3, seed=0)
    with pytest.raises(InvalidPromptError, match="no words"):
        tiny_pipeline.interpolate("  ", "dog", k=3, seed=0)
    with pytest.raises(InvalidRequestError, match="Temperature"):
        tiny_pipeline.interpolate("dog", "cat", k=3, seed=0, temperature=5)


def test_write_gif_loops_forwards_and_back(tiny_pipeline, tmp_path):
    frames = tiny_pipeline.interpolate("red apple", "dog", k=4, seed=3).images
    path = write_gif(frames, tmp_path / "walk.gif", size=96, frame_ms=200)
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.size == (96, 96) and gif.is_animated
        assert gif.n_frames == 6  # 4 forwards, 2 back (the ends are not repeated)
        assert gif.info.get("loop") == 0 and gif.info.get("duration") == 200
    one = write_gif(frames[:2], tmp_path / "two.gif", boomerang=False)
    with Image.open(one) as gif:
        assert gif.n_frames == 2 and gif.size == (64, 64)
    with pytest.raises(ValueError):
        write_gif([], tmp_path / "none.gif")


# ------------------------------------------------------------------ round trip


def test_caption_generated_images(tiny_pipeline):
    images = tiny_pipeline.text_to_image("red apple", n=3, seed=0)
    captions = tiny_pipeline.caption_images(images, beam=2)
    assert len(captions) == 3
    assert all(isinstance(text, str) and logprob <= 0 for text, logprob in captions)
    # each is the image's own best caption
    assert captions[1] == tiny_pipeline.image_to_text(images[1], beam=2, n_best=1)[0]
    with pytest.raises(InvalidRequestError, match="No images"):
        tiny_pipeline.caption_images([])
    with pytest.raises(InvalidRequestError, match="Beam"):
        tiny_pipeline.caption_images(images, beam=0)


def test_draw_from_a_caption(tiny_pipeline):
    image = ROOT / "assets" / "examples" / "twemoji_dog.png"
    best, _ = tiny_pipeline.image_to_text(image, beam=3)[0]
    if not best:  # a tiny random captioner may end at once
        pytest.skip("empty caption from the tiny random model")
    g = tiny_pipeline.generate(best, n=2, seed=5)
    assert len(g.images) == 2 and g.prompt.known  # the captioner's words are words the text side knows


# ------------------------------------------------------------------ n-best


def test_nbest_probabilities_are_model_probabilities(tiny_pipeline):
    image = ROOT / "assets" / "examples" / "twemoji_pizza.png"
    nbest = tiny_pipeline.image_to_text(image, beam=5, n_best=5)
    probs = [float(np.exp(lp)) for _, lp in nbest]
    assert 1 <= len(nbest) <= 5 and len({t for t, _ in nbest}) == len(nbest)  # distinct captions
    assert all(0 < p <= 1 for p in probs) and sum(probs) <= 1 + 1e-6  # disjoint sequences of one distribution
    assert probs == sorted(probs, reverse=True)  # best first


# ------------------------------------------------------------------ prompt words and suggestions


def test_prompt_words_labels_and_suggestions(tiny_pipeline):
    words = tiny_pipeline.prompt_words("The RED applle, with a dogg!")
    assert words.words == [("the", None), ("red", "known"), ("applle", "unknown"), ("with", None), ("a", None),
                           ("dogg", "unknown")]
    assert words.unknown == ["applle", "dogg"]
    assert words.suggestions["applle"][0] == "apple" and "dog" in words.suggestions["dogg"]


def test_prompt_words_when_nothing_is_known(tiny_pipeline):
    words = tiny_pipeline.prompt_words("zzzz redheart")
    assert words.unknown == ["zzzz", "redheart"]
    assert words.suggestions["zzzz"] == [] and "red heart" in words.suggestions["redheart"]
    with pytest.raises(InvalidPromptError):
        tiny_pipeline.prompt_words("   ")


def test_split_compound(tiny_pipeline):
    enc = tiny_pipeline.text_encoder
    assert split_compound(enc, "thumbsup") == "thumbs up"
    assert split_compound(enc, "catface") == "cat face"
    assert split_compound(enc, "xyzzy") is None


@pytest.mark.parametrize("prompt, word, new, expected", [
    ("red applle", "applle", "apple", "red apple"),
    ("A Big DOGG, happy dogg!", "dogg", "dog", "A Big dog, happy dog!"),
    ("thumbs-upp please", "upp", "up", "thumbs-up please"),
    ("Café au lait", "cafe", "coffee", "coffee au lait"),
    ("keycap #", "hash", "number", "keycap number"),
    ("red apple", "dog", "cat", "red apple"),
])
def test_replace_word(prompt, word, new, expected):
    assert replace_word(prompt, word, new) == expected


def test_example_prompts_use_known_words():
    """The app's example prompts show off the vocabulary: every word is known to the shipped word vectors."""
    from crossgen import TextEncoder

    vectors = ROOT / "checkpoints" / "word2vec.bin"
    if not vectors.is_file():
        pytest.skip("no shipped word vectors")
    import app

    encoder = TextEncoder.load(vectors)
    for prompt in app.EXAMPLE_PROMPTS:
        words = app.crossgen.serving.prompt_hints.analyse(encoder, prompt)
        assert not words.unknown, f"{prompt!r}: unknown {words.unknown}"
