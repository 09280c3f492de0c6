"""The out-of-domain probe and the calibration (`crossgen.confidence`): metrics, fitting, loading, and the
shipped maps on real images (the fixture's emoji are accepted; photos, text and noise are flagged)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

import crossgen
from crossgen.checkpoint import write_manifest
from crossgen.confidence import FILE, Calibration, Confidence, DomainCheck, load_confidence
from crossgen.data.ood import KINDS, build_ood, load_ood
from crossgen.errors import CheckpointError
from crossgen.train.confidence import (auroc, expected_calibration_error, fit_platt, fit_probe, fpr_at_tpr,
                                      learned_styles)

from helpers import FIXTURE, ROOT, make_tiny_checkpoints

SHIPPED = ROOT / "checkpoints"


def test_auroc_and_fpr():
    assert auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert auroc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 0.0
    assert auroc(np.array([1.0, 1.0]), np.array([1.0])) == 0.5  # ties count half
    inside = np.linspace(0, 1, 101)
    assert fpr_at_tpr(inside, np.array([-1.0, 0.5, 2.0])) == pytest.approx(2 / 3)


def test_calibration_error():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=20000)
    right = (rng.uniform(size=p.size) < p).astype(float)  # calibrated by construction
    assert expected_calibration_error(p, right) < 0.02
    assert expected_calibration_error(np.full(1000, 0.9), np.zeros(1000)) == pytest.approx(0.9)


def test_platt_scaling_fixes_overconfidence():
    rng = np.random.default_rng(0)
    true = rng.uniform(0.05, 0.95, 5000)
    right = (rng.uniform(size=true.size) < true).astype(float)
    shown = true ** 0.25  # overconfident
    cal = Calibration({"captioner": fit_platt(np.log(shown), right)})
    after = np.array([cal.probability(math.log(s)) for s in shown])
    assert expected_calibration_error(after, right) < 0.03 < expected_calibration_error(shown, right)
    assert all(np.diff(after[np.argsort(shown)]) >= -1e-12)  # monotone: the ranking of captions is kept


def test_probe_separates_and_folds_its_standardisation():
    g = torch.Generator().manual_seed(0)
    inside = torch.randn(400, 512, generator=g) + 2.0
    outside = torch.randn(300, 512, generator=g) - 2.0
    probe = fit_probe(inside, outside, steps=100)
    s_in, s_out = probe.score(inside).numpy(), probe.score(outside).numpy()
    assert auroc(s_in, s_out) > 0.99
    # score = standardised unit features @ weight + bias, folded into one product
    unit = torch.nn.functional.normalize(inside, dim=1)
    direct = ((unit - torch.tensor(probe.mean)) / torch.tensor(probe.std)) @ torch.tensor(probe.weight) + probe.bias
    assert torch.allclose(probe.score(inside), direct, atol=1e-4)


def test_confidence_round_trip_and_absent_file(tmp_path):
    assert load_confidence(tmp_path, 512) is None
    probe = DomainCheck([0.0] * 512, [1.0] * 512, [0.5] * 512, 0.25, threshold=-1.0)
    Confidence(probe, Calibration({"captioner": [0.5, 0.1]})).save(tmp_path, note="test")
    loaded = load_confidence(tmp_path, 512)
    assert loaded.domain.threshold == -1.0 and loaded.domain.weight == probe.weight
    assert loaded.calibration.probability(math.log(0.5)) == pytest.approx(1 / (1 + math.exp(-0.1)))
    assert load_confidence(tmp_path, 256).domain is None  # made for another feature model


def test_calibration_keeps_to_the_artists_the_models_learned_from(tmp_path):
    assert learned_styles(tmp_path) is None  # no manifest: every validation drawing counts
    write_manifest(tmp_path, data={"counts": {"noto": {"train": 5, "val": 1}, "twemoji": {"train": 0, "test": 3}}})
    assert learned_styles(tmp_path) == {"noto"}  # the test artist trained nothing
    assert learned_styles(SHIPPED) == {"noto", "openmoji", "fluent", "noto-v1", "emojione"}
    shipped = json.loads((SHIPPED / FILE).read_text())
    assert shipped["calibration_artists"] == sorted(learned_styles(SHIPPED))
    assert set(shipped["probe_artists"]) > learned_styles(SHIPPED)  # the probe knows more artists as emoji


def test_listed_but_missing_confidence_file_is_a_checkpoint_error(tmp_path):
    ckpt = make_tiny_checkpoints(tmp_path / "ckpt")
    probe = DomainCheck([0.0] * 512, [1.0] * 512, [0.0] * 512, 1.0, threshold=0.0)
    Confidence(probe, None).save(ckpt)
    write_manifest(ckpt, training={"note": "tiny"})
    pipe = crossgen.Pipeline.from_checkpoints(ckpt, "cpu")
    reading = pipe.read(FIXTURE / "images" / "twemoji" / "1f436.png")
    assert reading.in_domain and reading.domain_score == pytest.approx(1.0, abs=1e-5)  # bias only, threshold 0
    assert reading.captions == pipe.image_to_text(FIXTURE / "images" / "twemoji" / "1f436.png")
    (ckpt / FILE).unlink()
    with pytest.raises(CheckpointError, match=FILE):
        crossgen.Pipeline.from_checkpoints(ckpt, "cpu")


def test_without_confidence_file_captions_keep_their_probabilities(tiny_pipeline):
    reading = tiny_pipeline.read(FIXTURE / "images" / "twemoji" / "1f436.png", beam=3, n_best=3)
    assert reading.in_domain and reading.domain_score is None and reading.named_by == "captioner"
    assert reading.probabilities == pytest.approx([math.exp(lp) for _, lp in reading.captions])


def test_a_space_may_leave_out_the_evaluator(tmp_path):
    copy = tmp_path / "space"
    copy.mkdir()
    for f in SHIPPED.iterdir():
        if f.is_file() and not f.name.startswith("evaluator."):
            (copy / f.name).symlink_to(f)
    assert crossgen.Pipeline.from_checkpoints(copy, "cpu").confidence.domain is not None


def test_ood_set_is_split_by_source(tmp_path):
    info = build_ood(tmp_path, crops=2, rendered=8)
    val, _ = load_ood(tmp_path, "val")
    test, images = load_ood(tmp_path, "test")
    assert {r["kind"] for r in val} == {r["kind"] for r in test} == set(KINDS)
    assert not {r["source"] for r in val} & {r["source"] for r in test}
    assert info["records"] == len(val) + len(test) and images[0].size == (128, 128)


# --------------------------------------------------------------------------- the shipped maps on real images


def photo(name: str) -> Image.Image:
    import skimage.data
    return Image.open(next(Path(skimage.data.__file__).parent.glob(f"{name}.*"))).convert("RGB")


def rendered_text() -> Image.Image:
    import matplotlib
    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), 28)
    img = Image.new("RGB", (256, 256), "white")
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(["Meeting notes", "agenda: budget", "next steps", "submit by friday"]):
        draw.text((10, 20 + 50 * i), line, fill="black", font=font)
    return img


def noise() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def shipped():
    return crossgen.load(SHIPPED, device="cpu")


@pytest.mark.slow
def test_shipped_probe_accepts_the_fixture_emoji(shipped):
    records = [json.loads(line) for line in (FIXTURE / "records.jsonl").read_text().splitlines()]
    readings = [shipped.read(FIXTURE / r["image"]) for r in records]
    twemoji = [r.in_domain for r, rec in zip(readings, records) if rec["style"] == "twemoji"]
    assert np.mean([r.in_domain for r in readings]) >= 0.97 and np.mean(twemoji) >= 0.95
    # the flag changes nothing in the captions
    assert readings[0].captions == shipped.image_to_text(FIXTURE / records[0]["image"])


@pytest.mark.slow
@pytest.mark.parametrize("make", [lambda: photo("chelsea"), lambda: photo("rocket"), lambda: photo("coffee"),
                                  rendered_text, noise], ids=["cat photo", "rocket photo", "coffee photo", "text", "noise"])
def test_shipped_probe_flags_what_is_not_an_emoji(shipped, make):
    reading = shipped.read(make())
    assert not reading.in_domain and reading.domain_score < shipped.confidence.domain.threshold


@pytest.mark.slow
def test_shipped_calibration_is_monotone_and_bounded(shipped):
    cal = shipped.confidence.calibration
    for source in ("captioner", "concept head"):
        ps = [cal.probability(math.log(p), source) for p in (0.01, 0.2, 0.5, 0.8, 0.99)]
        assert all(0 < a < b < 1 for a, b in zip(ps, ps[1:]))
