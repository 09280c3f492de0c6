"""The out-of-domain probe and the calibration (`crossgen.postprocess.confidence`): metrics, fitting, loading, and the
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
from crossgen.data.ood import KINDS, build_ood, load_ood
from crossgen.data.records import split_config
from crossgen.errors import CheckpointError
from crossgen.postprocess.chain import model_probabilities
from crossgen.postprocess.confidence import FILE, Calibration, Confidence, DomainCheck, load_confidence
from crossgen.postprocess.metrics import auroc, expected_calibration_error, fpr_at_tpr
from crossgen.train.confidence import answer_index, choose_msp_weight, fit_nbest, fit_probe, learned_styles

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


def overconfident_lists(n: int = 4000, seed: int = 0) -> tuple[list[list[float]], list[int], np.ndarray]:
    """n-best lists of three captions whose model probabilities are overconfident, with which one is right (3:
    none): the true chances are the model's to the power 4, the rest is "something else"."""
    rng = np.random.default_rng(seed)
    lists, answers, best_true = [], [], []
    for _ in range(n):
        model = rng.dirichlet([1.0, 0.5, 0.3, 0.4])[:3]  # (3,) model probabilities, sum < 1
        model = np.sort(model)[::-1]
        true = model ** 4  # what is really right is much less likely than the model says
        answers.append(int(rng.choice(4, p=np.append(true, 1 - true.sum()))))
        lists.append(np.log(model).tolist())
        best_true.append(true[0])
    return lists, answers, np.array(best_true)


def test_nbest_calibration_is_one_distribution_and_fixes_overconfidence():
    lists, answers, _ = overconfident_lists()
    cal = Calibration({"captioner": fit_nbest(lists, answers)})
    shown = [cal.probabilities(lps) for lps in lists]
    assert all(sum(p) < 1 for p in shown)  # "something else" keeps the rest
    assert all(p[0] >= p[1] >= p[2] for p in shown)  # the ranking of the captions is kept
    right = np.array([a == 0 for a in answers], float)
    before = expected_calibration_error(np.exp([lps[0] for lps in lists]), right)
    after = expected_calibration_error(np.array([p[0] for p in shown]), right)
    assert after < 0.03 < before


def test_nbest_calibration_takes_lists_of_any_length():
    lists, answers, _ = overconfident_lists(600)
    lists = [lps[:1 + i % 3] for i, lps in enumerate(lists)]  # one, two or three captions
    answers = [min(a, len(lps)) for a, lps in zip(answers, lists)]
    a, c = fit_nbest(lists, answers)
    assert math.isfinite(a) and math.isfinite(c)
    assert answer_index([("red heart", -0.1), ("Heart Suit", -2.0)], "heart suit") == 1
    assert answer_index([("red heart", -0.1)], "pizza") == 1  # not there: "something else"


def test_model_probabilities_never_add_up_to_more_than_one():
    assert model_probabilities([math.log(0.5), math.log(0.2)]) == pytest.approx([0.5, 0.2])
    # the skin-tone reader can give two captions one score: 0.65 + 0.65 + 0.15 is scaled down
    p = model_probabilities([math.log(0.65), math.log(0.65), math.log(0.15)])
    assert sum(p) == pytest.approx(1.0) and p[0] == p[1] > p[2]


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


def test_domain_score_adds_the_concept_heads_doubt():
    probe = DomainCheck([0.0] * 512, [1.0] * 512, [0.0] * 512, 1.0, threshold=0.0)  # bias only
    feats = torch.randn(2, 512)
    concepts = torch.tensor([[0.8, 0.1, 0.1], [0.4, 0.3, 0.3]])  # (B, K)
    assert torch.allclose(probe.score(feats, concepts), torch.ones(2))  # weight 0: the probe alone
    weighted = DomainCheck([0.0] * 512, [1.0] * 512, [0.0] * 512, 1.0, threshold=0.0, msp_weight=2.0)
    assert torch.allclose(weighted.score(feats, concepts), 1.0 + 2.0 * torch.tensor([0.8, 0.4]).log())
    with pytest.raises(ValueError, match="concept head"):
        weighted.score(feats)


def test_msp_weight_is_chosen_by_cross_validation_over_sources():
    g = torch.Generator().manual_seed(0)
    inside, val, outside = (torch.randn(n, 8, generator=g) for n in (300, 200, 160))  # features that cannot tell
    rows = [{"source": f"s{i // 4}", "kind": ("photo", "screenshot", "text", "noise")[i % 4]} for i in range(160)]
    sure = torch.full((200, 1000), 0.09 / 999).index_fill(1, torch.tensor([0]), 0.91)  # (N, K) a sure head
    unsure = torch.full((160, 1000), 0.001)  # a flat one
    weight, fpr = choose_msp_weight(inside, val, sure, outside, unsure, rows)
    assert weight > 0 and fpr[weight] == 0.0 and fpr[0.0] > 0.5  # the head's doubt tells them apart
    weight, fpr = choose_msp_weight(inside, val, sure, outside, sure[:160], rows)
    assert weight == 0.0 and len(set(fpr.values())) == 1  # an uninformative head: no weight
    assert choose_msp_weight(inside, val, None, outside, None, rows) == (0.0, {})  # no concept head


