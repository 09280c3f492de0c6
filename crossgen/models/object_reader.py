"""The object reader of the composition evaluation: which object a drawing shows, whatever its colour or tone.

Objects are concept names with their colour word and skin tone phrase taken out (`crossgen.data.holdout.object_of`:
"purple heart" and "red heart" are both "heart", "thumbs up dark skin tone" is "thumbs up"). The reader is the
evaluator's ResNet18 (`crossgen.models.evaluator`) with a new linear head over the objects and, when training chose it,
its own copy of one residual stage (`tuned`, e.g. "layer3"), trained on the training artists' real drawings with
their colours destroyed (hue rotation, greyscale, recolouring; `crossgen.train.object_reader`). Only the head and
that stage are saved (`object_reader.safetensors`, fp16, + `object_reader.json`: config, object list, the sha256 of
the evaluator it extends, training summary): the rest of the network is read from `evaluator.safetensors`.
Like the evaluator it is used by the evaluation only, never by the generator.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import resnet18

from ..checkpoint import load_model, sha256
from ..errors import CheckpointError
from ..preprocess import imagenet_normalize
from .evaluator import as_float, load_evaluator

NAME = "object_reader"
STAGES = ("layer1", "layer2", "layer3", "layer4")


@dataclass
class ObjectReaderConfig:
    num_objects: int = 0
    feature_dim: int = 512
    tuned: str = ""  # "" : the evaluator's backbone frozen; "layer3" / "layer4": that stage is the reader's own


class ObjectParts(nn.Module):
    """What the reader adds to the evaluator: an object head and, optionally, its own copy of one stage."""

    def __init__(self, config: ObjectReaderConfig):
        super().__init__()
        self.config = config
        if config.tuned and config.tuned not in STAGES:
            raise ValueError(f"tuned must be one of {STAGES} or empty, not {config.tuned!r}")
        self.stage = getattr(resnet18(weights=None), config.tuned) if config.tuned else None
        self.head = nn.Linear(config.feature_dim, config.num_objects)


def run_backbone(backbone: nn.Module, x: torch.Tensor, start: str = "", stop: str = "",
                 swap: dict[str, nn.Module] | None = None) -> torch.Tensor:
    """Run a torchvision ResNet from the input (start "") or from the output of stage `start`, up to the output of
    stage `stop` ("" = the pooled (B, 512) features); `swap` replaces stages by name. x: (B, 3, H, W) in [0, 1]
    when start is "", else that stage's output."""
    swap = swap or {}
    if not start:
        b = backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(imagenet_normalize(x)))))
    for name in STAGES[STAGES.index(start) + 1 if start else 0:]:
        x = swap.get(name, getattr(backbone, name))(x)
        if name == stop:
            return x
    return torch.flatten(backbone.avgpool(x), 1)  # (B, 512)


@dataclass
class ObjectReader:
    backbone: nn.Module  # the evaluator's ResNet18 (fc = Identity)
    parts: ObjectParts
    objects: list[str]  # class index -> object name
    index: dict[str, int]  # object name -> class index
    meta: dict

    @property
    def device(self) -> torch.device:
        return next(self.parts.parameters()).device

    @torch.inference_mode()
    def logits(self, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """(N, 3, H, W) uint8 or [0, 1] -> (N, K) object logits."""
        swap = {self.parts.config.tuned: self.parts.stage} if self.parts.stage is not None else {}
        out = []
        for i in range(0, len(images), batch_size):
            x = as_float(images[i:i + batch_size]).to(self.device)
            if x.shape[-1] != 64:
                x = F.interpolate(x, size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
            out.append(self.parts.head(run_backbone(self.backbone, x, swap=swap)).float().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.objects)))

    def top(self, images: torch.Tensor, k: int = 5) -> list[list[str]]:
        """Per image, the k most likely objects, most likely first."""
        logits = self.logits(images)
        return [[self.objects[j] for j in row] for row in np.argsort(-logits, axis=1)[:, :k]]


def object_reader_missing_hint(directory: str | Path, data: str | Path = "data/emoji10") -> str:
    return (f"No object reader in {directory} ({NAME}.safetensors). Train it (about 10 minutes on CPU) with "
            f"`python -m crossgen.train.object_reader --data {data} --out {directory}`, or skip the composition "
            f"evaluation with --no-composition.")


def load_object_reader(directory: str | Path, device: str | torch.device = "cpu") -> ObjectReader:
    """The object reader saved in a checkpoint folder, on the evaluator saved beside it (CheckpointError when either
    is missing, or when the evaluator is not the one the reader was trained on)."""
    directory = Path(directory)
    if not (directory / f"{NAME}.safetensors").is_file():
        raise CheckpointError(object_reader_missing_hint(directory))
    evaluator = load_evaluator(directory, device)
    parts, meta = load_model(directory, NAME, ObjectParts, ObjectReaderConfig, evaluator.device)
    want = meta.get("evaluator_sha256")
    if want and sha256(directory / "evaluator.safetensors") != want:
        raise CheckpointError(f"{directory / NAME}.safetensors was trained on another evaluator.safetensors; "
                              f"retrain it: {object_reader_missing_hint(directory)}")
    objects = list(meta["objects"])
    return ObjectReader(evaluator.model.backbone, parts, objects, {o: i for i, o in enumerate(objects)}, meta)
