"""The composing VAE's exemplar prior found by object, its one sampling entry point, and the swap inputs of its
training."""
import torch
import torch.nn.functional as F

from crossgen import CVAE, CVAEConfig, load_model, save_model
from crossgen.models.name_keys import name_keys, name_scores


def unit(i: int, d: int = 16) -> torch.Tensor:
    return torch.eye(d)[i]


BLUE, GREEN, RED, APPLE, HEART, DOG = (unit(i) for i in range(6))
PAD = torch.zeros(16)


def words(*vs: torch.Tensor) -> torch.Tensor:
    """Up to 3 word vectors -> the (3 * 16,) text input, zero-padded."""
    return torch.cat([*vs, *[PAD] * (3 - len(vs))])


def object_vae() -> CVAE:
    """Tiny words VAE with exemplars: 3 green apples, 2 red apples, 1 red heart, 4 dogs (z = its index)."""
    torch.manual_seed(0)
    vae = CVAE(CVAEConfig(text_dim=16, cond_dim=16, latent_dim=4, channels=[4, 8], max_words=3)).eval()
    names = [words(GREEN, APPLE)] * 3 + [words(RED, APPLE)] * 2 + [words(RED, HEART)] + [words(DOG)] * 4
    z = torch.arange(10.0)[:, None].repeat(1, 4)
    vae.set_exemplars(torch.stack(names), z, torch.stack([BLUE, GREEN, RED]))
    vae.config.exemplar_sd = 0.0
    return vae


def alone(eps: torch.Tensor) -> torch.Tensor:
    """`request_slots` of each image as a request of one, (B, 3)."""
    return torch.cat([CVAE.request_slots(e[None]) for e in eps])


def test_name_keys_leave_colour_words_out_of_the_object():
    attrs = torch.stack([BLUE, RED])
    obj, full = name_keys(torch.stack([words(BLUE, APPLE), words(APPLE), words(RED)]).view(3, 3, 16), attrs)
    assert torch.allclose(obj[0], APPLE) and torch.allclose(obj[1], APPLE)
    assert torch.allclose(obj[2], RED)  # nothing but attributes: all of them
    assert torch.allclose(full[0], F.normalize(BLUE + APPLE, dim=0))
    table = name_keys(torch.stack([words(GREEN, APPLE), words(RED, HEART)]).view(2, 3, 16), attrs)
    assert name_scores((obj[:1], full[:1]), table).argmax().item() == 0  # "blue apple": an apple, not a heart


def test_an_undrawn_pair_finds_the_object_and_a_name_its_own_drawings():
    vae = object_vae()
    eps = torch.zeros(1, 4)
    pick = lambda *w: vae.nearest_by_object(eps, words(*w)[None], alone(eps)).item()  # noqa: E731
    assert pick(BLUE, APPLE) in range(0, 5)  # an apple of some colour
    assert pick(RED, HEART) == 5 and pick(RED, APPLE) in (3, 4) and pick(DOG) in range(6, 10)
    # the noise's first coordinate chooses among a name's drawings
    many = torch.randn(200, 4, generator=torch.Generator().manual_seed(0))
    got = set(vae.nearest_by_object(many, words(DOG)[None].repeat(200, 1), alone(many)).tolist())
    assert got == {6, 7, 8, 9}


def test_a_request_gets_different_exemplars_then_the_next_names():
    vae = object_vae()
    for seed in range(5):
        eps = torch.randn(4, 4, generator=torch.Generator().manual_seed(seed))
        idx = vae.nearest_by_object(eps, words(DOG)[None].repeat(4, 1), vae.request_slots(eps))
        assert sorted(idx.tolist()) == [6, 7, 8, 9]  # the four dogs, each once
        eps = torch.randn(7, 4, generator=torch.Generator().manual_seed(seed))
        idx = vae.nearest_by_object(eps, words(GREEN, APPLE)[None].repeat(7, 1), vae.request_slots(eps))
        assert len(set(idx.tolist())) == 7 and {0, 1, 2} <= set(idx.tolist())  # its 3, then the nearest others
        # the first image is the one a request of one gets
        assert idx[0] == vae.nearest_by_object(eps[:1], words(GREEN, APPLE)[None], vae.request_slots(eps[:1]))[0]
    x = vae.sample(words(DOG), n=4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x, vae.sample(words(DOG), n=4, generator=torch.Generator().manual_seed(1)))


