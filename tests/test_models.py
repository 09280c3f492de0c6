import torch

from crossgen import (CVAE, Captioner, CaptionerConfig, CVAEConfig, FeatureConfig, ImageFeatures, Vocab, load_model,
                      save_model)
from crossgen.augment import augment
from crossgen.train.vae import refine_latents

from helpers import tiny_captioner, tiny_vae


def test_vae_forward_loss_backward_shapes():
    vae = tiny_vae().train()
    x, t = torch.rand(3, 3, 64, 64), torch.randn(3, 16)
    out = vae(x, t)
    assert out.logits.shape == (3, 3, 64, 64) and out.mu.shape == (3, 4) and out.logvar.shape == (3, 4)
    loss = vae.loss(out, x)
    assert torch.isfinite(loss.loss) and loss.kl >= 0
    loss.loss.backward()
    assert all(p.grad is not None for p in vae.parameters())


def test_vae_sample_shapes_and_seed():
    vae = tiny_vae()
    t = torch.randn(2, 16)
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
    assert not torch.allclose(vae.sample(torch.ones(16), generator=g()), vae.sample(-torch.ones(16), generator=g()))


def test_vae_learned_prior_kl_and_sampling():
    vae = tiny_vae(prior="learned")
    x, t = torch.rand(3, 3, 64, 64), torch.randn(3, 16)
    out = vae(x, t)
    assert out.prior_mu.shape == (3, 4) and out.prior_logvar.shape == (3, 4)
    # KL(q || p) is zero when q equals the prior and positive otherwise
    same = out._replace(mu=out.prior_mu, logvar=out.prior_logvar)
    assert abs(vae.loss(same, x).kl.item()) < 1e-5 and vae.loss(out, x).kl.item() > 0
    # temperature 0 decodes the prior mean of the text, not z = 0
    cond = vae.condition(t[:1])
    mean = torch.sigmoid(vae.decode(vae.prior(cond)[0], cond))
    assert torch.allclose(vae.sample(t[:1], n=2, temperature=0.0)[0], mean[0], atol=1e-6)
    assert not torch.allclose(mean, torch.sigmoid(vae.decode(torch.zeros(1, 4), cond)))


def test_vae_standard_prior_kl_matches_closed_form():
    vae = tiny_vae(prior="standard")
    x, t = torch.rand(2, 3, 64, 64), torch.randn(2, 16)
    out = vae(x, t)
    assert out.prior_mu is None and vae.prior(vae.condition(t)) is None
    kl = -0.5 * torch.sum(1 + out.logvar - out.mu.pow(2) - out.logvar.exp()) / 2
    assert torch.allclose(vae.loss(out, x).kl, kl)


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
    t = torch.randn(2, 16)
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


def test_vae_prior_recon_term():
    """With prior_recon > 0 the loss adds the BCE of the image decoded at the prior mean (text alone)."""
    vae = tiny_vae(prior="learned")
    vae.config.prior_recon = 0.5
    x, t = torch.rand(2, 3, 64, 64), torch.randn(2, 16)
    out = vae(x, t, generator=torch.Generator().manual_seed(0))
    assert out.prior_logits.shape == x.shape
    cond = vae.condition(t)
    assert torch.allclose(out.prior_logits, vae.decode(vae.prior(cond)[0], cond), atol=1e-6)
    losses = vae.loss(out, x)
    assert torch.allclose(losses.loss, losses.recon + vae.config.beta * losses.kl + 0.5 * losses.prior_recon)
    assert tiny_vae(prior="learned")(x, t).prior_logits is None  # off by default


def test_vae_exemplar_prior_draws_near_the_texts_nearest_exemplars():
    vae = tiny_vae(prior="learned")
    text = torch.nn.functional.normalize(torch.randn(6, 16), dim=1)
    z = torch.arange(6.0)[:, None].repeat(1, 4) * 10  # exemplar i has z = 10 i in every coordinate
    vae.set_exemplars(text, z)
    vae.config.exemplar_k, vae.config.exemplar_sd = 1, 0.0
    eps = torch.randn(6, 4)
    assert torch.equal(vae.from_noise(eps, vae.condition(text), text), z)  # each text its own exemplar
    vae.config.exemplar_sd = 0.5
    assert torch.allclose(vae.from_noise(eps, vae.condition(text), text), z + 0.5 * eps)
    # k = 2: the noise's first coordinate picks one of the two nearest; a seed fixes the images
    vae.config.exemplar_k = 2
    a = vae.sample(text[:2], n=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, vae.sample(text[:2], n=3, generator=torch.Generator().manual_seed(0)))
    # without a text the learned prior is used as before
    assert not torch.allclose(vae.from_noise(eps, vae.condition(text)), vae.from_noise(eps, vae.condition(text), text))


