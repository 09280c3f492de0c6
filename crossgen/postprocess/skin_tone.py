"""Skin tones read from the image's colours, put into the caption in place of the captioner's guess.

Emoji name a skin tone ("waving hand: medium-dark skin tone") that every artist paints with one flat skin
colour, and the artists' palettes agree closely. The captioner gets the concept right far more often than the
tone (it sees the colour only through features trained to be robust to brightness), so a caption's tone words
are rewritten from the image: the most common colour among pixels close to a training artist's skin colour is
matched to the nearest of those colours. Two-person names ("handshake: light skin tone, dark skin tone") read
the left and right halves, in the order Unicode names them; equal tones are named once, as Unicode does. So a
caption of a two-person concept (one the training names give two tones) that names one tone gets the second
when the halves differ.

The palette (one skin colour per artist and tone) and the match radius are fitted on the training artists,
the radius by leave-one-artist-out accuracy, and saved as `skin_tone.json` next to the models.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..checkpoint import load_json, save_json

FILE = "skin_tone.json"
TONES = ("light", "medium light", "medium", "medium dark", "dark")  # as normalised names spell them
MODIFIERS = ("1f3fb", "1f3fc", "1f3fd", "1f3fe", "1f3ff")  # the code points of the five tones
PHRASE = re.compile(r"\b(medium light|medium dark|light|medium|dark) skin tone\b")
RADII = (8.0, 12.0, 16.0, 20.0, 30.0)
QUANT = 8  # colour bin width (0-255 scale) for the most common colour
WHITE = 240  # pixels with every channel above this are background


@dataclass
class SkinTone:
    palette: list[list[float]]  # (R, 3) skin colours, 0-255 RGB
    tones: list[int]  # (R,) index into TONES of each palette colour
    radius: float  # a pixel counts as skin within this RGB distance of a palette colour
    pairs: list[str] = field(default_factory=list)  # two-person concepts, tone words taken out ("handshake")

    def predict(self, image: torch.Tensor) -> int | None:
        """(3, H, W) in [0, 1] -> index into TONES, or None when no pixel is close to a skin colour."""
        p = pixels(image)  # (P, 3) 0-255
        if not len(p) or not self.palette:
            return None
        refs = torch.tensor(self.palette)
        dist, _ = torch.cdist(p, refs).min(1)  # (P,)
        skin = p[dist < self.radius]
        if not len(skin):
            return None
        codes, counts = quantise(skin).unique(return_counts=True)
        colour = decode(codes[counts.argmax()])  # (3,) centre of the most common skin bin
        return self.tones[int(torch.cdist(colour[None], refs)[0].argmin())]

    def retone(self, caption: str, image: torch.Tensor) -> str:
        """The caption with its skin-tone words read from the image: one tone phrase from the whole image, two
        from the left and right halves (named once when equal; a two-person concept named with one tone gets
        the second when the halves differ). Unchanged without tone words, with more than two, or when the image
        shows no skin colour."""
        found = list(PHRASE.finditer(caption))
        if len(found) == 2 or (len(found) == 1 and without_tones(caption) in self.pairs):  # two people
            w = image.shape[-1]
            left, right = self.predict(image[..., : w // 2]), self.predict(image[..., w // 2:])
            # named once when equal; a caption naming one tone for two people reads the whole image then
            if left is not None and right is not None and (len(found) == 2 or left != right):
                return _replace(caption, found, [left] if left == right else [left, right])
            if len(found) == 2:
                return caption
        if len(found) == 1:
            tone = self.predict(image)
            return caption if tone is None else _replace(caption, found, [tone])
        return caption

    def apply(self, nbest: list[tuple[str, float]], image: torch.Tensor) -> list[tuple[str, float]]:
        """retone every caption of an n-best list. Captions that become equal are kept once, with the first one's
        score; the places freed are filled back with the captioner's own captions, as alternatives, carrying the
        scores of the captions dropped. The scores stay the captioner's, only moved (they add up as they did, so
        the list stays one distribution), and the list is sorted by them again (the best caption stays first)."""
        out: dict[str, float] = {}
        dropped: list[float] = []
        for caption, score in nbest:
            toned = self.retone(caption, image)
            if toned in out:
                dropped.append(score)
            else:
                out[toned] = score
        for caption, _ in nbest:
            if not dropped:
                break
            if caption not in out:
                out[caption] = dropped.pop(0)
        return sorted(out.items(), key=lambda item: -item[1])

    def save(self, directory: str | Path, **extra) -> None:
        save_json(Path(directory) / FILE, {**asdict(self), **extra})


def without_tones(caption: str) -> str:
    """The caption with its tone phrases taken out ("handshake light skin tone dark skin tone" -> "handshake")."""
    return " ".join(PHRASE.sub(" ", caption).split())


def two_tone_concepts(names: list[str]) -> list[str]:
    """The concepts (tone words taken out) that some of these normalised names give two tone phrases."""
    return sorted({without_tones(n) for n in names if len(PHRASE.findall(n)) == 2})


def _replace(caption: str, found: list[re.Match], tones: list[int]) -> str:
    """The tone phrases `found` rewritten with `tones`, in order: a phrase left without a tone is dropped, and
    tones beyond the phrases follow the last one."""
    parts, end = [], 0
    for i, m in enumerate(found):
        parts.append(caption[end:m.start()])
        parts.append(" ".join(f"{TONES[t]} skin tone" for t in (tones[i:] if i == len(found) - 1 else tones[i:i + 1])))
        end = m.end()
    parts.append(caption[end:])
    return re.sub(r"\s+", " ", "".join(parts)).strip()


def pixels(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) in [0, 1] -> (P, 3) 0-255 colours of the non-background pixels."""
    p = (image.detach().float().cpu().flatten(1).T * 255).round()  # (H*W, 3)
    return p[~(p > WHITE).all(1)]


