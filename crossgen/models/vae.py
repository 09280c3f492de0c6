"""The composing generator: a conditional VAE on 64x64 RGB, encoder q(z | image, words), decoder p(image | z, words).

The prompt is read as its word vectors apart: each goes through a small MLP and the condition is the mean over the
words present, so words compose ("blue" + "apple"); the decoder gets it at every scale through FiLM. Training uses
the standard prior N(0, I). At sampling, z is drawn near the latent of a training drawing of the prompt's object
(an exemplar prior, found by `nearest_by_object`); a VAE without exemplars (an external set) samples N(0, I).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CheckpointError
from .name_keys import name_keys, name_scores

# Settings of the designs deleted with the switch to the composing generator (docs/experiments.md, 2026-12-07):
# field -> (the value the composing generator implies, the design). A checkpoint's config may still hold them,
# at that value; None: any value. The flow prior's settings (named "flow" and a suffix) did nothing unless prior
# was "flow", but for its table of exemplars, which must be empty.
REMOVED = {"text": ("words", "the sentence-vector VAE"), "exemplar_k": (None, "the sentence-vector VAE"),
           "prior": ("standard", "a learned or flow prior"), "prior_recon": (0.0, "the learned prior"),
           "styles": (0, "style embeddings"), "style_dim": (None, "style embeddings"),
           "style_names": ([], "style embeddings"), "cond_drop": (0.0, "classifier-free guidance"),
           "guidance": (1.0, "classifier-free guidance")}


@dataclass
class CVAEConfig:
    image_size: int = 64
    in_channels: int = 3
    text_dim: int = 128  # one word vector
    cond_dim: int = 128
    latent_dim: int = 32
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    beta: float = 1.0
    exemplars: int = 0  # training drawings whose latents serve as the prior at sampling (0: N(0, I))
    exemplar_sd: float = 0.5  # spread of z around the chosen exemplar's latent (times temperature)
    # the exemplars' distinct names, and the colour and skin-tone words left out of a name's object (`name_keys`)
    exemplar_names: int = 0
    exemplar_attributes: int = 0
    max_words: int = 12  # the text input: max_words word vectors, (B, max_words * text_dim); rows of zeros: no word

    @classmethod
    def from_dict(cls, config: dict) -> CVAEConfig:
        """The config of a saved checkpoint; fields of deleted designs are accepted at the value the composing
        generator implies (REMOVED), anything else raises CheckpointError."""
        kept = {f.name for f in fields(cls)}
        for name, value in config.items():
            if name in kept:
                continue
            if name.split("_")[0] == "flow":
                implied, design = (0 if name.endswith("exemplars") else None), "the flow prior"
            else:
                implied, design = REMOVED.get(name, (None, None))
            if design is None:
                raise CheckpointError(f"this checkpoint's VAE config has an unknown field {name!r}")
            if implied is not None and value != implied:
                raise CheckpointError(f"this checkpoint was trained with {design} ({name}={value!r}), which was removed; "
                                      "see docs/experiments.md")
        return cls(**{k: v for k, v in config.items() if k in kept})

    @property
    def text_in(self) -> int:  # width of the text input
        return self.text_dim * self.max_words

    @property
    def bottom(self) -> int:  # spatial size after the encoder's stride-2 convolutions
        return self.image_size // 2 ** len(self.channels)


class VAEOutput(NamedTuple):
    logits: torch.Tensor  # (B, 3, H, W) decoder logits; sigmoid gives the image
    mu: torch.Tensor  # (B, Z)
    logvar: torch.Tensor  # (B, Z)


class VAELoss(NamedTuple):
    loss: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor


class Drawn(NamedTuple):
    """One request's images and where each came from."""
    images: torch.Tensor  # (n, 3, H, W) in [0, 1]
    exemplars: torch.Tensor  # (n,) long, on the CPU: the exemplar row each image was drawn near; -1 without exemplars


# helpers

def norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c), c)


class Down(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)
        self.norm = norm(c_out)

    def forward(self, x):
        return F.silu(self.norm(self.conv(x)))


