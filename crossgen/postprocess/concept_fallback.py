"""When the captioner is unsure, name the image with the feature model's concept head instead.

The LSTM captioner and the ResNet's concept-classification head read the same 512-d features. On the
validation slice the captioner is the better namer when it is confident and the head when it is not,
so below a probability `threshold` of the best caption the head's most probable concept names take the
place of the n-best. The threshold is chosen on the validation slice and saved as
`concept_fallback.json` next to the models; without that file captions are the captioner's alone.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..checkpoint import load_json, save_json
from ..preprocess import normalize_text
from .skin_tone import SkinTone

FILE = "concept_fallback.json"
THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # 0 = never replace


@dataclass
class ConceptFallback:
    names: list[str]  # concept-head class index -> the concept's name
    threshold: float  # replace the best caption when its probability is below this

    def apply(self, nbest: list[tuple[str, float]], probs: torch.Tensor) -> list[tuple[str, float]]:
        """n-best (caption, log-probability), best first, and the head's class probabilities (K,) -> the same
        list, or, when the best caption's probability is below the threshold, the head's most probable concept
        names instead (as many, with the logs of their class probabilities), so a list never mixes the scores
        of the two models."""
        if not nbest or math.exp(nbest[0][1]) >= self.threshold:
            return nbest
        top = probs.topk(min(len(nbest), len(probs)))
        return [(self.names[int(k)], math.log(max(float(p), 1e-12))) for p, k in zip(top.values, top.indices)]

    def save(self, directory: str | Path, **extra) -> None:
        save_json(Path(directory) / FILE, {**asdict(self), **extra})


def rewrite(nbest: list[tuple[str, float]], probs: torch.Tensor | None, image: torch.Tensor,
            fallback: ConceptFallback | None, skin_tone: SkinTone | None
            ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The captioner's n-best list in its two steps, each skipped when absent: (after the concept-head fallback,
    then with the skin tones read from the image (3, H, W) in [0, 1]). The fallback's list is `nbest` itself
    when it kept the captioner's captions."""
    if fallback is not None:
        nbest = fallback.apply(nbest, probs)
    return nbest, skin_tone.apply(nbest, image) if skin_tone is not None else nbest


def load_fallback(directory: str | Path, num_classes: int) -> ConceptFallback | None:
    """The fallback saved in a checkpoint folder; None when absent, disabled (threshold 0) or made for another
    head (its name list does not match the head's classes)."""
    path = Path(directory) / FILE
    if not path.is_file():
        return None
    meta = load_json(path)
    fallback = ConceptFallback(list(meta["names"]), float(meta["threshold"]))
    return fallback if fallback.threshold > 0 and 0 < num_classes == len(fallback.names) else None


def choose_threshold(nbest: list[list[tuple[str, float]]], probs: torch.Tensor, names: list[str], truth: list[str],
                     reader: SkinTone | None = None, images: list[torch.Tensor] | None = None) -> tuple[float, dict[str, float]]:
    """The threshold among THRESHOLDS with the best exact-name accuracy of the best caption (the smallest on a
    tie), and the accuracy at each. nbest per image as from the captioner, probs (N, K) of the head; with a
    skin-tone reader and the images (3, H, W), the best caption's tone words are read first, as the Pipeline does."""
    truth = [normalize_text(t) for t in truth]
    scores = {}
    reader = reader if images is not None else None
    for t in THRESHOLDS:
        fb = ConceptFallback(names, t)
        best = [rewrite(cs, p, images[i] if reader else None, fb, reader)[1][0][0] if cs else ""
                for i, (cs, p) in enumerate(zip(nbest, probs))]
        scores[str(t)] = sum(normalize_text(b) == y for b, y in zip(best, truth)) / max(len(truth), 1)
    chosen = max(THRESHOLDS, key=lambda t: (scores[str(t)], -t))
    return chosen, scores
