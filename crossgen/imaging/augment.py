"""Batch augmentation on tensors for training the image model: geometry, mild colour, line weight, blur, noise.

Hue is left alone: colour names ("red apple", "medium-dark skin tone") depend on it. No flips:
"left arrow" is not "right arrow".
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(n: int, lo: float, hi: float, g: torch.Generator | None, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


def augment(x: torch.Tensor, generator: torch.Generator | None = None, strength: float = 1.0) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> augmented copy, each image with its own random parameters."""
    B, dev, s = len(x), x.device, strength
    g = generator
    # geometry: scale, rotation, translation; the border is white like an emoji background
    scale = _uniform(B, 1 - 0.25 * s, 1 + 0.12 * s, g, dev)
    angle = _uniform(B, -12 * s, 12 * s, g, dev) * math.pi / 180
    tx, ty = _uniform(B, -0.12 * s, 0.12 * s, g, dev), _uniform(B, -0.12 * s, 0.12 * s, g, dev)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = 1 - F.grid_sample(1 - x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # colour: brightness, contrast, saturation
    bright = _uniform(B, 1 - 0.15 * s, 1 + 0.15 * s, g, dev).view(B, 1, 1, 1)
    contrast = _uniform(B, 1 - 0.2 * s, 1 + 0.2 * s, g, dev).view(B, 1, 1, 1)
    sat = _uniform(B, 1 - 0.3 * s, 1 + 0.2 * s, g, dev).view(B, 1, 1, 1)
    gray = x.mean(1, keepdim=True)  # (B, 1, H, W)
    x = gray + (x - gray) * sat
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (mean + (x - mean) * contrast) * bright
    # line weight: artists differ most in their outlines (OpenMoji: heavy black, Twemoji: none), so a
    # quarter of the batch gets thicker dark lines (3x3 min filter) and a quarter thinner ones (max filter)
    weight = torch.rand(B, generator=g, device=dev)
    thick, thin = weight < 0.25 * s, weight > 1 - 0.25 * s
    if thick.any() or thin.any():
        x = x.clone()
        x[thick] = -F.max_pool2d(-x[thick], 3, stride=1, padding=1)
        x[thin] = F.max_pool2d(x[thin], 3, stride=1, padding=1)
    # blur half of the batch a little (different artists draw with different line weights)
    blur = torch.rand(B, generator=g, device=dev) < 0.5 * s
    if blur.any():
        k = torch.tensor([1.0, 2.0, 1.0], device=dev)
        k = (k[:, None] * k[None, :] / 16).expand(3, 1, 3, 3)
        xb = F.conv2d(F.pad(x[blur], (1, 1, 1, 1), mode="replicate"), k, groups=3)
        x = x.clone()
        x[blur] = xb
    x = x + 0.02 * s * torch.randn(x.shape, generator=g, device=dev)
    return x.clamp_(0, 1)
