"""Quality floors of the shipped checkpoints, measured on the committed fixture.

The fixture holds 100 concepts drawn by Noto and OpenMoji (training styles) and by Twemoji, the
held-out artist. `crossgen.evaluate` runs on it exactly as on the full test split (captions of the 100
Twemoji images, 4 samples for each of the fixture prompts scored by the evaluator classifier) with the
baselines in the same run; the floors sit a little below the figures of the shipped checkpoints
(`checkpoints/metrics_fixture.json`), so a regression fails CI. The full-split figures are in
`checkpoints/metrics.json` and the README.
"""
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

import crossgen
from crossgen.checkpoint import sha256
from crossgen.evaluate import main as evaluate

from helpers import FIXTURE, ROOT, scratch

SHIPPED = ROOT / "checkpoints"

# A little below what the shipped checkpoints score on the fixture (checkpoints/metrics_fixture.json).
# Fixture figures (2026-12-07, features with outlier exposure on nine artists, captioner 6 views x 6 epochs on the
# CPU, concept-head fallback, skin-tone reader), image -> text: exact 0.66, in 3-best 0.81, BLEU-4 0.771, CIDEr 2.91
# (without the skin-tone reader: 0.54, 0.71, 0.642, 2.63; the LSTM alone: 0.51, 0.69, 0.603, 2.54).
CAPTION_FLOORS = {"exact_top1": 0.62, "exact_nbest": 0.77, "bleu4": 0.76, "cider": 2.75}
# Text -> image, the nine-artist evaluator on 4 samples of each of the 100 fixture prompts (2026-12-07, the composing
# generator): top-1 0.43, top-5 0.75 (retrieval of a real training drawing 0.49 / 0.75).
T2I_FLOORS = {"top1": 0.38, "top5": 0.70}
# Per-category FID of the samples over that of the same VAE with shuffled prompts: 0.56 on the fixture.
INTRA_FID_RATIO_CEILING = 0.60
# Confidence on the fixture (100 Twemoji images against the out-of-domain set's test part), the domain score with the
# concept head's doubt (2026-12-07): 97.0 % accepted (99.0 % with the probe alone; Twemoji 97.2 %); AUROC photo 0.986,
# screenshot 0.997, text 1.000, noise 1.000; best-caption ECE 0.152 -> 0.126 (the n-best calibrated as one
# distribution, whose largest sum on the fixture is 0.913).
ACCEPTED_FLOOR = 0.96
OOD_AUROC_FLOORS = {"photo": 0.98, "screenshot": 0.99, "text": 0.995, "noise": 0.995}
# Composition on the fixture (2026-12-07, the composing generator): the 42 undrawn prompts' colour right 0.964, colour
# and object both right 0.649 (retrieval 0.012, retrieve-then-recolour 0.167); the readers' own checks:
# retrieve-then-recolour's colour 0.988, the object reader on the objects' real drawings recoloured (the ceiling)
# 0.50. The fixture's held-out concepts (never trained on): "red heart" both right 0.75, four toned people 0.69
# (0.94 since the skin is painted in the asked tone).
UNDRAWN_FLOORS = {("generator", "attribute"): 0.9, ("generator", "both"): 0.55, ("retrieve_recolour", "attribute"): 0.9,
                  ("ceiling", "object"): 0.42}
HELD_OUT_BOTH_FLOORS = {"heldout_colour": 0.5, "heldout_tone": 0.8}
# A request's images on different drawings: the share of requests with no two images closer than 0.03, at
# temperatures 0.5 and 1.0 (fixture, since an artist's other colours of a drawing go last: n = 4 100 % / 100 %,
# n = 9 75 % / 85 %; before, n = 9 60 % / 70 %).
DIVERSE_FLOORS = {4: 0.95, 9: 0.7}
# Edits with words (fixture, 2026-12-07): the Twemoji toned people edited to two other tones, tone read and person
# kept 0.608 (tone read 0.892, person kept 0.703); the undrawn prompts' transparent PNGs: corners transparent 0.958,
# the object opaque 0.970.
EDIT_TONE_FLOOR = 0.55
TRANSPARENT_FLOORS = {"corners_transparent": 0.9, "object_opaque": 0.9}


@pytest.fixture(scope="module")
def metrics(tmp_path_factory) -> Iterator[dict]:
    assert (SHIPPED / "manifest.json").is_file(), "the shipped checkpoints are missing: git checkout -- checkpoints/"
    with scratch(tmp_path_factory, "quality") as work:
        out = work / "metrics.json"
        evaluate(["--data", str(FIXTURE), "--checkpoints", str(SHIPPED), "--device", "cpu", "--out", str(out),
                  "--grid", "", "--ood", str(work / "ood")])
        yield json.loads(out.read_text())


@pytest.mark.slow
def test_captioning_floors(metrics):
    model = metrics["captioning"]["methods"]["model"]
    for key, floor in CAPTION_FLOORS.items():
        assert model[key] >= floor, f"captioning {key} fell to {model[key]:.3f} (floor {floor})"


@pytest.mark.slow
def test_concept_fallback_names_at_least_as_many_images(metrics):
    """The shipped fallback (the concept head names the images the LSTM is unsure of) was chosen on the
    validation slice; on the fixture it must not name fewer images exactly than the LSTM alone."""
    assert metrics["captioning"]["fallback"]["threshold"] > 0
    methods = metrics["captioning"]["methods"]
    assert methods["model"]["exact_top1"] >= methods["captioner_alone"]["exact_top1"]