def test_an_artists_other_colour_of_an_object_comes_after_every_new_drawing():
    """Past the name's own drawings, a request takes the object's drawings by artists it has not used yet, then the
    drawings of the next objects, and only then another colour of a drawing it has (the decoder paints it alike)."""
    torch.manual_seed(0)
    vae = CVAE(CVAEConfig(text_dim=16, cond_dim=16, latent_dim=4, channels=[4, 8], max_words=3)).eval()
    # artist 0: green and red apple; artist 1: red apple; artist 2: a heart (the next object)
    names = [words(GREEN, APPLE), words(RED, APPLE), words(RED, APPLE), words(RED, HEART)]
    vae.set_exemplars(torch.stack(names), torch.zeros(4, 4), torch.stack([BLUE, GREEN, RED]), torch.tensor([0, 0, 1, 2]))
    eps = torch.zeros(4, 4)
    idx = vae.nearest_by_object(eps, words(GREEN, APPLE)[None].repeat(4, 1), vae.request_slots(eps)).tolist()
    assert idx == [0, 2, 3, 1]  # its own apple, artist 1's apple, the heart, then artist 0's red apple
    # without the artists (a checkpoint saved before they were kept) every exemplar counts as its own artist
    state = {k: v for k, v in vae.state_dict().items() if k != "exemplar_artist"}
    old = CVAE(vae.config).eval()
    old.load_state_dict(state)
    assert old.exemplar_artist.tolist() == [0, 1, 2, 3]
    assert old.nearest_by_object(eps, words(GREEN, APPLE)[None].repeat(4, 1), old.request_slots(eps)).tolist() == [0, 1, 2, 3]


def test_z_is_drawn_around_the_exemplar_and_without_exemplars_is_the_noise():
    vae = object_vae()
    vae.config.exemplar_sd = 0.5
    eps = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    text, slots = words(DOG)[None].repeat(4, 1), vae.request_slots(eps)
    z, rows = vae.prior_latent(eps, text, slots)
    assert torch.equal(rows, vae.nearest_by_object(eps, text, slots))  # each image's exemplar, for its credit
    assert torch.allclose(z, vae.exemplar_z[rows] + 0.5 * eps)
    vae.config.exemplars = 0  # an external set's VAE: N(0, I), no exemplar
    z, rows = vae.prior_latent(eps, text, slots)
    assert torch.equal(z, eps) and rows.tolist() == [-1] * 4


def composing_vae() -> CVAE:
    """object_vae with 16 latent dimensions, random exemplar latents and a spread around them."""
    torch.manual_seed(0)
    vae = CVAE(CVAEConfig(text_dim=16, cond_dim=16, latent_dim=16, channels=[4, 8], max_words=3)).eval()
    names = [words(GREEN, APPLE)] * 3 + [words(RED, APPLE)] * 2 + [words(RED, HEART)] + [words(DOG)] * 4
    vae.set_exemplars(torch.stack(names), 2 * torch.randn(10, 16, generator=torch.Generator().manual_seed(0)),
                      torch.stack([BLUE, GREEN, RED]))
    vae.config.exemplar_sd = 0.3
    return vae


# (words, n, seed, temperature) and, drawn by the code before the one sampling entry point (fedb4d1, CVAE.sample
# and BatchedModels._sample_batch apart), each image's exemplar and the sum of its pixels
REQUESTS = [((DOG,), 4, 1, 1.0), ((BLUE, APPLE), 3, 2, 0.7), ((GREEN, APPLE), 1, 3, 1.0), ((RED, HEART), 2, 4, 0.5),
            ((GREEN, APPLE), 5, 0, 1.0)]
PICKED = [[6, 7, 8, 9], [0, 1, 2], [1], [5, 3], [0, 1, 2, 3, 4]]
SUMS = [[5517.137, 6053.7, 6282.145, 5711.609], [5952.84, 6039.554, 6121.027], [6116.155], [6220.493, 4270.659],
        [5974.655, 6046.041, 6113.069, 4029.53, 5052.153]]


