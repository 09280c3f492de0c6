"""Colour names on images: read an emoji's dominant colour, and paint a drawing in a named colour.

`read_colour` names the colour of a drawing the way GenEval names an object's colour, with the ten names
of `COLOURS`: the foreground is every pixel not connected to the white background through near-white
pixels (so a white heart inside its outline counts), each foreground pixel is named by its hue, saturation
and value, and the name is the most common chromatic one when at least a quarter of the foreground is
chromatic, else the most common of black, white and grey.

`recolour` paints a drawing in one of those colours, keeping its shading: every chromatic foreground pixel
gets the colour's hue (and, for brown, pink, black and white, its saturation and value range). It serves the
retrieve-then-recolour baseline of the evaluation and the colour augmentation of the generator's training.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
ACHROMATIC = ("black", "white", "grey")
BACKGROUND = 0.94  # every channel above this: near-white, background when connected to the border
MIN_CHROMATIC = 0.25  # share of the foreground that must be chromatic for a chromatic name
# hue ranges in degrees [lo, hi) of the chromatic names (brown and pink are decided by value/saturation)
HUES = (("red", 345, 360), ("red", 0, 15), ("orange", 15, 45), ("yellow", 45, 70), ("green", 70, 165),
        ("blue", 165, 255), ("purple", 255, 290), ("pink", 290, 345))
# hue (degrees), saturation scale and value range of each colour when painting
PAINT = {"red": (0, 1.0, (0.35, 1.0)), "orange": (30, 1.0, (0.45, 1.0)), "yellow": (55, 1.0, (0.55, 1.0)),
         "green": (120, 1.0, (0.3, 0.95)), "blue": (215, 1.0, (0.35, 1.0)), "purple": (275, 1.0, (0.3, 0.95)),
         "pink": (330, 0.55, (0.75, 1.0)), "brown": (28, 0.8, (0.2, 0.55)), "black": (0, 0.0, (0.05, 0.25)),
         "white": (0, 0.0, (0.85, 1.0))}


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> HSV with hue in degrees [0, 360), saturation and value in [0, 1]."""
    r, g, b = x.unbind(-3)
    v, _ = x.max(-3)
    c = v - x.min(-3).values
    safe = torch.where(c > 0, c, torch.ones_like(c))
    h = torch.where(v == r, ((g - b) / safe) % 6, torch.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4))
    h = torch.where(c > 0, h * 60, torch.zeros_like(h))
    s = torch.where(v > 0, c / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
    return torch.stack([h, s, v], -3)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of `rgb_to_hsv`."""
    h, s, v = hsv.unbind(-3)
    k = lambda n: (n + h / 60) % 6  # noqa: E731
    f = lambda n: v - v * s * k(n).clamp(min=0).minimum(4 - k(n)).clamp(0, 1)  # noqa: E731
    return torch.stack([f(5), f(3), f(1)], -3)


def foreground(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) in [0, 1] -> (H, W) bool: pixels not reached from the border through near-white pixels."""
    white = (image > BACKGROUND).all(0).cpu().numpy()
    labels, _ = ndimage.label(white)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    background = np.isin(labels, border[border > 0])
    return torch.from_numpy(~background).to(image.device)


def pixel_names(hsv: torch.Tensor) -> np.ndarray:
    """(3, P) HSV -> (P,) names: one of COLOURS or "grey"."""
    h, s, v = (t.cpu().numpy() for t in hsv)
    names = np.full(h.shape, "grey", dtype=object)
    for name, lo, hi in HUES:
        names[(h >= lo) & (h < hi)] = name
    warm = (h < 45) | (h >= 345)
    names[warm & (v < 0.6) & (s > 0.25)] = "brown"  # dark orange and red read as brown
    names[((h < 15) | (h >= 290)) & (s < 0.55) & (v > 0.75)] = "pink"  # light red reads as pink
    achromatic = (s < 0.2) | (v < 0.3)
    names[achromatic] = np.where(v[achromatic] < 0.35, "black", np.where(v[achromatic] > 0.8, "white", "grey"))
    return names


def read_colour(image: torch.Tensor) -> str:
    """(3, H, W) in [0, 1] -> the drawing's colour name: one of COLOURS, or "grey"; "white" for a blank image."""
    mask = foreground(image)
    if not mask.any():
        return "white"
    names = pixel_names(rgb_to_hsv(image)[:, mask])
    chromatic = ~np.isin(names, ACHROMATIC)
    pool = names[chromatic] if chromatic.mean() >= MIN_CHROMATIC else names[~chromatic]
    values, counts = np.unique(pool, return_counts=True)
    return str(values[counts.argmax()])


def read_colours(images: torch.Tensor) -> list[str]:
    """(B, 3, H, W) in [0, 1] (or uint8) -> B colour names."""
    images = images.float() / 255 if images.dtype == torch.uint8 else images
    return [read_colour(x) for x in images]


def recolour(image: torch.Tensor, colour: str) -> torch.Tensor:
    """(3, H, W) in [0, 1] -> the drawing painted in `colour` (one of COLOURS), shading kept: its chromatic
    foreground pixels (all of the foreground when it has none) get the colour's hue and saturation scale, and
    their value is mapped into the colour's value range; outlines and background are left as they are."""
    if colour not in PAINT:
        raise ValueError(f"unknown colour {colour!r}: one of {', '.join(COLOURS)}")
    hue, sat, (lo, hi) = PAINT[colour]
    hsv = rgb_to_hsv(image)
    mask = foreground(image)
    chromatic = mask & (hsv[1] >= 0.2) & (hsv[2] >= 0.2)
    if chromatic.float().sum() < 0.1 * mask.float().sum():
        chromatic = mask & (hsv[2] >= 0.2)  # a grey or white drawing: paint its light parts
    h, s, v = hsv.clone().unbind(0)
    h[chromatic] = hue
    s[chromatic] = (s[chromatic].clamp(min=0.6) * sat) if sat else 0.0
    v[chromatic] = lo + (hi - lo) * v[chromatic]
    return hsv_to_rgb(torch.stack([h, s, v])).clamp(0, 1)
