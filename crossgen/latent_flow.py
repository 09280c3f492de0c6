"""A learned prior over the VAE's latents: flow matching conditioned on the prompt's words and the artist.

The VAE's decoder turns a latent into a drawing; this network turns noise into a latent for a prompt. It is a
residual MLP that predicts the velocity of the straight path from noise x0 ~ N(0, I) to a (normalised) latent
x1 of a training drawing: x_t = (1 - t) x0 + t x1, target x1 - x0 (flow matching / rectified flow). Its condition
keeps the words apart like `CVAEConfig.text="words"`: each word vector goes through one MLP and the condition is
their mean, so "blue" moves an apple's condition as it moves a heart's. An artist embedding joins it. Words and
artist are each dropped for a share of the training examples, so that sampling can use classifier-free guidance
on the words and draw without an artist. Sampling: `steps` Euler steps from the noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .name_keys import name_keys, name_scores


@dataclass
class FlowConfig:
    latent_dim: int = 64
    text_dim: int = 128
    max_words: int = 12
    styles: int = 0  # training artists (0: no artist condition)
    cond_dim: int = 256
    width: int = 384
    depth: int = 4
    drop: float = 0.1  # training: share of examples without their words (and, independently, their artist)
    steps: int = 16  # Euler steps when sampling
    guidance: float = 2.0  # velocity = uncond + guidance * (cond - uncond), words dropped in uncond
    kind: str = "flow"  # "flow": flow matching; "gaussian": the same network regresses the latent's mean (at x=0,
    # t=0) and a sample is that mean + the residual spread (`res_std`, fitted after training) times the noise;
    # "edit": the network edits the latent of a retrieved training drawing (`retrieve`) towards the words
    exemplars: int = 0  # edit: training drawings whose latents can be retrieved
    names: int = 0  # edit: their distinct names
    attributes: int = 0  # edit: colour and skin-tone words, left out when retrieving by object


class Block(nn.Module):
    """Pre-norm residual MLP block with the condition as scale and shift."""

    def __init__(self, width: int, cond: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.film = nn.Linear(cond, 2 * width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.SiLU(), nn.Linear(2 * width, width))

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(c).chunk(2, dim=1)  # (B, W) each
        return h + self.mlp(self.norm(h) * (1 + scale) + shift)


class LatentFlow(nn.Module):
    def __init__(self, config: FlowConfig):
        super().__init__()
        self.config = config
        c, w = config.cond_dim, config.width
        self.word_mlp = nn.Sequential(nn.Linear(config.text_dim, c), nn.SiLU(), nn.Linear(c, c))
        self.null_words = nn.Parameter(torch.zeros(c))
        self.style = nn.Embedding(config.styles + 1, c) if config.styles else None  # the last row: no artist
        self.time = nn.Sequential(nn.Linear(32, c), nn.SiLU(), nn.Linear(c, c))
        self.inp = nn.Linear(config.latent_dim, w)
        self.blocks = nn.ModuleList([Block(w, c) for _ in range(config.depth)])
        self.out = nn.Linear(w, config.latent_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.register_buffer("z_mean", torch.zeros(config.latent_dim))  # latent statistics, set before training
        self.register_buffer("z_std", torch.ones(config.latent_dim))
        if config.kind in ("gaussian", "edit"):  # the spread of the latents around their predictions (normalised)
            self.register_buffer("res_std", torch.ones(config.latent_dim))
        if config.kind == "edit":  # filled by `set_exemplars`
            self.register_buffer("ex_z", torch.zeros(config.exemplars, config.latent_dim))  # normalised latents
            self.register_buffer("ex_name", torch.zeros(config.exemplars, dtype=torch.long))  # (N,) into the names
            self.register_buffer("ex_style", torch.zeros(config.exemplars, dtype=torch.long))  # (N,) artist
            self.register_buffer("name_object", torch.zeros(config.names, config.text_dim))  # (U, D) object vectors
            self.register_buffer("name_full", torch.zeros(config.names, config.text_dim))  # (U, D) whole-name vectors
            self.register_buffer("attribute_words", torch.zeros(config.attributes, config.text_dim))  # (A, D)

    def words(self, text: torch.Tensor) -> torch.Tensor:
        """(B, max_words * D) word vectors, rows of zeros = no word -> (B, C); no word at all: the null words."""
        words = text.view(len(text), self.config.max_words, self.config.text_dim)  # (B, T, D)
        present = (words.abs().sum(-1) > 0).to(words.dtype)[..., None]  # (B, T, 1)
        pooled = (self.word_mlp(words) * present).sum(1) / present.sum(1).clamp(min=1)  # (B, C)
        return torch.where(present.sum(1) > 0, pooled, self.null_words.expand_as(pooled))

    def artist(self, style: torch.Tensor | None, n: int, device) -> torch.Tensor:
        """(B,) artist indices (long; `styles` = none) or positions between artists (float) -> (B, C)."""
        if self.style is None:
            return torch.zeros(n, self.config.cond_dim, device=device)
        if style is None:
            return self.style.weight[-1].expand(n, -1)
        if not style.is_floating_point():
            return self.style(style)
        s = self.config.styles
        low, frac = style.floor().long() % s, (style - style.floor())[:, None]
        return (1 - frac) * self.style(low) + frac * self.style((low + 1) % s)

    def velocity(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x (B, Z) on the path at times t (B,), condition (B, C) -> predicted velocity (B, Z)."""
        freqs = torch.exp(torch.linspace(0, math.log(1000), 16, device=x.device))  # (16,)
        angle = t[:, None] * freqs  # (B, 16)
        c = cond + self.time(torch.cat([angle.sin(), angle.cos()], dim=1))  # (B, C)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, c)
        return self.out(h)

    def forward(self, z: torch.Tensor, text: torch.Tensor, style: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Training loss (a scalar): latents z (B, Z) of drawings, their captions' word vectors (B, T * D),
        their artists (B,)."""
        b, dev = len(z), z.device
        x1 = (z - self.z_mean) / self.z_std
        x0 = torch.randn(x1.shape, generator=generator, device=dev)
        t = torch.rand(b, generator=generator, device=dev)
        xt = (1 - t[:, None]) * x0 + t[:, None] * x1
        words = self.words(text)
        drop = torch.rand(b, generator=generator, device=dev) < self.config.drop
        words = torch.where(drop[:, None], self.null_words.expand_as(words), words)
        if self.style is not None:
            no_artist = torch.rand(b, generator=generator, device=dev) < self.config.drop
            style = torch.where(no_artist, torch.full_like(style, self.config.styles), style)
        cond = words + self.artist(style, b, dev)
        if self.config.kind == "gaussian":
            return F.mse_loss(self.mean(cond), x1)
        return F.mse_loss(self.velocity(xt, t, cond), x1 - x0)

    def keys(self, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Word vectors (B, T * D) -> unit (object, whole-text) keys (B, D) each (`name_keys`)."""
        return name_keys(text.view(len(text), self.config.max_words, self.config.text_dim), self.attribute_words)

    def retrieve(self, text: torch.Tensor, artist: torch.Tensor | None, rank: torch.Tensor | None = None) -> torch.Tensor:
        """Edit: for each prompt, the training drawing by the asked artist (any artist when None) whose name is
        nearest by object, whole names breaking ties, or the rank-th nearest (B,): (B,) indices into the exemplars."""
        score = name_scores(self.keys(text), (self.name_object, self.name_full))  # (B, U)
        per_exemplar = score[:, self.ex_name]  # (B, N)
        if artist is not None:
            per_exemplar = per_exemplar.masked_fill(self.ex_style[None] != artist[:, None], -9.0)
        if rank is None or not bool((rank > 0).any()):
            return per_exemplar.argmax(1)
        top = per_exemplar.topk(int(rank.max()) + 1, dim=1).indices  # (B, R)
        return top.gather(1, rank[:, None])[:, 0]

    @staticmethod
    def artist_and_rank(style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`CVAE.styles_for` positions -> (artist, rank): the artist is the integer part; a request's second round
        of artists (halfway positions) starts from each artist's second-nearest drawing, the third from the third."""
        if not style.is_floating_point():
            return style, torch.zeros_like(style)
        artist, frac = style.floor().long(), style - style.floor()
        rank = torch.where(frac > 0, torch.log2(0.5 / frac.clamp(min=1e-6)).round().long() + 1, torch.zeros_like(artist))
        return artist, rank

    def edit(self, ref: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Normalised latents (B, Z) of retrieved drawings, conditions (B, C) -> the edited latents (B, Z)."""
        return ref + self.velocity(ref, torch.zeros(len(ref), device=ref.device), cond)

    def mean(self, cond: torch.Tensor) -> torch.Tensor:
        """gaussian: the normalised latent's predicted mean for conditions (B, C) -> (B, Z)."""
        zero = torch.zeros(len(cond), self.config.latent_dim, device=cond.device)
        return self.velocity(zero, torch.zeros(len(cond), device=cond.device), cond)

    @torch.inference_mode()
    def sample(self, eps: torch.Tensor, text: torch.Tensor, style: torch.Tensor | None = None,
               guidance: float | None = None) -> torch.Tensor:
        """Latents (B, Z) from noise eps (B, Z) (times the temperature), word vectors (B, T * D) and artists (B,)
        (indices or positions; None: any artist): Euler steps along the guided velocity."""
        w = self.config.guidance if guidance is None else guidance
        b, dev = len(eps), eps.device
        art = self.artist(style, b, dev)
        cond, uncond = self.words(text) + art, self.null_words.expand(b, -1) + art  # (B, C) each
        if self.config.kind == "edit":
            artist, rank = self.artist_and_rank(style) if style is not None else (None, None)
            if artist is not None:
                artist = artist % max(self.config.styles, 1)
            ref = self.ex_z[self.retrieve(text, artist, rank)]  # (B, Z)
            cond = self.words(text) + self.artist(artist, b, dev)
            return (self.edit(ref, cond) + self.res_std * eps) * self.z_std + self.z_mean
        if self.config.kind == "gaussian":
            mc, mu = self.mean(torch.cat([cond, uncond])).chunk(2) if w != 1.0 else (self.mean(cond), None)
            m = mc if mu is None else mu + w * (mc - mu)
            return (m + self.res_std * eps) * self.z_std + self.z_mean
        x, steps = eps, self.config.steps
        both = torch.cat([cond, uncond])  # (2B, C): the guided and the unguided velocity in one call
        for i in range(steps):
            if w == 1.0:
                v = self.velocity(x, torch.full((b,), i / steps, device=dev), cond)
            else:
                vc, vu = self.velocity(x.repeat(2, 1), torch.full((2 * b,), i / steps, device=dev), both).chunk(2)
                v = vu + w * (vc - vu)
            x = x + v / steps
        return x * self.z_std + self.z_mean
