"""The skin-tone reader: the tone read from an image's colours, how it rewrites captions, how it is fitted."""
from __future__ import annotations

import math

import pytest
import torch

from crossgen.models.image_features import FeatureConfig, ImageFeatures
from crossgen.postprocess.chain import PostProcess
from crossgen.postprocess.concept_fallback import ConceptFallback
from crossgen.postprocess.skin_tone import (RADII, TONES, SkinTone, fit_skin_tone, load_skin_tone, tone_regions, two_tone_concepts,
                                without_tones)
from crossgen.serving.pipeline import Pipeline

# one artist's five skin colours, light to dark (0-255 RGB), and a second artist's a little off them
PALETTE = [[248, 216, 184], [224, 184, 144], [184, 136, 104], [160, 104, 64], [112, 80, 72]]
OTHER = [[c + 6 for c in rgb] for rgb in PALETTE]


def drawing(left: list[int], right: list[int] | None = None, size: int = 64) -> torch.Tensor:
    """(3, size, size) in [0, 1]: white, a black outline, a skin-coloured face in each half, a blue shirt."""
    x = torch.ones(3, size, size)
    x[:, 8:56, 4:60] = 0.0  # outline
    for colour, cols in ((left, slice(6, 32)), (right or left, slice(32, 58))):
        x[:, 10:40, cols] = torch.tensor(colour).float().view(3, 1, 1) / 255
    x[:, 40:54, 6:58] = torch.tensor([0.2, 0.3, 0.9]).view(3, 1, 1)
    return x


def reader() -> SkinTone:
    return SkinTone([list(map(float, c)) for c in PALETTE], list(range(5)), radius=16.0)


def test_tone_is_read_from_the_skin_colour():
    r = reader()
    for t, colour in enumerate(OTHER):  # an artist whose colours are near, not equal to, the palette's
        assert r.predict(drawing(colour)) == t, TONES[t]
    assert r.predict(drawing([40, 200, 40])) is None  # a green alien: no skin colour
    assert r.predict(torch.ones(3, 64, 64)) is None  # blank


def test_captions_get_the_images_tones():
    r = reader()
    dark = drawing(PALETTE[4])
    assert r.retone("thumbs up light skin tone", dark) == "thumbs up dark skin tone"
    assert r.retone("woman medium skin tone beard", dark) == "woman dark skin tone beard"
    assert r.retone("red apple", dark) == "red apple"  # no tone words: unchanged
    assert r.retone("thumbs up light skin tone", drawing([40, 200, 40])) == "thumbs up light skin tone"
    two = drawing(PALETTE[0], PALETTE[3])  # light person on the left, medium-dark on the right
    assert r.retone("handshake medium skin tone dark skin tone", two) == \
        "handshake light skin tone medium dark skin tone"
    # equal tones are named once, as Unicode names them
    assert r.retone("kiss man man light skin tone dark skin tone", dark) == "kiss man man dark skin tone"


def test_a_two_person_concept_named_with_one_tone_gets_the_second():
    r = reader()
    r.pairs = two_tone_concepts(["handshake light skin tone dark skin tone", "handshake light skin tone",
                                 "thumbs up dark skin tone", "kiss woman man medium skin tone light skin tone"])
    assert r.pairs == ["handshake", "kiss woman man"] and without_tones("kiss woman man light skin tone") == "kiss woman man"
    two = drawing(PALETTE[0], PALETTE[3])  # light on the left, medium-dark on the right
    assert r.retone("handshake medium skin tone", two) == "handshake light skin tone medium dark skin tone"
    assert r.retone("kiss woman man dark skin tone", two) == "kiss woman man light skin tone medium dark skin tone"
    assert r.retone("handshake medium skin tone", drawing(PALETTE[1])) == "handshake medium light skin tone"  # equal
    # one-person concepts, and any concept when no pairs are known, keep one tone (read from the whole image)
    assert r.retone("thumbs up medium skin tone", two).count("skin tone") == 1
    assert reader().retone("handshake medium skin tone", two).count("skin tone") == 1


def test_nbest_keeps_its_length_and_scores():
    r = reader()
    nbest = [("thumbs up light skin tone", math.log(0.5)), ("thumbs up medium skin tone", math.log(0.3)),
             ("ok hand medium skin tone", math.log(0.1))]
    out = r.apply(nbest, drawing(PALETTE[2]))
    # the first two become the same caption: kept once, the list filled with the captioner's own first caption,
    # which takes the dropped caption's score (the scores are moved, never copied: they add up as before)
    assert out == [("thumbs up medium skin tone", nbest[0][1]), ("thumbs up light skin tone", nbest[1][1]),
                   ("ok hand medium skin tone", nbest[2][1])]
    assert sorted(score for _, score in out) == sorted(score for _, score in nbest)
    assert r.apply([], drawing(PALETTE[2])) == []