@pytest.mark.slow
def test_skin_tone_reader_names_more_images(metrics):
    """The shipped skin-tone reader (tone words read from the image's colours, fitted on the training artists)
    names clearly more of the fixture's Twemoji images exactly than the same captioning without it."""
    assert metrics["captioning"]["skin_tone"]["colours"] > 0
    methods = metrics["captioning"]["methods"]
    assert methods["model"]["exact_top1"] >= methods["without_skin_tone"]["exact_top1"] + 0.05


@pytest.mark.slow
def test_captioner_beats_its_baselines(metrics):
    """On the fixture the retrieval baselines choose among 100 concepts only (the full split: 3,786), so
    the raw-pixel neighbour names more images exactly there; the model still has the higher CIDEr."""
    methods = metrics["captioning"]["methods"]
    assert methods["model"]["cider"] > methods["nn_pixels"]["cider"]
    assert methods["model"]["cider"] > 10 * methods["most_frequent"]["cider"]
    assert methods["model"]["exact_top1"] > methods["most_frequent"]["exact_top1"]


@pytest.mark.slow
def test_text_to_image_floors(metrics):
    vae = metrics["text_to_image"]["methods"]["vae"]
    for key, floor in T2I_FLOORS.items():
        assert vae[key] >= floor, f"text->image {key} fell to {vae[key]:.3f} (floor {floor})"


@pytest.mark.slow
def test_generator_follows_the_text(metrics):
    """The same VAE fed another prompt's vector is almost never recognised as the prompt's concept, and
    each category's samples sit much closer to that category's real images (per-category FID)."""
    methods = metrics["text_to_image"]["methods"]
    assert methods["vae"]["top5"] > 10 * max(methods["vae_shuffled_text"]["top5"], 0.005)
    ratio = methods["vae"]["intra_fid"] / methods["vae_shuffled_text"]["intra_fid"]
    assert ratio < INTRA_FID_RATIO_CEILING, f"per-category FID is {ratio:.2f}x the shuffled-text baseline's"


@pytest.mark.slow
def test_confidence_floors(metrics):
    """The out-of-domain probe passes the fixture's Twemoji images (an unseen artist) and tells each kind of
    out-of-domain image from them; calibration lowers the best caption's calibration error."""
    conf = metrics["confidence"]
    assert conf["accepted"] >= ACCEPTED_FLOOR, f"only {conf['accepted']:.1%} of the fixture's emoji pass"
    for kind, floor in OOD_AUROC_FLOORS.items():
        assert conf["ood"][kind]["auroc"] >= floor, f"{kind} AUROC fell to {conf['ood'][kind]['auroc']:.3f}"
    assert conf["calibrated"] and conf["ece_after"] < conf["ece_before"]
    assert conf["nbest_sum_at_most_1"] == 1.0 and conf["nbest_sum_max"] <= 1.0


def test_held_out_examples_are_named():
    """The held-out Twemoji examples in assets/ (an artist never trained on) get their names as the best
    caption, skin tones included; the cat face's name is among the 3 best."""
    pipe = crossgen.load(SHIPPED, device="cpu")
    examples = ROOT / "assets" / "examples"
    for name in ["red_apple", "rainbow", "thumbs_up", "dog", "automobile", "pizza"]:
        assert pipe.image_to_text(examples / f"twemoji_{name}.png", beam=3)[0][0] == name.replace("_", " ")
    captions = pipe.image_to_text(examples / "twemoji_cat_face.png", beam=3, n_best=3)
    assert "cat face" in [caption for caption, _ in captions], captions
    # skin tones read from the colours (without the reader the captioner says medium-light, and light + medium-light)
    for name in ["person_raising_hand_medium_skin_tone", "handshake_light_skin_tone_medium_dark_skin_tone"]:
        assert pipe.image_to_text(examples / f"twemoji_{name}.png", beam=3)[0][0] == name.replace("_", " ")


def test_shipped_metrics_describe_the_shipped_checkpoints():
    """checkpoints/metrics.json was measured on exactly the files that ship (same sha256)."""
    metrics = json.loads((SHIPPED / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["styles"] == "twemoji" and metrics["limit"] is None
    for name, digest in metrics["checkpoints"]["sha256"].items():
        if name != "manifest.json":
            assert sha256(SHIPPED / name) == digest, f"{name} changed since checkpoints/metrics.json was measured"


@pytest.mark.slow
def test_composition_floors_and_a_request_is_reproducible(metrics):
    comp = metrics["composition"]
    undrawn = comp["scores"]["undrawn"]
    for (method, key), floor in UNDRAWN_FLOORS.items():
        assert undrawn[method][key] >= floor, f"undrawn {method} {key} fell to {undrawn[method][key]:.3f} (floor {floor})"
    for group, floor in HELD_OUT_BOTH_FLOORS.items():
        both = comp["scores"][group]["generator"]["both"]
        assert both >= floor, f"{group}: attribute and object both right fell to {both:.3f} (floor {floor})"
    assert comp["diversity"]["deterministic"] is True
    for (n, floor), t in [(item, t) for item in DIVERSE_FLOORS.items() for t in (0.5, 1.0)]:
        share = comp["diversity"]["requests"][f"n{n}_t{t}"]["share_ok"]
        assert share >= floor, f"only {share:.0%} of the n{n}_t{t} requests are different drawings (floor {floor:.0%})"


@pytest.mark.slow
def test_edit_and_transparency_floors(metrics):
    tone = metrics["composition"]["edits"]["tone"]
    assert tone["edits"] > 0 and tone["both"] >= EDIT_TONE_FLOOR, f"tone edits right fell to {tone['both']:.3f}"
    clear = metrics["transparency"]
    for key, floor in TRANSPARENT_FLOORS.items():
        assert clear[key] >= floor, f"{key} fell to {clear[key]:.3f} (floor {floor})"
