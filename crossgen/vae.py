"""Conditional VAE on 64x64 RGB: encoder q(z | image, text), decoder p(image | z, text).

The text vector (a Word2Vec sentence vector) goes through a small MLP; the decoder gets it at every
scale through FiLM, so the prompt steers the whole image and z carries the drawing style. With
`prior="learned"` the prior is p(z | text) too (a Gaussian from an MLP of the text condition), so a
sample starts in the region of latent space where that prompt's images live, not anywhere in N(0, I).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .latent_flow import FlowConfig, LatentFlow
from .name_keys import name_keys, name_scores


@dataclass
class CVAEConfig:
    image_size: int = 64
    in_channels: int = 3
    text_dim: int = 128
    cond_dim: int = 128
    latent_dim: int = 32
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    beta: float = 1.0
    prior: str = "standard"  # "standard": p(z) = N(0, I); "learned": p(z | text) = N(mu(text), sigma(text)^2);
    # "flow": N(0, I) while the VAE trains, then a flow-matching prior p(z | words, artist) for sampling
    prior_recon: float = 0.0  # learned prior: weight of the BCE of the image decoded at the prior mean (text alone)
    exemplars: int = 0  # training images whose latents serve as the prior at sampling (0 = none)
    exemplar_k: int = 4  # a prompt draws near one of its name's exemplars, else one of its k nearest (cosine)
    exemplar_sd: float = 0.5  # spread of z around the chosen exemplar's latent (times temperature)
    # text="words": exemplars are found by object (`name_keys`); their distinct names, and the colour and
    # skin-tone words left out of the object
    exemplar_names: int = 0
    exemplar_attributes: int = 0
    text: str = "mean"  # "mean": one sentence vector (B, D); "words": max_words word vectors (B, max_words * D)
    max_words: int = 12
    styles: int = 0  # training artists with a learned style embedding (0: none)
    style_dim: int = 16
    style_names: list[str] = field(default_factory=list)  # the artists, in embedding order
    cond_drop: float = 0.0  # training: share of examples whose text is the null condition
    guidance: float = 1.0  # sampling: logits = uncond + guidance * (cond - uncond); 1 = the conditional decode
    # prior="flow": a flow-matching prior over z conditioned on the words and the artist (crossgen.latent_flow),
    # for a decoder trained on z alone (cond_drop=1); its settings, as FlowConfig's
    flow_styles: int = 0
    flow_cond: int = 256
    flow_width: int = 384
    flow_depth: int = 4
    flow_drop: float = 0.1
    flow_steps: int = 16
    flow_guidance: float = 2.0
    flow_kind: str = "flow"
    flow_exemplars: int = 0
    flow_names: int = 0
    flow_attributes: int = 0

    def flow_config(self) -> FlowConfig:
        return FlowConfig(latent_dim=self.latent_dim, text_dim=self.text_dim, max_words=self.max_words,
                          styles=self.flow_styles, cond_dim=self.flow_cond, width=self.flow_width, depth=self.flow_depth,
                          drop=self.flow_drop, steps=self.flow_steps, guidance=self.flow_guidance, kind=self.flow_kind,
                          exemplars=self.flow_exemplars, names=self.flow_names, attributes=self.flow_attributes)

    @property
    def text_in(self) -> int:  # width of the text input
        return self.text_dim * (self.max_words if self.text == "words" else 1)

    @property
    def bottom(self) -> int:  # spatial size after the encoder's stride-2 convolutions
        return self.image_size // 2 ** len(self.channels)


class VAEOutput(NamedTuple):
    logits: torch.Tensor  # (B, 3, H, W) decoder logits; sigmoid gives the image
    mu: torch.Tensor  # (B, Z)
    logvar: torch.Tensor  # (B, Z)
    prior_mu: torch.Tensor | None = None  # (B, Z) with a learned prior
    prior_logvar: torch.Tensor | None = None  # (B, Z)
    prior_logits: torch.Tensor | None = None  # (B, 3, H, W) decoded at the prior mean, when prior_recon > 0


class VAELoss(NamedTuple):
    loss: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor
    prior_recon: torch.Tensor | None = None


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
        if config.text not in ("mean", "words"):
            raise ValueError(f"CVAEConfig.text must be 'mean' or 'words', not {config.text!r}")
        self.null = nn.Parameter(torch.zeros(config.cond_dim)) if config.cond_drop > 0 or config.text == "words" else None
        self.style = nn.Embedding(config.styles, config.style_dim) if config.styles else None
        zc = z + config.cond_dim + (config.style_dim if config.styles else 0)
        self.from_latent = nn.Linear(zc, ch[-1] * b * b)
        rev = ch[::-1]
        self.decoder = nn.ModuleList([FiLMUp(c_in, c_out, zc) for c_in, c_out in zip(rev, rev[1:] + [rev[-1]])])
        self.to_rgb = nn.Conv2d(rev[-1], config.in_channels, 3, padding=1)
        if config.prior not in ("standard", "learned", "flow"):
            raise ValueError(f"CVAEConfig.prior must be 'standard', 'learned' or 'flow', not {config.prior!r}")
        self.flow = LatentFlow(config.flow_config()) if config.prior == "flow" else None
        self.prior_net = nn.Sequential(nn.Linear(config.cond_dim, config.cond_dim), nn.SiLU(),
                                       nn.Linear(config.cond_dim, 2 * z)) if config.prior == "learned" else None
        if config.exemplars and config.text == "words":  # filled by set_exemplars, or by load_state_dict
            n, u, d = config.exemplars, config.exemplar_names, config.text_dim
            self.register_buffer("exemplar_z", torch.zeros(n, z))  # (N, Z)
            self.register_buffer("exemplar_name", torch.zeros(n, dtype=torch.long))  # (N,) into the names
            self.register_buffer("name_object", torch.zeros(u, d))  # (U, D) `name_keys` of each distinct name
            self.register_buffer("name_full", torch.zeros(u, d))  # (U, D)
            self.register_buffer("attribute_words", torch.zeros(config.exemplar_attributes, d))  # (A, D)
        elif config.exemplars:
            self.set_exemplars(torch.zeros(config.exemplars, config.text_dim), torch.zeros(config.exemplars, z))

    def set_exemplars(self, text_vec: torch.Tensor, z: torch.Tensor, attribute_words: torch.Tensor | None = None) -> None:
        """Use training images as the prior when sampling (an exemplar prior, as in Exemplar VAE): their
        text inputs (N, text_in) and latents (N, Z): posterior means, or latents fitted to the images
        (`train.vae.refine_latents`); saved with the weights. With text="words" the exemplars are found by object,
        and attribute_words (A, D) are the colour and skin-tone words left out of it."""
        self.config.exemplars = len(text_vec)
        device = next(self.parameters()).device
        self.register_buffer("exemplar_z", z.float().to(device))  # (N, Z)
        if self.config.text == "mean":
            self.register_buffer("exemplar_text", F.normalize(text_vec.float(), dim=1).to(device))  # (N, D)
            return
        names, inverse = torch.unique(text_vec.float().cpu(), dim=0, return_inverse=True)  # (U, text_in), (N,)
        attribute_words = torch.zeros(0, self.config.text_dim) if attribute_words is None else attribute_words.float()
        obj, full = name_keys(names.view(len(names), self.config.max_words, self.config.text_dim), attribute_words)
        self.config.exemplar_names, self.config.exemplar_attributes = len(names), len(attribute_words)
        self.register_buffer("exemplar_name", inverse.to(device))
        self.register_buffer("name_object", obj.to(device))
        self.register_buffer("name_full", full.to(device))
        self.register_buffer("attribute_words", attribute_words.to(device))

    def condition(self, text_vec: torch.Tensor) -> torch.Tensor:
        """(B, text_in) -> (B, C). Words: the mean of each word's MLP output over the words present (rows of
        zeros are padding); no word at all gives the null condition."""
        if self.config.text == "mean":
            return self.text_mlp(text_vec)  # (B, C)
        words = text_vec.view(len(text_vec), self.config.max_words, self.config.text_dim)  # (B, T, D)
        present = (words.abs().sum(-1) > 0).to(words.dtype)[..., None]  # (B, T, 1)
        pooled = (self.text_mlp(words) * present).sum(1) / present.sum(1).clamp(min=1)  # (B, C)
        return torch.where(present.sum(1) > 0, pooled, self.null.expand_as(pooled))

    def styles_for(self, z: torch.Tensor) -> torch.Tensor | None:
        """The artists of one request's n images, (n, Z) noise -> (n,) positions among the S artists: from the
        first image's first coordinate (through the normal CDF) on, one after the other, so n <= S images have n
        different artists; the next S fall halfway between two neighbouring artists (a blend of their styles), the
        next S a quarter of the way, and so on. The same seed gives the same ones. None without style embeddings."""
        s = self.config.styles or self.config.flow_styles
        if not s:
            return None
        first = int(0.5 * (1 + math.erf(float(z[0, 0]) / math.sqrt(2))) * s) % s
        j = torch.arange(len(z), device=z.device)
        cycle = j // s
        offset = torch.where(cycle > 0, 0.5 ** (cycle - 1).clamp(max=20).float() * 0.5, torch.zeros(len(z), device=z.device))
        return ((first + j % s) + offset) % s  # (n,) float

    def style_vector(self, style: torch.Tensor) -> torch.Tensor:
        """(B,) artist indices (long) or positions (float, `styles_for`: between artist i and i + 1) -> (B, S)."""
        if not style.is_floating_point():
            return self.style(style)
        low = style.floor().long() % self.config.styles
        frac = (style - style.floor())[:, None]
        return (1 - frac) * self.style(low) + frac * self.style((low + 1) % self.config.styles)

    def encode(self, image: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(image * 2 - 1).flatten(1)  # (B, ch[-1]*b*b)
        mu, logvar = self.to_stats(torch.cat([h, cond], dim=1)).chunk(2, dim=1)  # (B, Z) each
        return mu, logvar.clamp(-12, 8)

    def prior(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(B, C) -> mean and log-variance of p(z | text), each (B, Z); None for the standard prior."""
        if self.prior_net is None:
            return None
        mu, logvar = self.prior_net(cond).chunk(2, dim=1)
        return mu, logvar.clamp(-12, 8)

    def from_noise(self, eps: torch.Tensor, cond: torch.Tensor, text_vec: torch.Tensor | None = None,
                   slots: torch.Tensor | None = None) -> torch.Tensor:
        """Standard-normal noise (B, Z) -> a draw from the prior: near an exemplar of the text (B, text_in) when
        the model has exemplars, else from p(z | text) (the noise itself for N(0, I)). slots: `request_slots`."""
        if self.config.exemplars and text_vec is not None:
            if self.config.text == "words":
                return self.exemplar_z[self.nearest_by_object(eps, text_vec, slots)] + self.config.exemplar_sd * eps
            return self.exemplar_latent(eps, text_vec, slots)
        prior = self.prior(cond)
        return eps if prior is None else prior[0] + eps * torch.exp(0.5 * prior[1])

    def exemplar_latent(self, eps: torch.Tensor, text_vec: torch.Tensor, slots: torch.Tensor | None = None) -> torch.Tensor:
        """z = latent of an exemplar of the text + exemplar_sd * noise. A prompt that is a training
        name draws among that name's exemplars only (its drawings by the different artists); any other
        prompt among its k nearest. The exemplar is picked by the noise's first coordinate (through the
        normal CDF) from the candidates in index order, so a seed fixes the images on any device. A request's
        n images (slots: `request_slots`) take n consecutive candidates from that pick on, wrapping within the
        candidates: n different drawings while there are at least n, each drawing about equally often past
        that, and each image still any candidate with equal chance. Without slots each image is a request of one."""
        sims = F.normalize(text_vec.float(), dim=1) @ self.exemplar_text.T  # (B, N)
        n, k = len(self.exemplar_text), min(self.config.exemplar_k, len(self.exemplar_text))
        top = sims.topk(min(max(k, 16), n), dim=1)  # (B, W) each, nearest first
        exact = top.values[:, :1] > 1 - 1e-4  # (B, 1) the prompt is a training name
        # neighbouring names (other skin tones, ...) sit within 0.01 in cosine: only exact ties are the same name
        same = top.values >= top.values[:, :1] - 1e-4  # (B, W)
        nearest = torch.arange(top.indices.shape[1], device=sims.device) < k  # (W,)
        # candidates sorted by index (topk orders ties differently on CPU and CUDA); n marks a non-candidate
        cand = torch.where(torch.where(exact, same, nearest), top.indices, n).sort(dim=1).values  # (B, W)
        count = (cand < n).sum(1)  # (B,)
        u, j, _ = self.request_places(eps, slots, count)  # (B,) each
        offset = (u * count).long().clamp(max=count - 1)  # (B,)
        pick = cand.gather(1, ((offset + j) % count)[:, None])[:, 0]  # (B,)
        return self.exemplar_z[pick] + self.config.exemplar_sd * eps

    @staticmethod
    def request_slots(eps: torch.Tensor) -> torch.Tensor:
        """One request's noise (n, Z) -> (n, 3): a uniform number from its first image's first coordinate (through
        the normal CDF), each image's place j in the request, and n; `nearest_by_object` gives the n images n
        different exemplars from them."""
        n = len(eps)
        u = 0.5 * (1 + math.erf(float(eps[0, 0]) / math.sqrt(2)))
        j = torch.arange(n, dtype=torch.float32, device=eps.device)
        return torch.stack([torch.full_like(j, u), j, torch.full_like(j, float(n))], dim=1)

    @staticmethod
    def request_places(eps: torch.Tensor, slots: torch.Tensor | None, like: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each image's (B,) uniform number, place j in its request and request size n, from `request_slots`; without
        slots each image is a request of one, its uniform number its own noise's first coordinate through the normal
        CDF. j and n are long tensors on the device of `like`."""
        if slots is None:
            return 0.5 * (1 + torch.erf(eps[:, 0] / math.sqrt(2))), torch.zeros_like(like), torch.ones_like(like)
        return slots[:, 0].to(eps.device), slots[:, 1].long().to(like.device), slots[:, 2].long().to(like.device)

    def nearest_by_object(self, eps: torch.Tensor, text_vec: torch.Tensor, slots: torch.Tensor | None = None) -> torch.Tensor:
        """text="words": (B,) indices of the exemplars drawn for word vectors (B, T * D). The exemplars are ranked
        by `name_scores` (ties in index order); the best name's m drawings (its artists) come first. A request's
        n images take n consecutive places from an offset chosen by its noise among those m, wrapping within the
        first max(m, n): n different drawings, the next nearest names' when m < n. Without slots each image is a
        request of one."""
        words = text_vec.float().view(len(text_vec), self.config.max_words, self.config.text_dim)  # (B, T, D)
        score = name_scores(name_keys(words, self.attribute_words), (self.name_object, self.name_full))  # (B, U)
        order = score[:, self.exemplar_name].sort(dim=1, descending=True, stable=True).indices  # (B, N)
        width = min(64, order.shape[1])
        order = order[:, :width]
        name = self.exemplar_name[order]  # (B, W)
        m = (name == name[:, :1]).sum(1)  # (B,) drawings of the best name (its skin tones differ by ~1e-4 in score)
        u, j, n = self.request_places(eps, slots, m)  # (B,) each
        offset = (u * m).long().clamp(max=m - 1)  # (B,)
        place = (offset + j) % torch.maximum(m, n).clamp(max=width)  # (B,)
        return order.gather(1, place[:, None])[:, 0]

    def decode(self, z: torch.Tensor, cond: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """(B, Z), (B, C), artist indices (B,) when the model has styles -> (B, 3, H, W) logits."""
        parts = [z, cond] + ([self.style_vector(style)] if self.style is not None else [])
        zc = torch.cat(parts, dim=1)  # (B, Z+C(+S))
        b = self.config.bottom
        h = F.silu(self.from_latent(zc)).view(len(z), -1, b, b)  # (B, ch[-1], b, b)
        for block in self.decoder:
            h = block(h, zc)
        return self.to_rgb(h)

    def forward(self, image: torch.Tensor, text_vec: torch.Tensor, generator: torch.Generator | None = None,
                style: torch.Tensor | None = None, reference: torch.Tensor | None = None,
                reference_text: torch.Tensor | None = None) -> VAEOutput:
        """Training pass: image (B, 3, H, W) in [0, 1], text_vec (B, text_in), style (B,) artist indices.
        reference (B, 3, H, W): when given, z is inferred from it instead of the image, e.g. another drawing by the
        same artist, so that z can carry the artist's style but not what the image shows: the text has to.
        reference_text (B, text_in): the reference's own caption, read by the encoder with it (a swap: z from the
        drawing in one colour or tone under its name, the image in another under its own, so that the decoder takes
        colour and tone from the words)."""
        cond = self.condition(text_vec)
        if self.config.cond_drop >= 1:  # a decoder of z alone: the text goes to the prior only
            cond = self.null.expand_as(cond)
        elif self.training and self.config.cond_drop > 0:  # the null condition for a share of the batch
            drop = torch.rand(len(cond), generator=generator, device=cond.device) < self.config.cond_drop
            cond = torch.where(drop[:, None], self.null.expand_as(cond), cond)
        enc_cond = cond if reference_text is None else self.condition(reference_text)
        mu, logvar = self.encode(image if reference is None else reference, enc_cond)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + eps * torch.exp(0.5 * logvar)
        prior = self.prior(cond)
        if prior is None:
            return VAEOutput(self.decode(z, cond, style), mu, logvar)
        # the text alone, through the prior mean, must draw the image too: it keeps the prompt in charge
        prior_logits = self.decode(prior[0], cond, style) if self.config.prior_recon > 0 else None
        return VAEOutput(self.decode(z, cond, style), mu, logvar, *prior, prior_logits)

    def loss(self, out: VAEOutput, image: torch.Tensor) -> VAELoss:
        """Per-image BCE summed over pixels + beta * KL(q(z|x,t) || p(z|t)) (+ prior_recon * BCE of the
        prior-mean image), averaged over the batch."""
        recon = F.binary_cross_entropy_with_logits(out.logits, image, reduction="sum") / len(image)
        if out.prior_mu is None:  # p(z) = N(0, I)
            kl = -0.5 * torch.sum(1 + out.logvar - out.mu.pow(2) - out.logvar.exp()) / len(image)
        else:  # KL between two diagonal Gaussians
            kl = 0.5 * torch.sum(out.prior_logvar - out.logvar - 1
                                 + (out.logvar.exp() + (out.mu - out.prior_mu).pow(2)) / out.prior_logvar.exp()) / len(image)
        loss = recon + self.config.beta * kl
        if out.prior_logits is None:
            return VAELoss(loss, recon, kl)
        prior_recon = F.binary_cross_entropy_with_logits(out.prior_logits, image, reduction="sum") / len(image)
        return VAELoss(loss + self.config.prior_recon * prior_recon, recon, kl, prior_recon)

    @torch.inference_mode()
    def sample(self, text_vec: torch.Tensor, n: int = 1, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw n images per text vector: (B, D) or (D,) -> (B*n, 3, H, W) in [0, 1], grouped by text.

        The latent noise is drawn on the generator's device (CPU by default) so a seed gives the
        same images on CPU and CUDA.
        """
        device = next(self.parameters()).device
        text_vec = text_vec.reshape(-1, self.config.text_in).to(device, torch.float32)
        text_vec = text_vec.repeat_interleave(n, dim=0)  # (B*n, text_in)
        gen_device = generator.device if generator is not None else "cpu"
        eps = torch.randn(len(text_vec), self.config.latent_dim, generator=generator, device=gen_device)
        eps = (eps * temperature).to(device)
        styles = [self.styles_for(e) for e in eps.split(n)]
        slots = torch.cat([self.request_slots(e) for e in eps.split(n)])
        return self.draw(eps, text_vec, None if styles[0] is None else torch.cat(styles), slots=slots)

    @torch.inference_mode()
    def draw(self, eps: torch.Tensor, text_vec: torch.Tensor, style: torch.Tensor | None = None,
             cond: torch.Tensor | None = None, slots: torch.Tensor | None = None) -> torch.Tensor:
        """Images from standard-normal noise (B, Z) (already times the temperature) and text inputs (B, text_in)
        (or their conditions (B, C) given as `cond`): the noise goes through the prior of the text, then the
        decoder, guided when config.guidance != 1; style: (B,) artist indices (`styles_for`, per request).
        (B, 3, H, W) in [0, 1]."""
        if self.flow is not None:  # the prior draws z for the words and the artist; the decoder reads z alone
            if style is None and self.config.flow_styles:
                style = self.styles_for(eps)
            z = self.flow.sample(eps, text_vec, style)
            return torch.sigmoid(self.decode(z, self.null.expand(len(z), -1), style))
        cond = self.condition(text_vec) if cond is None else cond  # (B, C)
        z = self.from_noise(eps, cond, text_vec, slots)
        if self.config.styles and style is None:
            style = self.styles_for(eps)
        logits = self.decode(z, cond, style)
        if self.config.guidance != 1.0 and self.null is not None:
            uncond = self.decode(z, self.null.expand_as(cond), style)
            logits = uncond + self.config.guidance * (logits - uncond)
        return torch.sigmoid(logits)

    @torch.inference_mode()
    def reconstruct(self, image: torch.Tensor, text_vec: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """Posterior mean reconstruction, (B, 3, H, W) in [0, 1]."""
        cond = self.condition(text_vec)
        mu, _ = self.encode(image, cond)
        return torch.sigmoid(self.decode(mu, cond, style))
