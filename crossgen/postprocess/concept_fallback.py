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

FILE = "concept_fallback.json"


@dataclass
class ConceptFallback:
    names: list[str]  # concept-head class index -> the concept's name
    threshold: float  # replace the best caption when its probability is below this

    def replaces(self, nbest: list[tuple[str, float]]) -> bool:
        """Whether the head names the image: the best caption's probability is below the threshold."""
        return bool(nbest) and math.exp(nbest[0][1]) < self.threshold

    def apply(self, nbest: list[tuple[str, float]], probs: torch.Tensor) -> list[tuple[str, float]]:
        """n-best (caption, log-probability), best first, and the head's class probabilities (K,) -> the same
        list, or, when it `replaces` it, the head's most probable concept names instead (as many, with the logs
        of their class probabilities), so a list never mixes the scores of the two models."""
        if not self.replaces(nbest):
            return nbest
        top = probs.topk(min(len(nbest), len(probs)))
        return [(self.names[int(k)], math.log(max(float(p), 1e-12))) for p, k in zip(top.values, top.indices)]

    def save(self, directory: str | Path, **extra) -> None:
        save_json(Path(directory) / FILE, {**asdict(self), **extra})


def load_fallback(directory: str | Path, num_classes: int) -> ConceptFallback | None:
    """The fallback saved in a checkpoint folder; None when absent, disabled (threshold 0) or made for another
    head (its name list does not match the head's classes)."""
    path = Path(directory) / FILE
    if not path.is_file():
        return None
    meta = load_json(path)
    fallback = ConceptFallback(list(meta["names"]), float(meta["threshold"]))
    return fallback if fallback.threshold > 0 and 0 < num_classes == len(fallback.names) else None
