"""One place that turns "auto" into a torch device."""
from __future__ import annotations

import os

import torch


def get_device(device: str | torch.device | None = "auto") -> torch.device:
    """Resolve "auto" (or None) to CUDA when available, else CPU. `CROSSGEN_DEVICE` overrides "auto"."""
    if device is None or str(device) == "auto":
        device = os.environ.get("CROSSGEN_DEVICE", "auto")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)
