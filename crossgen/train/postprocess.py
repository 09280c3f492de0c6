"""Fit the steps the Pipeline applies after the captioner, in the order it applies them
(`crossgen/postprocess/chain.py`): each writes its own file next to the models, and the Pipeline skips a step
whose file is absent."""
from __future__ import annotations

from pathlib import Path

import torch

from .captioner import fit_fallback, fit_tones
from .confidence import fit_confidence


def fit_postprocessing(data: str | Path, out: str | Path, device: torch.device, work: str | Path,
                       limit: int | None = None) -> dict:
    """On the emoji set: the skin-tone reader first (the fallback's threshold is chosen on the captions it
    rewrites), then the concept-head fallback, then the calibration and the out-of-domain probe (fitted on the
    captions as the first two steps leave them). Returns each step's summary."""
    tones = fit_tones(data, out, limit)
    fallback = fit_fallback(data, out, device, limit)
    return {"skin_tone": tones, "fallback": fallback, "confidence": fit_confidence(data, out, device, work, limit)}