class FiLMUp(nn.Module):
    """x2 upsample, then a 3x3 conv; scale/shift from the conditioning vector."""

    def __init__(self, c_in: int, c_out: int, cond: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
        self.norm1 = norm(c_out)
        self.conv = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.norm2 = norm(c_out)
        self.film = nn.Linear(cond, 2 * c_out)

    def forward(self, x, c):
        h = F.silu(self.norm1(self.up(x)))
        scale, shift = self.film(c)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        h = self.norm2(self.conv(h)) * (1 + scale) + shift
        return F.silu(h)


# model

class CVAE(nn.Module):
    def __init__(self, config: CVAEConfig):
        super().__init__()
        self.config = config
        ch, b, z = config.channels, config.bottom, config.latent_dim
        self.text_mlp = nn.Sequential(nn.Linear(config.text_dim, config.cond_dim), nn.SiLU(),
                                      nn.Linear(config.cond_dim, config.cond_dim))
        self.encoder = nn.Sequential(*[Down(c_in, c_out) for c_in, c_out in zip([config.in_channels] + ch[:-1], ch)])
        self.to_stats = nn.Linear(ch[-1] * b * b + config.cond_dim, 2 * z)
        self.null = nn.Parameter(torch.zeros(config.cond_dim))  # the condition of a text with no word
        self.from_latent = nn.Linear(z + config.cond_dim, ch[-1] * b * b)
        rev = ch[::-1]
        self.decoder = nn.ModuleList([FiLMUp(c_in, c_out, z + config.cond_dim) for c_in, c_out in zip(rev, rev[1:] + [rev[-1]])])
        self.to_rgb = nn.Conv2d(rev[-1], config.in_channels, 3, padding=1)
        if config.exemplars:  # filled by set_exemplars, or by load_state_dict
            n, u, d = config.exemplars, config.exemplar_names, config.text_dim
            self.register_buffer("exemplar_z", torch.zeros(n, z))  # (N, Z)
            self.register_buffer("exemplar_name", torch.zeros(n, dtype=torch.long))  # (N,) into the names
            self.register_buffer("exemplar_artist", torch.arange(n))  # (N,) the artist of each (unknown: its own)
            self.register_buffer("name_object", torch.zeros(u, d))  # (U, D) `name_keys` of each distinct name
            self.register_buffer("name_full", torch.zeros(u, d))  # (U, D)
            self.register_buffer("attribute_words", torch.zeros(config.exemplar_attributes, d))  # (A, D)

    def set_exemplars(self, text_vec: torch.Tensor, z: torch.Tensor, attribute_words: torch.Tensor | None = None,
                      artist: torch.Tensor | None = None) -> None:
        """Use training drawings as the prior when sampling (an exemplar prior, as in Exemplar VAE): their names'
        text inputs (N, text_in) and latents (N, Z): posterior means, or latents fitted to the images
        (`train.vae.refine_latents`); saved with the weights. They are found by object (`nearest_by_object`), and
        attribute_words (A, D) are the colour and skin-tone words left out of it. artist (N,): who drew each (a
        request takes one drawing per artist and object before any other tone or colour of it)."""
        self.config.exemplars = len(text_vec)
        device = next(self.parameters()).device
        self.register_buffer("exemplar_artist", (torch.arange(len(text_vec)) if artist is None else artist.long()).to(device))
        names, inverse = torch.unique(text_vec.float().cpu(), dim=0, return_inverse=True)  # (U, text_in), (N,)
        attribute_words = torch.zeros(0, self.config.text_dim) if attribute_words is None else attribute_words.float()
        obj, full = name_keys(names.view(len(names), self.config.max_words, self.config.text_dim), attribute_words)
        self.config.exemplar_names, self.config.exemplar_attributes = len(names), len(attribute_words)
        self.register_buffer("exemplar_z", z.float().to(device))  # (N, Z)
        self.register_buffer("exemplar_name", inverse.to(device))
        self.register_buffer("name_object", obj.to(device))
        self.register_buffer("name_full", full.to(device))
        self.register_buffer("attribute_words", attribute_words.to(device))

    def condition(self, text_vec: torch.Tensor) -> torch.Tensor:
        """(B, text_in) -> (B, C): the mean of each word's MLP output over the words present (rows of zeros are
        padding); no word at all gives the null condition."""
        words = text_vec.view(len(text_vec), self.config.max_words, self.config.text_dim)  # (B, T, D)
        present = (words.abs().sum(-1) > 0).to(words.dtype)[..., None]  # (B, T, 1)
        pooled = (self.text_mlp(words) * present).sum(1) / present.sum(1).clamp(min=1)  # (B, C)
        return torch.where(present.sum(1) > 0, pooled, self.null.expand_as(pooled))

    def encode(self, image: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(image * 2 - 1).flatten(1)  # (B, ch[-1]*b*b)
        mu, logvar = self.to_stats(torch.cat([h, cond], dim=1)).chunk(2, dim=1)  # (B, Z) each
        return mu, logvar.clamp(-12, 8)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "exemplar_artist"
        if self.config.exemplars and key not in state_dict:  # saved before the artists were kept: each its own
            state_dict[key] = torch.arange(self.config.exemplars)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @staticmethod
    def request_slots(eps: torch.Tensor) -> torch.Tensor:
        """One request's noise (n, Z) -> (n, 3): a uniform number from its first image's first coordinate (through
        the normal CDF), each image's place j in the request, and n; `nearest_by_object` gives the n images n
        different exemplars from them."""
        n = len(eps)
        u = 0.5 * (1 + math.erf(float(eps[0, 0]) / math.sqrt(2)))
        j = torch.arange(n, dtype=torch.float32, device=eps.device)
        return torch.stack([torch.full_like(j, u), j, torch.full_like(j, float(n))], dim=1)

    def nearest_by_object(self, eps: torch.Tensor, text_vec: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """(B,) indices of the exemplars drawn for noise (B, Z) and word vectors (B, T * D), slots (B, 3) from
        `request_slots`. The exemplars are ranked by `name_scores` (ties in index order); the best name's m drawings
        (its artists) come first. A request's n images take n consecutive places from an offset chosen by its noise
        among those m, wrapping within the first max(m, n): n different drawings, the next nearest names' when m < n.
        Past the best name, a drawing whose artist already drew an earlier one of the same object (its other skin
        tones and colours: the decoder paints them alike) goes after every drawing that is new."""
        order = self.exemplar_scores(text_vec).sort(dim=1, descending=True, stable=True).indices  # (B, N)
        width = min(64, order.shape[1])
        order = order[:, :width]
        order = order.gather(1, self.repeats_last(order))
        name = self.exemplar_name[order]  # (B, W)
        m = (name == name[:, :1]).sum(1)  # (B,) drawings of the best name (its skin tones differ by ~1e-4 in score)
        u, j, n = slots[:, 0].to(eps.device), slots[:, 1].long().to(m.device), slots[:, 2].long().to(m.device)  # (B,) each
        offset = (u * m).long().clamp(max=m - 1)  # (B,)
        place = (offset + j) % torch.maximum(m, n).clamp(max=width)  # (B,)
        return order.gather(1, place[:, None])[:, 0]

    def exemplar_scores(self, text_vec: torch.Tensor) -> torch.Tensor:
        """Word vectors (B, T * D) -> (B, N): each exemplar's `name_scores` against the text (higher = nearer)."""
        words = text_vec.float().view(len(text_vec), self.config.max_words, self.config.text_dim)  # (B, T, D)
        score = name_scores(name_keys(words, self.attribute_words), (self.name_object, self.name_full))  # (B, U)
        return score[:, self.exemplar_name]

    def repeats_last(self, order: torch.Tensor) -> torch.Tensor:
        """(B, W) ranked exemplars -> (B, W) the permutation that moves each one whose artist drew an earlier one
        of the same object (the same object key) behind all the others, each part in its ranked order."""
        w = order.shape[1]
        obj = self.name_object[self.exemplar_name[order]]  # (B, W, D) unit object keys
        artist = self.exemplar_artist[order]  # (B, W)
        same = (obj @ obj.transpose(1, 2) > 0.999) & (artist[:, :, None] == artist[:, None, :])  # (B, W, W)
        repeat = (same & torch.ones(w, w, dtype=torch.bool, device=order.device).tril(-1)).any(2)  # (B, W)
        rank = torch.arange(w, device=order.device)
        return (repeat.long() * w + rank).argsort(dim=1)

    def prior_latent(self, eps: torch.Tensor, text_vec: torch.Tensor, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standard-normal noise (B, Z) (times the temperature) -> z (B, Z): near an exemplar of the text's object
        (B, text_in) when the model has exemplars, else the noise itself (N(0, I)); and the exemplar of each, (B,)
        (-1 without exemplars). slots: `request_slots`."""
        if not self.config.exemplars:
            return eps, torch.full((len(eps),), -1, dtype=torch.long, device=eps.device)
        rows = self.nearest_by_object(eps, text_vec, slots)  # (B,)
        return self.exemplar_z[rows] + self.config.exemplar_sd * eps, rows

    def decode(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(B, Z), (B, C) -> (B, 3, H, W) logits."""
        zc = torch.cat([z, cond], dim=1)  # (B, Z+C)
        b = self.config.bottom
        h = F.silu(self.from_latent(zc)).view(len(z), -1, b, b)  # (B, ch[-1], b, b)
        for block in self.decoder:
            h = block(h, zc)
        return self.to_rgb(h)

    def forward(self, image: torch.Tensor, text_vec: torch.Tensor, generator: torch.Generator | None = None,
                reference: torch.Tensor | None = None, reference_text: torch.Tensor | None = None) -> VAEOutput:
        """Training pass: image (B, 3, H, W) in [0, 1], text_vec (B, text_in). reference (B, 3, H, W) and its own
        caption reference_text (B, text_in), when given: z is inferred from them instead of the image (a swap: z
        from the drawing in one colour or tone under its name, the image in another under its own, so that the
        decoder takes colour and tone from the words)."""
        cond = self.condition(text_vec)  # (B, C)
        enc_cond = cond if reference_text is None else self.condition(reference_text)
        mu, logvar = self.encode(image if reference is None else reference, enc_cond)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + eps * torch.exp(0.5 * logvar)
        return VAEOutput(self.decode(z, cond), mu, logvar)

    def loss(self, out: VAEOutput, image: torch.Tensor) -> VAELoss:
        """Per-image BCE summed over pixels + beta * KL(q(z|x,t) || N(0, I)), averaged over the batch."""
        recon = F.binary_cross_entropy_with_logits(out.logits, image, reduction="sum") / len(image)
        kl = -0.5 * torch.sum(1 + out.logvar - out.mu.pow(2) - out.logvar.exp()) / len(image)
        return VAELoss(recon + self.config.beta * kl, recon, kl)

    def noise(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """A request's standard-normal noise (n, Z) times its temperature, drawn on the generator's device (CPU by
        default) so that a seed gives the same images on CPU and CUDA."""
        device = generator.device if generator is not None else "cpu"
        return torch.randn(n, self.config.latent_dim, generator=generator, device=device) * temperature

    @torch.inference_mode()
    def sample_requests(self, text_vec: torch.Tensor, noise: list[torch.Tensor],
                        cond: torch.Tensor | None = None) -> list[Drawn]:
        """The one way images are drawn: request i's text input text_vec[i] (R, text_in) and noise (n_i, Z)
        (`noise`) -> its n_i images (n_i, 3, H, W) in [0, 1] and the exemplar each was drawn near (`Drawn`; the
        exemplar names the training drawing the image came from). A request's images take different exemplars
        (`request_slots`); requests never mix, so a request gives the same images alone or batched with others.
        cond (R, C): conditions to decode with instead of the texts' own (an interpolation walks between two)."""
        device = next(self.parameters()).device
        counts = [len(e) for e in noise]
        repeat = torch.tensor(counts, device=device)
        text = text_vec.to(device, torch.float32).repeat_interleave(repeat, dim=0)  # (sum n, text_in)
        slots = torch.cat([self.request_slots(e) for e in noise]).to(device)  # (sum n, 3)
        eps = torch.cat(noise).to(device)  # (sum n, Z)
        cond = self.condition(text) if cond is None else cond.to(device).repeat_interleave(repeat, dim=0)  # (sum n, C)
        z, rows = self.prior_latent(eps, text, slots)  # (sum n, Z), (sum n,)
        images = torch.sigmoid(self.decode(z, cond))  # (sum n, 3, H, W)
        return [Drawn(x, r) for x, r in zip(images.split(counts), rows.cpu().split(counts))]

    @torch.inference_mode()
    def nearest_of_artist(self, text_vec: torch.Tensor, artist: int) -> int:
        """The exemplar row nearest a text input (text_in,) by `name_scores` among one artist's drawings (-1 when
        the artist has none)."""
        score = self.exemplar_scores(text_vec[None])[0].masked_fill(self.exemplar_artist != artist, -torch.inf)  # (N,)
        return int(score.argmax()) if torch.isfinite(score.max()) else -1

    @torch.inference_mode()
    def redraw(self, image: torch.Tensor, text_vec: torch.Tensor, new_text_vec: torch.Tensor) -> torch.Tensor:
        """Drawings (B, 3, H, W) in [0, 1] under their captions' text inputs text_vec (B, text_in) -> the same
        drawings under new_text_vec (B, text_in): the encoder's mean read under the old caption, decoded under the
        new one (as the swaps of training), in [0, 1]."""
        mu, _ = self.encode(image, self.condition(text_vec))  # (B, Z)
        return torch.sigmoid(self.decode(mu, self.condition(new_text_vec)))

    def sample(self, text_vec: torch.Tensor, n: int = 1, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """n images per text input: (B, text_in) or (text_in,) -> (B*n, 3, H, W) in [0, 1], grouped by text. Each
        text is a request (`sample_requests`), its noise drawn from the generator after the previous text's."""
        text_vec = text_vec.reshape(-1, self.config.text_in)
        drawn = self.sample_requests(text_vec, [self.noise(n, temperature, generator) for _ in text_vec])
        return torch.cat([d.images for d in drawn])

