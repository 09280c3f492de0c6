"""The concept-head fallback: when it replaces the best caption, how the threshold is chosen, how it is loaded."""
from __future__ import annotations

import math

import torch

from crossgen.models.image_features import FeatureConfig, ImageFeatures
from crossgen.postprocess.concept_fallback import ConceptFallback, load_fallback
from crossgen.serving.pipeline import Pipeline
from crossgen.train.captioner import THRESHOLDS, choose_threshold

NAMES = ["red apple", "dog", "cat face"]


def test_unsure_best_caption_is_replaced_by_the_heads_concept():
    fb = ConceptFallback(NAMES, threshold=0.4)
    probs = torch.tensor([0.1, 0.7, 0.2])
    sure = [("cat face", math.log(0.6)), ("dog", math.log(0.2))]
    assert fb.apply(sure, probs) == sure  # 0.6 >= 0.4: the captioner's list as it is
    unsure = [("cat face", math.log(0.3)), ("dog", math.log(0.25)), ("fox", math.log(0.1))]
    out = fb.apply(unsure, probs)
    assert [c for c, _ in out] == ["dog", "cat face", "red apple"]  # the head's names, most probable first
    assert all(math.isclose(lp, math.log(p), rel_tol=1e-6) for (_, lp), p in zip(out, [0.7, 0.2, 0.1]))
    assert [c for c, _ in fb.apply(unsure[:1], probs)] == ["dog"]  # as many as the captioner gave
    assert fb.apply([], probs) == []


def test_threshold_is_chosen_by_validation_accuracy():
    head = torch.eye(3)  # the head always names the image right
    truth = ["red apple", "dog", "cat face"]
    # the captioner is right when sure (0.9) and wrong when unsure (0.25)
    nbest = [[("red apple", math.log(0.9))], [("cat", math.log(0.25))], [("dog", math.log(0.25))]]
    t, scores = choose_threshold(nbest, head, NAMES, truth)
    assert scores["0.0"] == 1 / 3 and scores["0.3"] == 1.0 and scores["0.9"] == 1.0
    assert t == 0.3  # the smallest threshold with the best accuracy
    assert set(scores) == {str(x) for x in THRESHOLDS}
    t, _ = choose_threshold([[("red apple", math.log(0.2))]], torch.tensor([[0.0, 1.0, 0.0]]), NAMES, ["red apple"])
    assert t == 0.0  # the head is wrong: never replace


def test_threshold_is_chosen_on_captions_with_their_tones_read():
    """With a skin-tone reader the threshold is chosen on the captions as the Pipeline gives them: a caption
    whose only error is its tone is right once the reader has read the tone, so it need not be replaced."""
    from crossgen.postprocess.skin_tone import SkinTone
    names = ["thumbs up light skin tone", "thumbs up dark skin tone", "dog"]
    reader = SkinTone([[250.0, 220.0, 190.0], [110.0, 80.0, 70.0]], [0, 4], radius=16.0)
    image = torch.ones(3, 8, 8)
    image[:, 2:6, 2:6] = torch.tensor([110.0, 80.0, 70.0]).view(3, 1, 1) / 255  # dark skin
    nbest = [[("thumbs up light skin tone", math.log(0.3))]]  # the right concept, the wrong tone, unsure
    head = torch.tensor([[0.1, 0.1, 0.8]])  # the head is sure of the wrong concept
    truth = ["thumbs up dark skin tone"]
    _, plain = choose_threshold(nbest, head, names, truth)
    t, read = choose_threshold(nbest, head, names, truth, reader, [image])
    assert set(plain.values()) == {0.0}
    assert read["0.0"] == 1.0 and read["0.3"] == 1.0 and read["0.4"] == 0.0 and read["0.9"] == 0.0
    assert t == 0.0


def test_fallback_loads_only_for_a_matching_head(tmp_path):
    assert load_fallback(tmp_path, 3) is None  # no file: captions are the LSTM's alone
    ConceptFallback(NAMES, 0.4).save(tmp_path, val_exact={})
    assert load_fallback(tmp_path, 3) == ConceptFallback(NAMES, 0.4)
    assert load_fallback(tmp_path, 5) is None and load_fallback(tmp_path, 0) is None
    ConceptFallback(NAMES, 0.0).save(tmp_path)
    assert load_fallback(tmp_path, 3) is None  # threshold 0: never replace


def test_pipeline_names_unsure_images_with_the_head(tiny_pipeline):
    torch.manual_seed(0)
    features = ImageFeatures(FeatureConfig(num_classes=5)).eval()  # random weights, with a concept head
    p = Pipeline(tiny_pipeline.text_encoder, tiny_pipeline.vae, features, tiny_pipeline.captioner,
                 tiny_pipeline.vocab, tiny_pipeline.device)
    image = torch.rand(3, 64, 64).mul(255).byte().permute(1, 2, 0).numpy()
    alone = p.image_to_text(image, beam=3, n_best=2)
    k = 5
    p.postprocess.fallback = ConceptFallback([f"concept {i}" for i in range(k)], threshold=1.01)  # always unsure
    top = p.features.classify(p.image_tensor(image))[0].topk(2).indices.tolist()
    out = p.image_to_text(image, beam=3, n_best=2)
    assert [c for c, _ in out] == [f"concept {k}" for k in top] and out[0][1] >= out[1][1]
    p.postprocess.fallback.threshold = 0.0  # never unsure
    assert p.image_to_text(image, beam=3, n_best=2) == alone
