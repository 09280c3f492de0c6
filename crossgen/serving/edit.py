"""Editing an emoji with words: what to draw, and which pixels the words may change.

The composing VAE was trained on swaps (the encoder reads a drawing under one caption, the decoder draws it under
another), so an edit is: read the image's name (the captioner), apply the words to it (`edited_caption`), encode
the image under its name and decode it under the new caption. Decoded alone the drawing comes back in the new colour
but blurred and painted all over, its hue often off; so a colour edit takes the decoded drawing's shading in the
asked colour's hue (`colour.recolour`) only where the words speak, the drawing's main colour (`colour_mask`), and
keeps every other pixel of the image. The decoder paints skin tones
poorly (44.8 % of validation tone edits right, docs/experiments.md), so a tone edit moves the skin pixels to the
tone's palette colour of the skin-tone reader with their shading (`retone`: 95.9 %). A whole new caption takes the
decoded drawing as it is.
"""
from __future__ import annotations

import re

import numpy as np
import torch

from ..imaging.colour import COLOURS, foreground, pixel_names, rgb_to_hsv
from ..postprocess.skin_tone import PHRASE, SkinTone
from ..preprocess import normalize_text

KINDS = ("colour", "tone", "caption")
TONE_WORDS = re.compile(r"^(medium light|medium dark|light|medium|dark)( skin tone)?$")


def edited_caption(name: str, words: str) -> tuple[str, str]:
    """The caption to draw when `words` edit a drawing named `name`, and the kind of edit (one of KINDS): a colour
    word replaces the name's colour words (or comes first when it has none), a skin tone ("dark", "medium-dark skin
    tone") replaces its tone phrases (or is added), anything else is a whole new caption."""
    name, words = normalize_text(name), normalize_text(words)
    if words in COLOURS:
        kept = [w for w in name.split() if w not in COLOURS]
        return " ".join([words] + kept), "colour"
    if m := TONE_WORDS.match(words):
        tone = f"{m.group(1)} skin tone"
        if PHRASE.search(name):
            return re.sub(r"\s+", " ", PHRASE.sub(tone, name)).strip(), "tone"
        return f"{name} {tone}", "tone"
    return words, "caption"


def colour_mask(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) in [0, 1] -> (H, W) bool: the drawing's pixels of its most common chromatic colour name (the
    red of a strawberry, not its green leaves or yellow seeds); its light pixels when it has no chromatic one."""
    fg = foreground(image)
    names = np.full(fg.shape, "", dtype=object)
    names[fg.cpu().numpy()] = pixel_names(rgb_to_hsv(image)[:, fg])
    chromatic = fg.cpu().numpy() & np.isin(names, [c for c in COLOURS if c not in ("black", "white")])
    if not chromatic.any():
        return fg & (image.min(0).values > 0.5)  # a grey or white drawing: paint its light parts
    values, counts = np.unique(names[chromatic], return_counts=True)
    return torch.from_numpy(names == values[counts.argmax()]).to(image.device)


def retone(image: torch.Tensor, reader: SkinTone, tone: int) -> torch.Tensor:
    """(3, H, W) in [0, 1] -> the skin pixels (within the reader's radius of a palette colour) shifted from their
    palette colour to the same artist's colour of `tone` (palette rows come five tones per artist), or the mean
    palette colour of that tone; with no skin pixel (the default yellow), its main colour (`colour_mask`) moved by
    the difference between that mean and its median colour. The drawing's shading is kept."""
    refs, tones = torch.tensor(reader.palette), torch.tensor(reader.tones)  # (R, 3), (R,)
    p = image.permute(1, 2, 0).reshape(-1, 3) * 255  # (H*W, 3)
    dist, near = torch.cdist(p, refs).min(1)
    skin = (dist < reader.radius) & ~(p > 240).all(1)
    target = refs[tones == tone].mean(0).expand(len(refs), 3).clone()  # (R, 3)
    for r in range(len(refs)):
        same = r - int(tones[r]) + tone
        if 0 <= same < len(refs) and int(tones[same]) == tone:
            target[r] = refs[same]
    if skin.any():
        p = torch.where(skin[:, None], p + (target - refs)[near], p)
    else:  # an untoned person in the default yellow: its main colour moved to the tone's mean skin colour
        main = colour_mask(image).reshape(-1)
        if main.any():
            p = torch.where(main[:, None], p + (refs[tones == tone].mean(0) - p[main].median(0).values), p)
    return (p / 255).clamp(0, 1).reshape(image.shape[1], image.shape[2], 3).permute(2, 0, 1)


def paint(image: torch.Tensor, drawn: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The decoded drawing (3, H, W) where mask (H, W) is set, the image (3, H, W) elsewhere."""
    return torch.where(mask[None], drawn, image)