def test_vae_exemplar_prior_keeps_a_training_name_to_its_own_exemplars():
    vae = tiny_vae()
    e = torch.eye(16)
    name, close, other = e[0], torch.nn.functional.normalize(e[0] + 0.05 * e[1], dim=0), e[2]  # close: cosine 0.999
    vae.set_exemplars(torch.stack([name, name, close, other, name]), torch.arange(5.0)[:, None].repeat(1, 4))
    vae.config.exemplar_k, vae.config.exemplar_sd = 1, 0.0
    eps = torch.randn(400, 4, generator=torch.Generator().manual_seed(0))
    picked = lambda t: set(vae.from_noise(eps, vae.condition(t), t)[:, 0].tolist())
    # all three drawings of the name (more than k), never the close neighbour
    assert picked(name.repeat(400, 1)) == {0.0, 1.0, 4.0}
    free = torch.nn.functional.normalize(other + 0.3 * e[3], dim=0)  # no training name: its k nearest
    assert picked(free.repeat(400, 1)) == {3.0}
    vae.config.exemplar_k = 4
    assert len(picked(free.repeat(400, 1))) == 4 and 3.0 in picked(free.repeat(400, 1))


def test_vae_exemplar_request_gets_different_drawings_of_its_name():
    vae = tiny_vae()
    e = torch.eye(16)
    name, close, other = e[0], torch.nn.functional.normalize(e[0] + 0.05 * e[1], dim=0), e[2]
    vae.set_exemplars(torch.stack([name, name, close, other, name]), torch.arange(5.0)[:, None].repeat(1, 4))
    vae.config.exemplar_k, vae.config.exemplar_sd = 1, 0.0
    pick = lambda eps, slots: vae.from_noise(eps, vae.condition(name.repeat(len(eps), 1)),  # noqa: E731
                                             name.repeat(len(eps), 1), slots)[:, 0].tolist()
    for seed in range(8):
        eps = torch.randn(4, 4, generator=torch.Generator().manual_seed(seed))
        three = pick(eps[:3], vae.request_slots(eps[:3]))
        assert sorted(three) == [0.0, 1.0, 4.0]  # the name's three drawings, each once
        assert three[0] == pick(eps[:1], None)[0]  # the first image is the one a request of one gets
        four = pick(eps, vae.request_slots(eps))
        assert sorted(set(four)) == [0.0, 1.0, 4.0] and four[3] == four[0]  # past three, the name's again in turn
    # without slots, images are picked independently (as a request of one each)
    eps = torch.randn(400, 4, generator=torch.Generator().manual_seed(0))
    assert set(pick(eps, None)) == {0.0, 1.0, 4.0}


def test_vae_exemplars_round_trip(tmp_path):
    vae = tiny_vae(prior="learned")
    vae.set_exemplars(torch.randn(5, 16), torch.randn(5, 4))
    save_model(tmp_path, "vae", vae)
    vae2, meta = load_model(tmp_path, "vae", CVAE, CVAEConfig)
    assert meta["config"]["exemplars"] == 5 and torch.allclose(vae2.exemplar_z, vae.exemplar_z)
    t = torch.randn(2, 16)
    assert torch.equal(vae.sample(t, n=2, generator=torch.Generator().manual_seed(3)),
                       vae2.sample(t, n=2, generator=torch.Generator().manual_seed(3)))


def test_refine_latents_fits_the_image_and_leaves_the_decoder_alone():
    vae = tiny_vae()
    x, t = torch.rand(3, 3, 64, 64), torch.randn(3, 16)
    cond = vae.condition(t)
    z0 = torch.randn(3, 4)
    before = {k: v.clone() for k, v in vae.state_dict().items()}

    def bce(z):
        return torch.nn.functional.binary_cross_entropy_with_logits(vae.decode(z, cond), x).item()

    z = refine_latents(vae, x, cond, z0, steps=20, lr=0.1)
    assert z.shape == z0.shape and not z.requires_grad and bce(z) < bce(z0)
    assert torch.equal(refine_latents(vae, x, cond, z0, steps=0, lr=0.1), z0)
    assert all(torch.equal(v, before[k]) for k, v in vae.state_dict().items())
    assert all(p.grad is None for p in vae.parameters())


def words_vae(**kw) -> CVAE:
    """A tiny VAE that reads 3 words apart, with 4 artists and guidance."""
    cfg = dict(text_dim=16, cond_dim=16, latent_dim=4, channels=[4, 8], text="words", max_words=3, styles=4,
               style_dim=3, cond_drop=0.5, guidance=2.0)
    torch.manual_seed(0)
    return CVAE(CVAEConfig(**{**cfg, **kw})).eval()


def test_words_condition_is_the_mean_of_each_words_own_condition():
    vae = words_vae()
    a, b = torch.randn(16), torch.randn(16)
    pad = torch.zeros(16)
    ab = vae.condition(torch.cat([a, b, pad])[None])
    ba = vae.condition(torch.cat([b, a, pad])[None])
    each = (vae.condition(torch.cat([a, pad, pad])[None]) + vae.condition(torch.cat([b, pad, pad])[None])) / 2
    assert torch.allclose(ab, ba, atol=1e-6) and torch.allclose(ab, each, atol=1e-6)  # padding is no word
    assert torch.equal(vae.condition(torch.zeros(1, 48)), vae.null[None])  # no word at all: the null condition


