"""The measures the confidence maps are fitted and judged by, shared by their fits (`crossgen/train/confidence.py`)
and the evaluation: AUROC and FPR at 95 % TPR of the out-of-domain score, and the calibration error of a
probability."""
from __future__ import annotations

import numpy as np


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """Area under the ROC curve of a score that should be higher inside the domain: the chance that an in-domain
    image scores above an out-of-domain one (ties count half)."""
    o = np.sort(outside)
    below, up_to = np.searchsorted(o, inside, "left"), np.searchsorted(o, inside, "right")
    return float((below + 0.5 * (up_to - below)).sum() / (len(inside) * len(outside)))


def fpr_at_tpr(inside: np.ndarray, outside: np.ndarray, tpr: float = 0.95) -> float:
    """Share of out-of-domain images that pass the threshold letting `tpr` of the in-domain ones through."""
    return float((outside >= np.quantile(inside, 1 - tpr)).mean())


def expected_calibration_error(prob: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins by their size."""
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(prob, edges[1:-1]), 0, bins - 1)
    return float(sum(abs(prob[idx == b].mean() - correct[idx == b].mean()) * (idx == b).mean()
                     for b in range(bins) if (idx == b).any()))
