"""The caption post-processing chain: what the captioner's n-best list goes through before anyone sees it, in the
one order the Pipeline, the fits and the evaluation apply it.

1. `name`: when the best caption is unsure, the concept head names the image instead (`concept_fallback`); this
   step says which model named it, and so whose probabilities the list carries;
2. `tone`: the skin-tone words read from the image's colours (`skin_tone`);
3. `probabilities`: the calibrated chance of each caption, one distribution with "something else"
   (`confidence.Calibration`; without one the models' own probabilities, scaled to add up to at most 1);
4. `in_domain`: whether the image looks like an emoji at all (`confidence.DomainCheck`).

Each step is skipped when its file is not in the checkpoint folder (`PostProcess.load`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .concept_fallback import ConceptFallback, load_fallback
from .confidence import SOURCES, Confidence, load_confidence
from .skin_tone import SkinTone, load_skin_tone

NBest = list[tuple[str, float]]  # (caption, log-probability), best first


@dataclass
class Reading:
    """What the Pipeline reads in one image: `image_to_text`'s captions and how far to trust them."""
    captions: NBest  # the n-best (caption, log-probability), best first, as image_to_text returns
    probabilities: list[float]  # per caption, the calibrated chance that it is exactly the image's name; sum <= 1
    named_by: str  # "captioner", or "concept head" when the fallback named the image
    domain_score: float | None  # the out-of-domain check's score (higher = more like an emoji); None without one
    in_domain: bool  # False when the image does not look like the emoji the models learned


def model_probabilities(logprobs: list[float]) -> list[float]:
    """The models' own probabilities of the n-best captions, scaled to add up to at most 1 (the skin-tone reader
    can give two captions one score)."""
    p = [math.exp(lp) for lp in logprobs]
    total = sum(p)
    return [v / total for v in p] if total > 1 else p


@dataclass
class PostProcess:
    fallback: ConceptFallback | None = None  # None: captions are the LSTM's alone
    skin_tone: SkinTone | None = None  # None: captions keep the captioner's skin tones
    confidence: Confidence = field(default_factory=lambda: Confidence(None, None))  # its parts None: skipped

    @classmethod
    def load(cls, directory: str | Path, num_classes: int, feature_dim: int) -> "PostProcess":
        """The steps saved in a checkpoint folder for a feature model with `num_classes` concepts and
        `feature_dim`-d features; a step whose file is absent, or was fitted for another feature model, is skipped."""
        return cls(load_fallback(directory, num_classes), load_skin_tone(directory),
                   load_confidence(directory, feature_dim) or Confidence(None, None))

    def name(self, nbest: NBest, concepts: torch.Tensor | None) -> tuple[NBest, str]:
        """Step 1. The n-best and the model that named the image: the concept head's most probable concepts (with
        their log-probabilities) when the best caption is unsure, else the captioner's list unchanged.
        concepts: (K,) the head's class probabilities (None without a head)."""
        if self.fallback is not None and concepts is not None and self.fallback.replaces(nbest):
            return self.fallback.apply(nbest, concepts), SOURCES[1]
        return nbest, SOURCES[0]

    def tone(self, nbest: NBest, image: torch.Tensor) -> NBest:
        """Step 2. The tone words of the captions read from the image (3, H, W) in [0, 1]."""
        return self.skin_tone.apply(nbest, image) if self.skin_tone is not None else nbest

    def probabilities(self, nbest: NBest, named_by: str) -> list[float]:
        """Step 3. Each caption's chance of being exactly the image's name; they sum to at most 1."""
        logprobs = [lp for _, lp in nbest]
        calibration = self.confidence.calibration
        return calibration.probabilities(logprobs, named_by) if calibration is not None else model_probabilities(logprobs)

    def in_domain(self, domain_score: float | None) -> bool:
        """Step 4. False when the domain check's score is below its threshold (True without a check or a score)."""
        domain = self.confidence.domain
        return domain is None or domain_score is None or domain_score >= domain.threshold

    def read(self, nbest: NBest, concepts: torch.Tensor | None, image: torch.Tensor,
             domain_score: float | None) -> Reading:
        """The captioner's n-best of one image through the four steps, in order."""
        named, named_by = self.name(nbest, concepts)
        captions = self.tone(named, image)
        return Reading(captions, self.probabilities(captions, named_by), named_by, domain_score,
                       self.in_domain(domain_score))