def test_the_same_seeds_give_the_same_images_alone_batched_and_as_before():
    """Every path draws through CVAE.sample_requests: a request alone (CVAE.sample), batched with others (the
    micro-batcher's run) and the interpolation's first frame give the same images, and the images the code before
    it gave for the same seeds."""
    from crossgen.serving.batching import BatchedModels, SampleRequest
    from crossgen.serving.interpolation import decode_path

    vae = composing_vae()
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    alone = [vae.sample(words(*w), n=n, temperature=t, generator=g(s)) for w, n, s, t in REQUESTS]
    for (w, n, s, t), x, picked, sums in zip(REQUESTS, alone, PICKED, SUMS):
        eps = torch.randn(n, 16, generator=g(s)) * t
        assert vae.nearest_by_object(eps, words(*w)[None].repeat(n, 1), vae.request_slots(eps)).tolist() == picked
        assert x.shape == (n, 3, 64, 64) and torch.allclose(x.double().sum((1, 2, 3)), torch.tensor(sums).double(), atol=0.05)
        assert torch.equal(x, vae.sample(words(*w), n=n, temperature=t, generator=g(s)))
    batcher = BatchedModels.__new__(BatchedModels)  # its sampling half only
    batcher.vae = vae
    batched = batcher._sample_batch([SampleRequest(words(*w).numpy(), n, t, g(s)) for w, n, s, t in REQUESTS])
    assert all(torch.allclose(a, b.images, atol=1e-5) for a, b in zip(alone, batched))
    assert [b.exemplars.tolist() for b in batched] == PICKED  # each image's exemplar comes with it
    two = vae.sample(torch.stack([words(DOG), words(RED, APPLE)]), n=2, generator=g(7))  # one generator, in turn
    assert torch.allclose(two.double().sum((1, 2, 3)), torch.tensor([5485.495, 6022.239, 4230.932, 5174.439]).double(),
                          atol=0.05)
    path = decode_path(vae, words(RED, APPLE).numpy(), words(DOG).numpy(), 4, 5, 0.8)
    assert torch.allclose(path.double().sum((1, 2, 3)), torch.tensor([5290.564, 5334.696, 5352.785, 5343.447]).double(),
                          atol=0.05)
    first = vae.sample(words(RED, APPLE), n=2, temperature=0.8, generator=g(5))[0]
    assert torch.allclose(path[0], first, atol=1e-5)


def test_object_exemplars_round_trip(tmp_path):
    vae = object_vae()
    save_model(tmp_path, "vae", vae, half=True, keep_float32=("name_object", "name_full", "attribute_words"))
    vae2, meta = load_model(tmp_path, "vae", CVAE, CVAEConfig)
    assert meta["config"]["exemplar_names"] == 4 and meta["config"]["exemplar_attributes"] == 3
    t = words(BLUE, APPLE)
    assert torch.allclose(vae.sample(t, n=3, generator=torch.Generator().manual_seed(2)),
                          vae2.sample(t, n=3, generator=torch.Generator().manual_seed(2)), atol=2e-3)


def test_the_encoder_reads_the_reference_under_its_own_caption():
    torch.manual_seed(0)
    vae = CVAE(CVAEConfig(text_dim=16, cond_dim=16, latent_dim=4, channels=[4, 8], max_words=3)).eval()
    x, ref = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    t, t_ref = torch.stack([words(BLUE, APPLE)] * 2), torch.stack([words(GREEN, APPLE)] * 2)
    out = vae(x, t, reference=ref, reference_text=t_ref)
    mu, _ = vae.encode(ref, vae.condition(t_ref))
    assert torch.allclose(out.mu, mu)
    assert not torch.allclose(vae(x, t, reference=ref).mu, mu)  # without it: the target's caption


def test_swaps_read_a_sibling_or_the_drawing_before_it_was_repainted(tmp_path):
    from crossgen.train.vae import EmojiVAEData, VAETrainConfig
    from helpers import FIXTURE, tiny_encoder

    tiny_encoder().save(tmp_path / "word2vec.bin")
    data = EmojiVAEData(FIXTURE, tmp_path, torch.device("cpu"), 512, cfg=VAETrainConfig(colour_aug=1.0, swap=1.0))
    assert data.siblings  # the fixture has toned drawings with siblings
    idx = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))  # the order batches() draws
    x, text, extra = next(data.batches(0, torch.Generator().manual_seed(0)))
    ref = extra["reference"]
    assert ref.shape == x.shape and extra["reference_text"].shape == text.shape
    images = data.train.batch(torch.arange(len(data.train)), "cpu")
    repainted = swapped = 0
    for i, record in enumerate(idx.tolist()):
        if record in data.siblings:  # swap=1: always one of its siblings
            assert any(torch.equal(ref[i], images[j]) for j in data.siblings[record])
            swapped += 1
        else:  # itself, as it was before any repainting
            assert torch.equal(ref[i], images[record])
            repainted += not torch.equal(x[i], images[record])
    assert swapped > 0 and repainted > 0
