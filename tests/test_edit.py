"""Editing an emoji with words (`crossgen.serving.edit`, `Pipeline.edit`): the caption the words make, the pixels they may
change, and edits of real Twemoji drawings (an artist never trained on) with the shipped models."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import crossgen
from crossgen.imaging.colour import read_colour
from crossgen.preprocess import load_image
from crossgen.serving.edit import colour_mask, edited_caption, paint

from helpers import ROOT

EXAMPLES = ROOT / "assets" / "examples"


@pytest.mark.parametrize("name, words, expected", [
    ("red apple", "blue", ("blue apple", "colour")),
    ("apple", "Blue", ("blue apple", "colour")),
    ("thumbs up", "dark skin tone", ("thumbs up dark skin tone", "tone")),
    ("thumbs up light skin tone", "medium-dark", ("thumbs up medium dark skin tone", "tone")),
    ("handshake light skin tone dark skin tone", "medium", ("handshake medium skin tone medium skin tone", "tone")),
    ("dog", "cat face", ("cat face", "caption")),
    ("red heart", "green heart", ("green heart", "caption")),
])
def test_words_make_the_caption(name, words, expected):
    assert edited_caption(name, words) == expected


def tensor(path) -> torch.Tensor:
    return torch.from_numpy(np.array(load_image(path))).permute(2, 0, 1).float() / 255


def test_a_colour_edit_may_change_the_main_colour_only():
    apple = tensor(EXAMPLES / "twemoji_red_apple.png")
    mask = colour_mask(apple)
    assert 0.2 < mask.float().mean() < 0.6  # the red body, not the leaf, the stem or the white ground
    assert not mask[0, 0] and mask[40, 32]
    blue = torch.zeros_like(apple)
    blue[2] = 1.0
    out = paint(apple, blue, mask)
    assert read_colour(out) == "blue" and torch.equal(out[:, ~mask], apple[:, ~mask])


@pytest.fixture(scope="module")
def shipped():
    return crossgen.load(ROOT / "checkpoints", device="cpu")


@pytest.mark.parametrize("example, words, colour", [("twemoji_red_apple.png", "blue", "blue"),
                                                    ("twemoji_red_heart.png", "green", "green")])
def test_shipped_colour_edits_keep_the_object(shipped, example, words, colour):
    e = shipped.edit(EXAMPLES / example, words)
    assert e.kind == "colour" and e.caption.startswith(colour) and e.image.size == (64, 64)
    x = tensor(e.image)
    assert read_colour(x) == colour
    before = tensor(EXAMPLES / example)
    kept = ~colour_mask(before)  # the outline, the leaf, the ground: the drawing's own pixels
    assert kept.float().mean() > 0.3 and torch.allclose(x[:, kept], before[:, kept], atol=1 / 255)


def test_shipped_tone_edit_paints_the_skin(shipped):
    reader = shipped.postprocess.skin_tone
    e = shipped.edit(EXAMPLES / "twemoji_person_raising_hand_medium_skin_tone.png", "dark skin tone")
    assert e.caption.endswith("dark skin tone") and e.kind == "tone"
    assert crossgen.postprocess.skin_tone.TONES[reader.predict(tensor(e.image))] == "dark"


def test_shipped_edit_refuses_what_is_not_an_emoji_and_empty_words(shipped):
    import skimage.data

    cat = Image.fromarray(skimage.data.chelsea())  # a photo
    with pytest.raises(crossgen.NotAnEmojiError, match="doesn't look like an emoji"):
        shipped.edit(cat, "blue")
    with pytest.raises(crossgen.InvalidPromptError, match="Type what to change"):
        shipped.edit(EXAMPLES / "twemoji_dog.png", "   ")
    with pytest.raises(crossgen.UnknownWordsError):
        shipped.edit(EXAMPLES / "twemoji_dog.png", "zzzqqq")


def test_shipped_generator_paints_the_asked_skin_tone(shipped):
    """Text -> image moves the skin of a prompt's images to the one tone it names (`Pipeline.paint_tone`)."""
    from crossgen.postprocess.skin_tone import TONES

    for tone in ("light", "medium dark"):
        images = shipped.text_to_image(f"thumbs up {tone} skin tone", n=4, seed=3)
        assert [TONES[shipped.postprocess.skin_tone.predict(tensor(im))] for im in images] == [tone] * 4
    x = torch.rand(2, 3, 64, 64)
    assert shipped.paint_tone("red apple", x) is x  # no tone named
    assert shipped.paint_tone("handshake light skin tone dark skin tone", x) is x  # two: left as drawn


def test_shipped_edit_draws_anew_in_an_artists_style(shipped):
    from crossgen.imaging.colour import read_colour as colour_of

    e = shipped.edit(EXAMPLES / "twemoji_red_apple.png", "blue", artist="OpenMoji")
    assert e.caption == "blue apple" and e.credit.artwork == "OpenMoji" and "apple" in e.credit.name
    assert colour_of(tensor(e.image)) == "blue"
    assert shipped.edit(EXAMPLES / "twemoji_red_apple.png", "blue", artist="noto").credit.licence == "Apache-2.0"
    with pytest.raises(crossgen.InvalidRequestError, match="Unknown artist 'Picasso': one of EmojiOne"):
        shipped.edit(EXAMPLES / "twemoji_red_apple.png", "blue", artist="Picasso")
