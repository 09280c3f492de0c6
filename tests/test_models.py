import json

import pytest
import torch

from crossgen import (CVAE, Captioner, CaptionerConfig, CVAEConfig, FeatureConfig, ImageFeatures, Vocab, load_model,
                      save_model)
from crossgen.errors import CheckpointError
from crossgen.imaging.augment import augment
from crossgen.train.vae import refine_latents

from helpers import tiny_captioner, tiny_vae


def test_vae_forward_loss_backward_shapes():
    vae = tiny_vae().train()
    x, t = torch.rand(3, 3, 64, 64), torch.randn(3, 48)
    t[2] = 0  # a text with no word: the null condition
    out = vae(x, t)
    assert out.logits.shape == (3, 3, 64, 64) and out.mu.shape == (3, 16) and out.logvar.shape == (3, 16)
    loss = vae.loss(out, x)
    assert torch.isfinite(loss.loss) and loss.kl >= 0
    loss.loss.backward()
    assert all(p.grad is not None for p in vae.parameters())


def test_vae_sample_shapes_and_seed():
    vae = tiny_vae()
    t = torch.randn(2, 48)
    a = vae.sample(t, n=3, generator=torch.Generator().manual_seed(1))
    b = vae.sample(t, n=3, generator=torch.Generator().manual_seed(1))
    c = vae.sample(t, n=3, generator=torch.Generator().manual_seed(2))
    assert a.shape == (6, 3, 64, 64) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    # temperature 0 draws the mean: every sample of one text is identical
    z0 = vae.sample(t[:1], n=3, temperature=0.0)
    assert torch.allclose(z0[0], z0[1])


def test_vae_text_changes_image():
    vae = tiny_vae()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert not torch.allclose(vae.sample(torch.ones(48), generator=g()), vae.sample(-torch.ones(48), generator=g()))


def test_vae_kl_is_the_closed_form_against_the_standard_normal():
    vae = tiny_vae()
    x, t = torch.rand(2, 3, 64, 64), torch.randn(2, 48)
    out = vae(x, t)
    kl = -0.5 * torch.sum(1 + out.logvar - out.mu.pow(2) - out.logvar.exp()) / 2
    losses = vae.loss(out, x)
    assert torch.allclose(losses.kl, kl) and torch.allclose(losses.loss, losses.recon + vae.config.beta * kl)


def test_features_shapes_and_heads():
    m = ImageFeatures(FeatureConfig(num_classes=7, num_words=5)).eval()
    out = m(torch.rand(2, 3, 64, 64))
    assert out.features.shape == (2, 512) and out.class_logits.shape == (2, 7) and out.word_logits.shape == (2, 5)
    assert m.embed(torch.rand(1, 3, 64, 64)).shape == (1, 512)
    p = m.classify(torch.rand(2, 3, 64, 64))
    assert torch.allclose(p.sum(1), torch.ones(2))


def test_captioner_forward_shape():
    c = tiny_captioner(30)
    logits = c(torch.randn(4, 512), torch.randint(0, 30, (4, 7)))
    assert logits.shape == (4, 6, 30)


def test_beam_one_equals_greedy_and_nbest_sorted():
    c = tiny_captioner(30)
    f = torch.randn(5, 512)
    greedy = c.greedy(f)
    beam1 = c.generate(f, beam=1)
    for g, b in zip(greedy, beam1):
        assert g.tokens == b[0].tokens and abs(g.logprob - b[0].logprob) < 1e-4
    for hyps in c.generate(f, beam=4, n_best=4):
        assert 1 <= len(hyps) <= 4
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert all(Vocab.bos not in h.tokens and Vocab.pad not in h.tokens for h in hyps)
        assert all(len(h.tokens) <= c.config.max_len for h in hyps)


def test_beam_is_at_least_as_good_as_greedy():
    c = tiny_captioner(30)
    f = torch.randn(8, 512)
    for g, b in zip(c.greedy(f), c.generate(f, beam=5)):
        assert b[0].logprob >= g.logprob - 1e-4


def test_length_penalty_changes_ranking_score():
    c = tiny_captioner(30)
    f = torch.randn(1, 512)
    h0 = c.generate(f, beam=3, length_penalty=0.0)[0][0]
    h1 = c.generate(f, beam=3, length_penalty=1.0)[0][0]
    assert h0.score == h0.logprob and h1.score != h1.logprob


def test_vocab_round_trip():
    v = Vocab.build(["red apple", "Green Apple", "dog"])
    ids = v.encode("red apple zebra")
    assert ids[0] == Vocab.bos and ids[-1] == Vocab.eos and Vocab.unk in ids
    assert v.decode(v.encode("green apple")) == "green apple"
    assert Vocab(v.to_json()).itos == v.itos