def quantise(p: torch.Tensor) -> torch.Tensor:
    q = (p.long() // QUANT).clamp(0, 255 // QUANT)
    n = 256 // QUANT
    return (q[:, 0] * n + q[:, 1]) * n + q[:, 2]


def decode(code: torch.Tensor) -> torch.Tensor:
    n = 256 // QUANT
    return torch.stack([code // (n * n), code // n % n, code % n]).float() * QUANT + QUANT / 2


def load_skin_tone(directory: str | Path) -> SkinTone | None:
    """The skin-tone reader saved in a checkpoint folder; None when absent (captions keep the captioner's tones)."""
    path = Path(directory) / FILE
    if not path.is_file():
        return None
    meta = load_json(path)
    return SkinTone([list(map(float, c)) for c in meta["palette"]], [int(t) for t in meta["tones"]], float(meta["radius"]),
                    [str(n) for n in meta.get("pairs", [])])


# --------------------------------------------------------------------------- fitting on the training artists

def tone_regions(records: list[dict], images: torch.Tensor) -> list[tuple[torch.Tensor, int, str]]:
    """(image region (3, H, W) in [0, 1], tone index, artist) for every toned record: the whole image for one tone,
    the left and right halves for two (as the code points name them)."""
    out = []
    for r, x in zip(records, images):
        tones = [MODIFIERS.index(p) for p in r["id"].split("-") if p in MODIFIERS]
        x = x.float() / 255 if x.dtype == torch.uint8 else x
        if tones and len(set(tones)) == 1:
            out.append((x, tones[0], r.get("style", "")))
        elif len(tones) == 2:
            w = x.shape[-1]
            out += [(x[..., : w // 2], tones[0], r.get("style", "")), (x[..., w // 2:], tones[1], r.get("style", ""))]
    return out


def _colour_shares(regions) -> dict[str, torch.Tensor]:
    """Per artist, (5, bins) sums over its regions of each tone of the share of pixels in each colour bin."""
    bins = (256 // QUANT) ** 3
    sums: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros(len(TONES), bins))
    for x, tone, style in regions:
        codes = quantise(pixels(x))
        if len(codes):
            sums[style][tone] += torch.bincount(codes, minlength=bins).float() / len(codes)
    return dict(sums)


def _palette(share: torch.Tensor, count: torch.Tensor) -> list[tuple[list[float], int]]:
    """One artist's (colour, tone) pairs: per tone, the colour that covers the most more of that tone's images
    than of any other tone's. share (5, bins) summed over the artist's regions, count (5,) regions per tone."""
    f = share / count[:, None].clamp(min=1)  # (5, bins) mean share
    out = []
    for t in range(len(TONES)):
        if count[t] == 0:
            continue
        score = f[t] - torch.cat([f[:t], f[t + 1:]]).max(0).values
        best = int(score.argmax())
        if score[best] > 0.01:
            out.append((decode(torch.tensor(best)).tolist(), t))
    return out


def _reader(palettes: list[list[tuple[list[float], int]]], radius: float) -> SkinTone:
    pairs = [pair for artist in palettes for pair in artist]
    return SkinTone([c for c, _ in pairs], [t for _, t in pairs], radius)


def fit_skin_tone(regions) -> tuple[SkinTone, dict[str, float]]:
    """The palette from every artist's regions, and the radius among RADII with the best mean leave-one-artist-out
    accuracy (the smallest on a tie; RADII's middle with fewer than two artists). Returns it and those scores."""
    shares = _colour_shares(regions)
    counts = defaultdict(lambda: torch.zeros(len(TONES)))
    for _, tone, style in regions:
        counts[style][tone] += 1
    styles = sorted(shares)
    palettes = {s: _palette(shares[s], counts[s]) for s in styles}  # each artist's colours depend on it alone
    scores: dict[str, float] = {}
    if len(styles) >= 2:
        held_out = {held: [(x, y) for x, y, s in regions if s == held] for held in styles}
        for radius in RADII:
            accs = []
            for held, ev in held_out.items():
                model = _reader([palettes[s] for s in styles if s != held], radius)
                accs.append(sum(model.predict(x) == y for x, y in ev) / max(len(ev), 1))
            scores[str(radius)] = sum(accs) / len(accs)
        radius = max(RADII, key=lambda r: (scores[str(r)], -r))
    else:
        radius = RADII[len(RADII) // 2]
    return _reader([palettes[s] for s in styles], radius), scores