def test_regions_follow_the_code_points():
    images = torch.stack([drawing(PALETTE[0]), drawing(PALETTE[0], PALETTE[4]), drawing(PALETTE[1])]).mul(255).byte()
    records = [{"id": "1f44d-1f3fb", "style": "a"}, {"id": "1faf1-1f3fb-200d-1faf2-1f3ff", "style": "a"},
               {"id": "1f44d", "style": "a"}]
    regions = tone_regions(records, images)
    assert [(t, s, x.shape[-1]) for x, t, s in regions] == [(0, "a", 64), (0, "a", 32), (4, "a", 32)]
    assert regions[2][0].max() <= 1.0


def test_fit_finds_each_artists_colours_and_a_radius():
    regions = [(drawing(c), t, artist) for artist, pal in (("a", PALETTE), ("b", OTHER)) for t, c in enumerate(pal)
               for _ in range(3)]
    r, scores = fit_skin_tone(regions)
    assert len(r.palette) == 10 and sorted(r.tones) == sorted(list(range(5)) * 2)
    for colour, tone in zip(r.palette, r.tones):  # the skin fill, not the outline or the shirt
        truth = (PALETTE if colour in [[c - c % 8 + 4 for c in p] for p in PALETTE] else OTHER)[tone]
        assert max(abs(a - b) for a, b in zip(colour, truth)) <= 8
    assert set(scores) == {str(x) for x in RADII} and r.radius in RADII
    assert scores[str(r.radius)] == 1.0  # each artist's tones read right from the other's palette
    third = [[c + 3 for c in rgb] for rgb in PALETTE]  # a third artist, between the two
    assert [r.predict(drawing(c)) for c in third] == list(range(5))


def test_save_and_load(tmp_path):
    assert load_skin_tone(tmp_path) is None  # absent: captions keep the captioner's tones
    reader().save(tmp_path, loo_accuracy={})
    assert load_skin_tone(tmp_path) == reader() and load_skin_tone(tmp_path).pairs == []
    r = reader()
    r.pairs = ["handshake"]
    r.save(tmp_path)
    assert load_skin_tone(tmp_path) == r


def test_pipeline_reads_tones_after_the_fallback(tiny_pipeline):
    torch.manual_seed(0)
    features = ImageFeatures(FeatureConfig(num_classes=2)).eval()  # random weights, with a concept head
    p = Pipeline(tiny_pipeline.text_encoder, tiny_pipeline.vae, features, tiny_pipeline.captioner,
                 tiny_pipeline.vocab, tiny_pipeline.device)
    names = ["thumbs up light skin tone", "waving hand light skin tone"]
    p.postprocess.fallback = ConceptFallback(names, threshold=1.01)  # always unsure: the head's names
    image = drawing(PALETTE[3]).mul(255).byte().permute(1, 2, 0).numpy()  # (H, W, 3) uint8
    before = [c for c, _ in p.image_to_text(image, beam=2, n_best=2)]
    assert all(c.endswith("light skin tone") for c in before)
    p.postprocess.skin_tone = reader()
    after = [c for c, _ in p.image_to_text(image, beam=2, n_best=2)]
    assert after[0] == before[0].replace("light skin tone", "medium dark skin tone")


def test_the_chain_names_then_tones_and_skips_what_is_not_shipped():
    """PostProcess (used by Pipeline.read, the fits and the evaluation): the fallback's list and the model that named
    the image, then the tones read; without a fallback or a reader the captions pass through unchanged."""
    image = drawing(PALETTE[3])  # (3, H, W) in [0, 1], medium-dark skin
    captions = [("dog", math.log(0.2)), ("cat", math.log(0.1))]  # unsure
    probs = torch.tensor([0.3, 0.7])
    bare = PostProcess()
    assert bare.name(captions, probs) == (captions, "captioner") and bare.tone(captions, image) == captions
    assert bare.read(captions, probs, image, None).captions == captions
    steps = PostProcess(ConceptFallback(["thumbs up light skin tone", "waving hand light skin tone"], threshold=0.5),
                        reader())
    untoned, named_by = steps.name(captions, probs)
    assert [c for c, _ in untoned] == ["waving hand light skin tone", "thumbs up light skin tone"]
    assert named_by == "concept head"
    toned = steps.tone(untoned, image)
    assert toned == [(c.replace("light", "medium dark"), s) for c, s in untoned]
    read = steps.read(captions, probs, image, None)
    assert read.captions == toned and read.named_by == "concept head" and sum(read.probabilities) <= 1
    # the decision, not the list, says who named it: a head whose names equal the captions still names the image
    same = PostProcess(ConceptFallback(["dog", "cat"], threshold=0.5))
    named, named_by = same.name([("dog", math.log(0.2))], torch.tensor([0.9, 0.1]))
    assert [c for c, _ in named] == ["dog"] and named[0][1] == pytest.approx(math.log(0.9)) and named_by == "concept head"
    sure = [("dog", math.log(0.8))]
    assert same.name(sure, probs) == (sure, "captioner")