def test_styles_of_one_request_are_all_different_then_cycle():
    vae = words_vae()
    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(3))
    s = vae.styles_for(z)
    assert len(set(s[:4].tolist())) == 4 and s[:4].tolist() == [int(v) for v in s[:4]]  # 4 artists
    assert torch.equal(s[4:], (s[:2] + 0.5) % 4)  # then halfway between neighbours
    assert torch.equal(vae.styles_for(z), s) and words_vae(styles=0).styles_for(z) is None
    half = vae.style_vector(torch.tensor([1.5]))
    assert torch.allclose(half, (vae.style.weight[1] + vae.style.weight[2])[None] / 2)
    assert torch.equal(vae.style_vector(torch.tensor([3])), vae.style.weight[3:4])


def test_words_vae_trains_samples_and_guidance_changes_the_images():
    vae = words_vae().train()
    x, t = torch.rand(4, 3, 64, 64), torch.randn(4, 48)
    out = vae(x, t, generator=torch.Generator().manual_seed(0), style=torch.tensor([0, 1, 2, 3]))
    vae.loss(out, x).loss.backward()
    assert vae.null.grad is not None and vae.style.weight.grad is not None  # the null condition was trained
    vae.eval()
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    a, b = vae.sample(t[:2], n=3, generator=g()), vae.sample(t[:2], n=3, generator=g())
    assert a.shape == (6, 3, 64, 64) and torch.equal(a, b)
    vae.config.guidance = 1.0
    assert not torch.allclose(vae.sample(t[:2], n=3, generator=g()), a)


def test_words_vae_round_trip(tmp_path):
    vae = words_vae()
    save_model(tmp_path, "vae", vae)
    vae2, _ = load_model(tmp_path, "vae", CVAE, CVAEConfig)
    t = torch.randn(2, 48)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    assert vae2.config == vae.config and torch.equal(vae.sample(t, n=2, generator=g()), vae2.sample(t, n=2, generator=g()))


def flow_vae() -> CVAE:
    """A tiny VAE with a decoder of z alone and a flow prior over z for 3 words and 4 artists."""
    torch.manual_seed(0)
    return CVAE(CVAEConfig(text_dim=16, cond_dim=16, latent_dim=16, channels=[4, 8], text="words", max_words=3,
                           cond_drop=1.0, prior="flow", flow_styles=4, flow_cond=16, flow_width=32, flow_depth=2,
                           flow_steps=4, flow_guidance=2.0)).eval()


def test_flow_prior_learns_where_each_words_latents_are():
    """Two prompts whose latents sit at +3 and -3: after training, each prompt's samples land on its own side."""
    from crossgen.latent_flow import FlowConfig, LatentFlow

    torch.manual_seed(0)
    flow = LatentFlow(FlowConfig(latent_dim=2, text_dim=4, max_words=2, cond_dim=16, width=32, depth=2, steps=8,
                                 guidance=1.0, drop=0.0))
    a, b = torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0]), torch.tensor([0, 1.0, 0, 0, 0, 0, 0, 0])
    text = torch.stack([a, b]).repeat(64, 1)  # (128, 8)
    z = torch.tensor([[3.0, 3.0], [-3.0, -3.0]]).repeat(64, 1) + 0.1 * torch.randn(128, 2)
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        loss = flow(z, text, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    flow.eval()
    eps = torch.randn(16, 2, generator=g)
    za, zb = flow.sample(eps, a.expand(16, -1)), flow.sample(eps, b.expand(16, -1))
    assert (za.mean(0) > 1.5).all() and (zb.mean(0) < -1.5).all()


def test_flow_vae_samples_reproducibly_and_guidance_batches_like_two_calls():
    vae = flow_vae()
    t = torch.randn(2, 48)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    a, b = vae.sample(t, n=3, generator=g()), vae.sample(t, n=3, generator=g())
    assert a.shape == (6, 3, 64, 64) and torch.equal(a, b)
    eps, style = torch.randn(3, 16), torch.tensor([0, 1, 2])
    flow = vae.flow
    cond = flow.words(t[:1].expand(3, -1)) + flow.artist(style, 3, "cpu")
    uncond = flow.null_words.expand(3, -1) + flow.artist(style, 3, "cpu")
    x = eps
    for i in range(4):  # the guided Euler steps, written out with two velocity calls
        tt = torch.full((3,), i / 4)
        vc, vu = flow.velocity(x, tt, cond), flow.velocity(x, tt, uncond)
        x = x + (vu + 2.0 * (vc - vu)) / 4
    expected = x * flow.z_std + flow.z_mean
    assert torch.allclose(flow.sample(eps, t[:1].expand(3, -1), style), expected, atol=1e-5)


def test_flow_vae_round_trip(tmp_path):
    vae = flow_vae()
    save_model(tmp_path, "vae", vae)
    vae2, _ = load_model(tmp_path, "vae", CVAE, CVAEConfig)
    t = torch.randn(2, 48)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    assert vae2.flow is not None and torch.equal(vae.sample(t, n=2, generator=g()), vae2.sample(t, n=2, generator=g()))
