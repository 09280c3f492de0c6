"""How far to trust a caption: is the image an emoji at all, and how likely is the shown name right?

Two small fitted maps, saved together as `confidence.json` next to the models (the captioner stage of
`python -m crossgen.train` fits both, on the validation slice and the validation part of the out-of-domain
set; `crossgen/train/confidence.py`):

- `DomainCheck`: a linear probe on the unit-length 512-d ResNet features the captioner already has, trained
  to tell the training artists' drawings (and augmented views of them) from photos, screenshots, text and
  noise. Its score is a logit, higher = more like the emoji the models learned; images below `threshold`
  (chosen so that 98 % of the validation slice passes) are flagged as out of domain.
- `Calibration`: Platt scaling of a caption's probability, one (a, b) per source (the LSTM's caption
  probability, or the concept head's class probability when the fallback named the image), fitted so that
  the shown percentage matches how often such a best caption is exactly the image's name on validation.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoint import load_json, save_json

FILE = "confidence.json"
SOURCES = ("captioner", "concept head")


def named_by(raw: list, named: list) -> str:
    """Which model's probabilities a rewritten n-best list carries: the captioner's when the fallback kept its
    list (the same object), the concept head's when it replaced it."""
    return SOURCES[0] if named is raw else SOURCES[1]


@dataclass
class DomainCheck:
    mean: list[float]  # (512,) standardisation of the unit features
    std: list[float]  # (512,)
    weight: list[float]  # (512,) the probe on standardised features
    bias: float
    threshold: float  # scores below it are out of domain

    def __post_init__(self):
        self._w = torch.tensor(self.weight) / torch.tensor(self.std)  # folded: score = f_unit @ w + b
        self._b = float(self.bias - (torch.tensor(self.mean) * self._w).sum())

    def score(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, 512) ResNet features -> (B,) in-domain logits (higher = more like the training emoji)."""
        w = self._w.to(feats.device, feats.dtype)
        return F.normalize(feats, dim=1) @ w + self._b

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Calibration:
    params: dict[str, list[float]]  # source -> [a, b]: p' = sigmoid(a * logit(p) + b)

    def probability(self, logprob: float, source: str = "captioner") -> float:
        """A caption's log-probability -> the calibrated chance that it is exactly the image's name."""
        a, b = self.params.get(source, (1.0, 0.0))
        p = min(max(math.exp(logprob), 1e-6), 1 - 1e-6)
        return 1 / (1 + math.exp(-(a * math.log(p / (1 - p)) + b)))


@dataclass
class Confidence:
    domain: DomainCheck | None
    calibration: Calibration | None

    def save(self, directory: str | Path, **extra) -> None:
        save_json(Path(directory) / FILE, {"domain": self.domain.to_json() if self.domain else None,
                                           "calibration": self.calibration.params if self.calibration else None,
                                           **extra})


def load_confidence(directory: str | Path, feature_dim: int) -> Confidence | None:
    """The confidence maps saved in a checkpoint folder; None when the folder has none (captions then carry no
    domain flag and their probabilities are the models' own). A listed but missing or corrupt file is a
    CheckpointError (via the manifest check and `load_json`)."""
    path = Path(directory) / FILE
    if not path.is_file():
        return None
    meta = load_json(path)
    domain = DomainCheck(**meta["domain"]) if meta.get("domain") else None
    if domain is not None and len(domain.weight) != feature_dim:
        domain = None  # fitted on another feature model
    calibration = Calibration(meta["calibration"]) if meta.get("calibration") else None
    return Confidence(domain, calibration)
