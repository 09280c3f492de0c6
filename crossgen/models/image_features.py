"""ResNet18 image features (512-d) with a concept-classification head used to train them.

Weights come from this project's checkpoint. torchvision's ImageNet weights are used only when a
config asks for them *and* the file is already in the local torch hub cache: nothing is downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn as nn
from torchvision.models import ResNet18_Weights, resnet18

from ..errors import CheckpointError
from ..preprocess import imagenet_normalize


@dataclass
class FeatureConfig:
    image_size: int = 64  # input side in pixels; 224 for photos with ImageNet weights
    num_classes: int = 0  # size of the concept-classification head; 0 = features only
    num_words: int = 0  # size of the multi-label head predicting the words of the name; 0 = none
    feature_dim: int = 512
    imagenet_weights: bool = False  # start from torchvision's ImageNet weights (local cache only)
    dropout: float = 0.2


def imagenet_cache_path() -> Path:
    """Where torchvision would keep the ResNet18 ImageNet weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(ResNet18_Weights.IMAGENET1K_V1.url).name


def load_imagenet_state(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """ImageNet ResNet18 weights from a local file (default: the torch hub cache). Never downloads."""
    path = Path(path) if path else imagenet_cache_path()
    if not path.is_file():
        raise CheckpointError(f"ImageNet ResNet18 weights were asked for but {path} does not exist; "
                              "crossgen never downloads weights. Put the file there or train without them.")
    return torch.load(path, map_location="cpu", weights_only=True)


class FeatureOutput(NamedTuple):
    features: torch.Tensor  # (B, 512)
    class_logits: torch.Tensor | None  # (B, num_classes)
    word_logits: torch.Tensor | None  # (B, num_words)


class ImageFeatures(nn.Module):
    def __init__(self, config: FeatureConfig, imagenet_path: str | Path | None = None):
        super().__init__()
        self.config = config
        self.backbone = resnet18(weights=None)
        if config.imagenet_weights:
            self.backbone.load_state_dict(load_imagenet_state(imagenet_path))
        self.backbone.fc = nn.Identity()  # (B, 512) pooled features
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.feature_dim, config.num_classes)) \
            if config.num_classes else None
        self.word_head = nn.Linear(config.feature_dim, config.num_words) if config.num_words else None

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 512)."""
        return self.backbone(imagenet_normalize(image))

    def forward(self, image: torch.Tensor) -> FeatureOutput:
        """Training pass: features and the logits of whichever heads exist."""
        f = self.features(image)
        return FeatureOutput(f, self.head(f) if self.head is not None else None,
                             self.word_head(f) if self.word_head is not None else None)

    @torch.inference_mode()
    def embed(self, image: torch.Tensor) -> torch.Tensor:
        """Inference: (B, 3, H, W) in [0, 1] on any device -> (B, 512) features on the model's device."""
        device = next(self.parameters()).device
        return self.features(image.to(device))

    @torch.inference_mode()
    def concepts(self, feats: torch.Tensor) -> torch.Tensor | None:
        """(B, 512) features -> (B, K) concept probabilities of the head (None without one)."""
        return self.head(feats).softmax(-1) if self.head is not None else None

    @torch.inference_mode()
    def classify(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, K) class probabilities (needs a head)."""
        if self.head is None:
            raise ValueError("This feature extractor has no classification head.")
        return self.concepts(self.embed(image))