def test_confidence_round_trip_and_absent_file(tmp_path):
    assert load_confidence(tmp_path, 512) is None
    probe = DomainCheck([0.0] * 512, [1.0] * 512, [0.5] * 512, 0.25, threshold=-1.0)
    Confidence(probe, Calibration({"captioner": [0.5, 0.1]})).save(tmp_path, note="test")
    loaded = load_confidence(tmp_path, 512)
    assert loaded.domain.threshold == -1.0 and loaded.domain.weight == probe.weight and loaded.domain.msp_weight == 0.0
    # softmax over [0.5 * log 0.5, 0.1]: the one caption against "something else"
    assert loaded.calibration.probabilities([math.log(0.5)]) == pytest.approx([1 / (1 + math.exp(0.1 - 0.5 * math.log(0.5)))])
    assert load_confidence(tmp_path, 256).domain is None  # made for another feature model
    meta = json.loads((tmp_path / FILE).read_text())
    meta["calibration"] = meta.pop("nbest_calibration")  # an older file: Platt scaling of each caption on its own
    (tmp_path / FILE).write_text(json.dumps(meta))
    assert load_confidence(tmp_path, 512).calibration is None  # not read: the models' probabilities are shown


def test_calibration_keeps_to_the_artists_the_models_learned_from(tmp_path):
    assert learned_styles(tmp_path) is None  # no manifest: every validation drawing counts
    write_manifest(tmp_path, data={"counts": {"noto": {"train": 5, "val": 1}, "twemoji": {"train": 0, "test": 3}}})
    assert learned_styles(tmp_path) == {"noto"}  # the test artist trained nothing
    # the shipped image models learned the nine training artists (features fine-tuned on them, issue 32), never Twemoji
    trained = {k for k, v in split_config()["styles"].items() if v["split"] == "train"}
    assert learned_styles(SHIPPED) == trained and len(trained) == 9
    shipped = json.loads((SHIPPED / FILE).read_text())
    assert shipped["calibration_artists"] == sorted(learned_styles(SHIPPED)) == sorted(shipped["probe_artists"])


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
    assert crossgen.Pipeline.from_checkpoints(copy, "cpu").postprocess.confidence.domain is not None


def test_ood_set_is_split_by_source(tmp_path):
    info = build_ood(tmp_path, crops=2, rendered=8)
    val, _ = load_ood(tmp_path, "val")
    test, images = load_ood(tmp_path, "test")
    train, _ = load_ood(tmp_path, "train")
    assert {r["kind"] for r in val} == {r["kind"] for r in test} == set(KINDS)
    assert {r["kind"] for r in train} == set(KINDS) - {"drawing"}  # whether drawings are emoji is a policy
    sources = [{r["source"] for r in part} for part in (train, val, test)]
    assert not sources[0] & sources[1] and not sources[0] & sources[2] and not sources[1] & sources[2]
    assert info["records"] == len(train) + len(val) + len(test) and images[0].size == (128, 128)


def test_ood_train_part_leaves_the_other_parts_as_they_were(tmp_path, monkeypatch):
    """The train part is drawn after the others with its own random generator: val and test are the same images
    with it as without it (the figures measured on them stay comparable)."""
    import crossgen.data.ood as ood

    build_ood(tmp_path / "with", crops=2, rendered=8)
    monkeypatch.setattr(ood, "_train_part", lambda *args: None)
    build_ood(tmp_path / "without", crops=2, rendered=8)
    for split in ("val", "test"):
        with_train, without = load_ood(tmp_path / "with", split)[0], load_ood(tmp_path / "without", split)[0]
        assert with_train == without
        assert all((tmp_path / "with" / r["file"]).read_bytes() == (tmp_path / "without" / r["file"]).read_bytes()
                   for r in without)


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
    assert not reading.in_domain and reading.domain_score < shipped.postprocess.confidence.domain.threshold


@pytest.mark.slow
def test_shipped_calibration_is_monotone_and_bounded(shipped):
    cal = shipped.postprocess.confidence.calibration
    for source in ("captioner", "concept head"):
        ps = cal.probabilities([math.log(p) for p in (0.6, 0.2, 0.1, 0.05)], source)
        assert all(0 < b < a < 1 for a, b in zip(ps, ps[1:])) and sum(ps) < 1
