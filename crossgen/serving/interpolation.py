"""Walking between two prompts: a slerp of the latent noise and a walk between the two conditions, and an animated
GIF writer."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..models.text_encoder import Encoded
from ..models.vae import CVAE

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
    """k images from text input `start` to `end`, (k, 3, H, W) in [0, 1].

    The latent noise goes from z0 to z1, the seed's first two draws (on a CPU generator, as in `CVAE.sample`), and
    the condition from the start prompt's to the end's (word sets do not slerp). Each frame is a request of one on
    the start prompt's exemplars, so the first frame is the first image `Pipeline.generate(start prompt, seed=seed)`
    gives.
    """
    generator = torch.Generator("cpu").manual_seed(int(seed))
    z0, z1 = vae.noise(1, generator=generator), vae.noise(1, generator=generator)  # (1, Z) each
    t = torch.linspace(0.0, 1.0, k)
    z = slerp(z0[0], z1[0], t) * temperature  # (k, Z)
    device = next(vae.parameters()).device
    a, b = torch.from_numpy(start).float().to(device), torch.from_numpy(end).float().to(device)
    ca, cb = vae.condition(a[None]), vae.condition(b[None])  # (1, C) each
    cond = (1 - t.to(device))[:, None] * ca + t.to(device)[:, None] * cb  # (k, C)
    return torch.cat([d.images for d in vae.sample_requests(a.expand(k, -1), list(z.split(1)), cond)])


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
