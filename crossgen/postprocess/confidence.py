"""How far to trust a caption: is the image an emoji at all, and how likely is the shown name right?

Two small fitted maps, saved together as `confidence.json` next to the models (the captioner stage of
`python -m crossgen.train` fits both, on the validation slice and the validation part of the out-of-domain
set; `crossgen/train/confidence.py`):

- `DomainCheck`: a linear probe on the unit-length 512-d ResNet features the captioner already has, trained
  to tell the training artists' drawings (and augmented views of them) from photos, screenshots, text and
  noise, plus `msp_weight` x the log of the concept head's largest probability (the head learned to be unsure
  on such images: outlier exposure). Its score is a logit, higher = more like the emoji the models learned;
  images below `threshold` (chosen so that 98 % of the validation slice passes) are flagged as out of domain.
- `Calibration`: the n-best list calibrated as one distribution. Each caption's logit is a x its
  log-probability, "something else" has the logit c, and a softmax over them gives the shown chances: they sum
  to 1 with "something else", so the captions shown never add up to more than 100 %. One (a, c) per source (the
  LSTM's caption probabilities, or the concept head's class probabilities when the fallback named the image),
  fitted on validation by the log-loss of which caption, if any, is exactly the image's name. Without a
  calibration the models' own probabilities are shown, scaled down when they add up to more than 1 (the
  skin-tone reader can give two captions one score).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..checkpoint import load_json, save_json

FILE = "confidence.json"
SOURCES = ("captioner", "concept head")


@dataclass
class DomainCheck:
    mean: list[float]  # (512,) standardisation of the unit features
    std: list[float]  # (512,)
    weight: list[float]  # (512,) the probe on standardised features
    bias: float
    threshold: float  # scores below it are out of domain
    msp_weight: float = 0.0  # weight of log max concept probability in the score (0: the probe alone)

    def __post_init__(self):
        self._w = torch.tensor(self.weight) / torch.tensor(self.std)  # folded: score = f_unit @ w + b
        self._b = float(self.bias - (torch.tensor(self.mean) * self._w).sum())

    def score(self, feats: torch.Tensor, concepts: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 512) ResNet features and (B, K) concept-head probabilities -> (B,) in-domain logits (higher = more
        like the training emoji). `concepts` may be None only for a check fitted without a head (msp_weight 0)."""
        w = self._w.to(feats.device, feats.dtype)
        probe = F.normalize(feats, dim=1) @ w + self._b
        if not self.msp_weight:
            return probe
        if concepts is None:
            raise ValueError("this domain check reads the concept head's probabilities: pass them")
        return probe + self.msp_weight * concepts.to(probe).max(-1).values.clamp_min(1e-12).log()

    def to_json(self) -> dict:
        return asdict(self)


def nbest_logits(logprobs: torch.Tensor, a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """(N, n) caption log-probabilities (-inf where a list is shorter) -> (N, n + 1) logits of the calibrated
    distribution: a x each log-probability, then c for "something else" (its softmax is the shown chances)."""
    logits = torch.cat([a * logprobs.clamp_min(-1e4), c.expand(len(logprobs), 1)], 1)
    return logits.masked_fill(F.pad(logprobs.isinf(), (0, 1)), -torch.inf)


@dataclass
class Calibration:
    params: dict[str, list[float]]  # source -> [a, c]: softmax over [a * logprob_1 .. a * logprob_n, c]

    def probabilities(self, logprobs: list[float], source: str = "captioner") -> list[float]:
        """The n-best captions' log-probabilities -> the calibrated chance that each is exactly the image's name
        (one distribution: 1 - their sum is the chance that the name is something else)."""
        if not logprobs:
            return []
        a, c = (torch.tensor(v, dtype=torch.float64) for v in self.params.get(source, (1.0, 0.0)))
        logits = nbest_logits(torch.tensor([logprobs], dtype=torch.float64), a, c)  # (1, n + 1)
        return logits.softmax(1)[0, :-1].tolist()


@dataclass
class Confidence:
    domain: DomainCheck | None
    calibration: Calibration | None

    def save(self, directory: str | Path, **extra) -> None:
        save_json(Path(directory) / FILE, {"domain": self.domain.to_json() if self.domain else None,
                                           "nbest_calibration": self.calibration.params if self.calibration else None,
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
    # "nbest_calibration": the n-best as one distribution; an older file's "calibration" (Platt scaling of each
    # caption on its own, which could add up to more than 100 %) is not read: the models' probabilities are shown
    calibration = Calibration(meta["nbest_calibration"]) if meta.get("nbest_calibration") else None
    return Confidence(domain, calibration)
