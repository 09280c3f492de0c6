"""The evaluator for text -> image: a concept classifier trained only on real training images.

It is never used by the generator and shares no weights with the shipped feature model: its own
ResNet18 from scratch (`torchvision.models.resnet18(weights=None)` inside `ImageFeatures`, no
ImageNet weights), another seed, a concept head only. Its top-1/top-5 on generated images says
whether they show the prompt's concept; its pooled 512-d features are the space FID is measured in.
Saved as `evaluator.safetensors` + `evaluator.json` (config, concept list, training summary); trained by
`crossgen.train.evaluator` (this module only loads and applies it: serving code imports no training code).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import load_model
from ..device import get_device
from ..errors import CheckpointError
from .image_features import FeatureConfig, ImageFeatures

NAME = "evaluator"


@dataclass
class Evaluator:
    model: ImageFeatures  # ResNet18 + concept head (no word head)
    concepts: list[str]  # class index -> concept id
    index: dict[str, int]  # concept id -> class index
    meta: dict

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def evaluator_missing_hint(directory: str | Path, data: str | Path = "data/emoji") -> str:
    return (f"No evaluator classifier in {directory} ({NAME}.safetensors). Train it first (about 8 epochs of a "
            f"ResNet18 on the training images) by adding --train-evaluator, e.g. "
            f"`python -m crossgen.evaluate --data {data} --checkpoints {directory} --train-evaluator`.")


def load_evaluator(directory: str | Path, device: str | torch.device = "cpu") -> Evaluator:
    """The evaluator saved in a checkpoint folder (CheckpointError with a how-to when absent)."""
    directory = Path(directory)
    if not (directory / f"{NAME}.safetensors").is_file():
        raise CheckpointError(evaluator_missing_hint(directory))
    model, meta = load_model(directory, NAME, ImageFeatures, FeatureConfig, get_device(device))
    concepts = list(meta["concepts"])
    return Evaluator(model, concepts, {c: i for i, c in enumerate(concepts)}, meta)


def as_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) in 0..255 or float in [0, 1] -> float in [0, 1]."""
    return images.float().div(255) if images.dtype == torch.uint8 else images.float()


@torch.inference_mode()
def logits_and_pool(evaluator: Evaluator, images: torch.Tensor, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, H, W) images (uint8 or [0, 1]) -> class logits (N, K) and pooled features (N, 512), float64."""
    model, dev = evaluator.model, evaluator.device
    size = model.config.image_size
    logits, pool = [], []
    for i in range(0, len(images), batch_size):
        x = as_float(images[i:i + batch_size]).to(dev)
        if x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out = model(x)
        logits.append(out.class_logits.double().cpu())
        pool.append(out.features.double().cpu())
    k = len(evaluator.concepts)
    return (torch.cat(logits).numpy() if logits else np.zeros((0, k)),
            torch.cat(pool).numpy() if pool else np.zeros((0, model.config.feature_dim)))


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """{"top1": .., "top5": ..}: how often the label is among the k largest logits (labels < 0 count as misses)."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return {f"top{k}": float("nan") for k in ks}
    order = np.argsort(-logits, axis=1)
    return {f"top{k}": float((order[:, :k] == labels[:, None]).any(1).mean()) for k in ks}
