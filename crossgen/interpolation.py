"""Walking between two prompts: slerp of the text vectors and of one latent path, and an animated GIF writer."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .text_encoder import Encoded
from .vae import CVAE

MIN_FRAMES, MAX_FRAMES = 2, 16


@dataclass
class Interpolation:
    images: list[Image.Image]  # k frames, start prompt first
    seed: int  # the seed of the latent path
    start: Encoded
    end: Encoded

    @property
    def steps(self) -> list[float]:
        """The interpolation weight t of each frame (0 = start prompt, 1 = end prompt)."""
        return np.linspace(0.0, 1.0, len(self.images)).tolist()


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between the rows of a and b, (..., D), at weights t (K,) -> (K, ..., D).

    The angle is taken between the directions; lengths are interpolated linearly, so unit vectors stay
    unit and Gaussian samples keep a typical norm. Nearly (anti)parallel vectors fall back to lerp.
    """
    t = t.reshape(-1, *[1] * a.dim()).to(a)
    an, bn = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-8), b / b.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    omega = torch.acos((an * bn).sum(-1, keepdim=True).clamp(-1.0, 1.0))  # (..., 1)
    so = torch.sin(omega)
    lerp = (1 - t) * a + t * b
    if bool((so.abs() < 1e-4).any()):
        return lerp
    length = (1 - t) * a.norm(dim=-1, keepdim=True) + t * b.norm(dim=-1, keepdim=True)
    direction = (torch.sin((1 - t) * omega) * an + torch.sin(t * omega) * bn) / so
    return direction * length


@torch.inference_mode()
def decode_path(vae: CVAE, start: np.ndarray, end: np.ndarray, k: int, seed: int, temperature: float = 1.0) -> torch.Tensor:
    """k images from text vector `start` to `end`, (k, 3, H, W) in [0, 1].

    The latent path goes from z0 to z1, the seed's first two draws (on a CPU generator, as in
    `CVAE.sample`), so the first frame is the first image `Pipeline.generate(start prompt, seed=seed)` gives.
    """
    generator = torch.Generator("cpu").manual_seed(int(seed))
    z0 = torch.randn(1, vae.config.latent_dim, generator=generator)
    z1 = torch.randn(1, vae.config.latent_dim, generator=generator)
    t = torch.linspace(0.0, 1.0, k)
    z = slerp(z0[0], z1[0], t) * temperature  # (k, Z)
    device = next(vae.parameters()).device
    a, b = torch.from_numpy(start).float().to(device), torch.from_numpy(end).float().to(device)
    style = vae.styles_for(z0 * temperature)  # (1,) the first image's artist, kept along the path
    style = None if style is None else style.expand(k).to(device)
    if vae.flow is not None:  # the flow draws each end's latent from the first noise; the walk is between them
        za, zb = vae.flow.sample(z[:1].to(device), a[None], style[:1] if style is not None else None), \
            vae.flow.sample(z[:1].to(device), b[None], style[:1] if style is not None else None)  # (1, Z) each
        path = (1 - t.to(device))[:, None] * za + t.to(device)[:, None] * zb  # (k, Z)
        return torch.sigmoid(vae.decode(path, vae.null.expand(k, -1), style))
    if vae.config.text == "words":  # word sets do not slerp: walk between the two conditions
        ca, cb = vae.condition(a[None]), vae.condition(b[None])  # (1, C) each
        cond = (1 - t.to(device))[:, None] * ca + t.to(device)[:, None] * cb  # (k, C)
        return vae.draw(z.to(device), a.expand(k, -1), style, cond=cond)
    text = slerp(a.cpu(), b.cpu(), t)  # (k, D)
    return vae.draw(z.to(device), text.to(device), style)


def write_gif(images: list[Image.Image], path: str | Path, size: int | None = None, frame_ms: int = 300,
              boomerang: bool = True) -> Path:
    """An endlessly looping animated GIF of the frames (played forwards then backwards when `boomerang`)."""
    if not images:
        raise ValueError("write_gif needs at least one frame")
    frames = [im.convert("RGB") for im in images]
    if size:
        frames = [im.resize((size, size), Image.Resampling.LANCZOS) for im in frames]
    if boomerang and len(frames) > 2:
        frames = frames + frames[-2:0:-1]
    path = Path(path)
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=int(frame_ms), loop=0)
    return path
