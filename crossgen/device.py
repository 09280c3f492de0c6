"""One place that turns "auto" into a torch device."""
from __future__ import annotations

import os

import torch

from .errors import UsageError


def get_device(device: str | torch.device | None = "auto") -> torch.device:
    """Resolve "auto" (or None) to CUDA when available, else CPU. `CROSSGEN_DEVICE` overrides "auto"."""
    if device is None or str(device) == "auto":
        device = os.environ.get("CROSSGEN_DEVICE", "auto")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise UsageError(f"Unknown device {str(device)!r} ({e}); use auto, cpu or cuda (--device or CROSSGEN_DEVICE)") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"Device {resolved} is not available here (torch finds no CUDA GPU); use cpu or auto "
                         "(--device or CROSSGEN_DEVICE)")
    return resolved