def test_save_load_round_trip_identical(tmp_path):
    vae = tiny_vae()
    save_model(tmp_path, "vae", vae)
    vae2, _ = load_model(tmp_path, "vae", CVAE, CVAEConfig)
    t = torch.randn(2, 48)
    assert torch.equal(vae.sample(t, generator=torch.Generator().manual_seed(0)),
                       vae2.sample(t, generator=torch.Generator().manual_seed(0)))
    cap = tiny_captioner(20)
    save_model(tmp_path, "cap", cap, vocab=["a"])
    cap2, meta = load_model(tmp_path, "cap", Captioner, CaptionerConfig)
    f = torch.randn(3, 512)
    assert meta["vocab"] == ["a"]
    assert [h[0].tokens for h in cap.generate(f, beam=3)] == [h[0].tokens for h in cap2.generate(f, beam=3)]
    feat = ImageFeatures(FeatureConfig(num_classes=3)).eval()
    save_model(tmp_path, "feat", feat)
    feat2, _ = load_model(tmp_path, "feat", ImageFeatures, FeatureConfig)
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(feat.embed(x), feat2.embed(x))


def test_augment_keeps_shape_range_and_varies():
    x = torch.rand(4, 3, 64, 64)
    a = augment(x, torch.Generator().manual_seed(0))
    b = augment(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1 and not torch.equal(a, b)
    white = torch.ones(2, 3, 64, 64)
    assert augment(white, torch.Generator().manual_seed(0)).mean() > 0.95  # borders fill with white


def test_refine_latents_fits_the_image_and_leaves_the_decoder_alone():
    vae = tiny_vae()
    x, t = torch.rand(3, 3, 64, 64), torch.randn(3, 48)
    cond = vae.condition(t)
    z0 = torch.randn(3, 16)
    before = {k: v.clone() for k, v in vae.state_dict().items()}

    def bce(z):
        return torch.nn.functional.binary_cross_entropy_with_logits(vae.decode(z, cond), x).item()

    z = refine_latents(vae, x, cond, z0, steps=20, lr=0.1)
    assert z.shape == z0.shape and not z.requires_grad and bce(z) < bce(z0)
    assert torch.equal(refine_latents(vae, x, cond, z0, steps=0, lr=0.1), z0)
    assert all(torch.equal(v, before[k]) for k, v in vae.state_dict().items())
    assert all(p.grad is None for p in vae.parameters())


def test_words_condition_is_the_mean_of_each_words_own_condition():
    vae = tiny_vae()
    a, b = torch.randn(16), torch.randn(16)
    pad = torch.zeros(16)
    ab = vae.condition(torch.cat([a, b, pad])[None])
    ba = vae.condition(torch.cat([b, a, pad])[None])
    each = (vae.condition(torch.cat([a, pad, pad])[None]) + vae.condition(torch.cat([b, pad, pad])[None])) / 2
    assert torch.allclose(ab, ba, atol=1e-6) and torch.allclose(ab, each, atol=1e-6)  # padding is no word
    assert torch.equal(vae.condition(torch.zeros(1, 48)), vae.null[None])  # no word at all: the null condition


def test_a_checkpoint_of_the_composing_generator_with_the_old_config_fields_loads(tmp_path):
    """Checkpoints saved before the deleted designs went hold their fields: accepted at the composing generator's
    values (the weights load as they are), refused with the design's name otherwise."""
    vae = tiny_vae()
    save_model(tmp_path, "vae", vae)
    meta = json.loads((tmp_path / "vae.json").read_text())
    flow = dict(styles=0, cond=256, width=384, depth=4, drop=0.1, steps=16, guidance=2.0, kind="flow", exemplars=0,
                names=0, attributes=0)  # the flow prior's settings, each a field "flow" + "_" + name
    old = {"prior": "standard", "prior_recon": 0.0, "exemplar_k": 4, "text": "words", "styles": 0, "style_dim": 16,
           "style_names": [], "cond_drop": 0.0, "guidance": 1.0, **{"_".join(["flow", k]): v for k, v in flow.items()}}
    assert len(CVAEConfig.__dataclass_fields__) + len(old) == 32  # the config as the other designs left it

    def load(**changes):
        (tmp_path / "vae.json").write_text(json.dumps({**meta, "config": {**meta["config"], **old, **changes}}))
        return load_model(tmp_path, "vae", CVAE, CVAEConfig)[0]

    t = torch.randn(2, 48)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    assert load().config == vae.config and torch.equal(load().sample(t, n=2, generator=g()), vae.sample(t, n=2, generator=g()))
    for change, design in [({"text": "mean"}, "sentence-vector"), ({"prior": "learned"}, "learned or flow prior"),
                           ({"prior_recon": 0.5}, "learned prior"), ({"styles": 4}, "style embeddings"),
                           ({"guidance": 2.0}, "guidance"), ({"_".join(["flow", "exemplars"]): 9}, "flow prior")]:
        with pytest.raises(CheckpointError, match=f"{design}.*removed; see docs/experiments.md"):
            load(**change)
    with pytest.raises(CheckpointError, match="unknown field 'colour'"):
        load(colour=1)


def test_words_vae_round_trip(tmp_path):
    vae = tiny_vae()
    save_model(tmp_path, "vae", vae)
    vae2, _ = load_model(tmp_path, "vae", CVAE, CVAEConfig)
    t = torch.randn(2, 48)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    assert vae2.config == vae.config and torch.equal(vae.sample(t, n=2, generator=g()), vae2.sample(t, n=2, generator=g()))
