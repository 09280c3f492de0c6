"""Evaluation: metric helpers on hand-made inputs, FID, and one end-to-end run on the fixture."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from crossgen.errors import CheckpointError
from crossgen.evaluation.evaluate import (caption_metrics, caption_scores, derangement, fid, intra_fid, main, nearest_names,
                               references)
from crossgen.models.evaluator import topk_accuracy

from helpers import FIXTURE, ROOT, make_tiny_checkpoints

CAPTIONS = ["red apple on a white plate", "dog face with a red tongue", "thumbs up with a dark skin tone"]


def test_exact_captions_score_perfectly():
    s = caption_scores(CAPTIONS, [[c] for c in CAPTIONS])
    assert s["bleu1"] == pytest.approx(1, abs=1e-6) and s["bleu4"] == pytest.approx(1, abs=1e-6)
    assert s["rouge_l"] == pytest.approx(1) and s["cider"] > 0


def test_wrong_captions_score_lower_and_empty_caption_is_safe():
    right = caption_scores(CAPTIONS, [[c] for c in CAPTIONS])
    wrong = caption_scores(["", "blue car", "red heart"], [[c] for c in CAPTIONS])
    assert all(wrong[k] < right[k] for k in right)
    assert wrong["bleu4"] < 0.01


def test_caption_metrics_exact_and_nbest():
    records = [{"name": "red apple", "captions": ["red apple", "fruit red", "fruit"]},
               {"name": "dog face", "captions": ["dog face", "animal dog pet"]}]
    assert references(records[0]) == ["red apple", "fruit red"]
    m = caption_metrics([["Red apple", "apple"], ["cat face", "dog face"]], records)
    assert m["exact_top1"] == 0.5 and m["exact_nbest"] == 1.0
    assert set(m) == {"exact_top1", "exact_nbest", "bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "cider"}


def test_fid_identical_is_zero_and_grows_with_shift():
    x = np.random.default_rng(0).normal(size=(400, 8))
    assert fid(x, x) == pytest.approx(0, abs=1e-6)
    assert fid(x, x + 0.5) > fid(x, x + 0.1) > 0.01
    few = np.random.default_rng(1).normal(size=(5, 16))  # fewer samples than dimensions: still finite
    assert np.isfinite(fid(few, few + 1.0))


def test_intra_fid_sees_images_drawn_for_the_wrong_group():
    rng = np.random.default_rng(0)
    real = np.concatenate([rng.normal(0, 1, (40, 4)), rng.normal(5, 1, (40, 4))])  # two well-separated groups
    groups = np.array(["a"] * 40 + ["b"] * 40)
    right = real + rng.normal(0, 0.1, real.shape)
    wrong = right[::-1]  # group a gets group b's images and the other way round
    assert fid(right, real) == pytest.approx(fid(wrong, real))  # plain FID cannot tell them apart
    assert intra_fid(wrong, groups, real, groups) > 10 * intra_fid(right, groups, real, groups)
    assert intra_fid(right, groups, real, groups, min_size=41) is None  # no group large enough


def test_topk_nearest_and_derangement():
    logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.05]])
    assert topk_accuracy(logits, np.array([1, 1]), ks=(1, 2)) == {"top1": 0.5, "top2": 1.0}
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    assert nearest_names(torch.tensor([[1.0, 0.05]]), bank, ["a", "a", "b"], 2) == [["a", "b"]]
    perm = derangement(10, np.random.default_rng(0))
    assert sorted(perm) == list(range(10)) and not (perm == np.arange(10)).any()


@pytest.mark.slow
def test_evaluate_end_to_end(tmp_path, capsys):
    ckpt = make_tiny_checkpoints(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="--train-evaluator"):
        main(["--data", str(FIXTURE), "--checkpoints", str(ckpt)])
    out, grid = tmp_path / "metrics.json", tmp_path / "grid.png"
    originals = tmp_path / "npm" / "emoji-datasource-twitter-16.0.0" / "package" / "img" / "twitter" / "64"
    originals.mkdir(parents=True)
    for f in (ROOT / "tests" / "fixtures" / "alpha").glob("*.png"):  # Twemoji's own RGBA drawings: the true alpha
        (originals / f.name).symlink_to(f)
    main(["--data", str(FIXTURE), "--checkpoints", str(ckpt), "--train-evaluator", "--evaluator-epochs", "1",
          "--limit", "150", "--work", str(tmp_path / "runs"), "--prompts", "20", "--out", str(out), "--grid", str(grid),
          "--npm", str(tmp_path / "npm")])
    assert (ckpt / "evaluator.safetensors").is_file() and (ckpt / "evaluator.json").is_file() and grid.is_file()
    m = json.loads(out.read_text())
    for key in ["date", "split", "counts", "hardware", "seconds", "checkpoints", "captioning", "text_to_image"]:
        assert key in m
    assert {"manifest.json", "vae.safetensors", "evaluator.safetensors"} <= set(m["checkpoints"]["sha256"])
    cap = m["captioning"]
    assert "name" in cap["references"] and cap["images"] == 100
    assert set(cap["methods"]) == {"model", "nn_features", "nn_pixels", "most_frequent"}
    for row in cap["methods"].values():
        assert {"exact_top1", "exact_nbest", "bleu1", "bleu4", "rouge_l", "cider"} <= set(row)
    t2i = m["text_to_image"]
    assert 0 < t2i["prompts"] <= 20 and t2i["images_per_prompt"] == 4
    assert set(t2i["methods"]) == {"vae", "vae_shuffled_text", "nn_retrieval", "real_test"}
    for name, row in t2i["methods"].items():
        assert 0 <= row["top1"] <= row["top5"] <= 1
        assert (row["fid"] is None) == (name == "real_test") and "intra_fid" in row
    clear = m["transparency"]  # 7 of the fixture's Twemoji test drawings have their original beside them
    assert clear["twemoji_images"] == 7 and clear["iou_mean"] >= 0.95
    assert clear["undrawn_images"] > 0 and 0 <= clear["corners_transparent"] <= 1 and Path(clear["sheet"]).is_file()
    assert "nn_pixels" in capsys.readouterr().out
