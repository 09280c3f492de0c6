"""Training the evaluator classifier (see `crossgen.models.evaluator`): the feature stage's loop on the emoji set,
with a concept head only and another seed, saved as `<out>/evaluator.*`."""
from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import refresh_manifest
from ..models.evaluator import NAME
from .distributed import Dist
from .features import EmojiFeatureData, FeatureTrainConfig, train_features


def evaluator_config(epochs: int = 8, seed: int = 1234) -> FeatureTrainConfig:
    """The evaluator's training recipe: the feature model's, with a concept head only and another seed."""
    return FeatureTrainConfig(epochs=epochs, seed=seed, word_loss=0.0)


def train_evaluator(data: str | Path, out: str | Path, device: torch.device, cfg: FeatureTrainConfig,
                    work: str | Path, resume: bool = True, limit: int | None = None) -> dict:
    """Train the evaluator on the train split (val picks the best epoch, test is never seen); writes
    `<out>/evaluator.*` and refreshes the manifest. Returns the best epoch's row."""
    source = EmojiFeatureData(data, device, cfg, limit, log_test=False)
    best = train_features(source, out, Dist(device=device), cfg, work, resume, name=NAME)
    refresh_manifest(out)
    return best
