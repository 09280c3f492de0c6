"""In-memory tensors of a built dataset (records.jsonl + 64px PNGs) for the training stages."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import load_images, load_records
from ..preprocess import tokenize


@dataclass
class Split:
    records: list[dict]
    images: torch.Tensor  # (N, 3, H, W) uint8
    labels: torch.Tensor  # (N,) concept index, -1 when the concept is not among the training concepts

    def __len__(self) -> int:
        return len(self.records)

    def batch(self, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Images idx as float (B, 3, H, W) in [0, 1] on device."""
        return self.images[idx].to(device, non_blocking=True).float().div_(255)


def load_split(data: str | Path, split: str | list[str], concepts: dict[str, int] | None = None,
               limit: int | None = None) -> Split:
    """Records of one or more splits with their images; `concepts` maps concept id -> class index."""
    splits = [split] if isinstance(split, str) else split
    records = [r for s in splits for r in load_records(data, split=s)]
    if limit:
        records = records[:limit]
    images = torch.from_numpy(np.ascontiguousarray(load_images(data, records))).permute(0, 3, 1, 2).contiguous()
    concepts = concepts or {}
    labels = torch.tensor([concepts.get(r["id"], -1) for r in records], dtype=torch.long)
    return Split(records, images, labels)


def without(split: Split, ids: set[str]) -> Split:
    """The split with the records of these concept ids left out (the compositional hold-out)."""
    keep = [i for i, r in enumerate(split.records) if r["id"] not in ids]
    idx = torch.tensor(keep, dtype=torch.long)
    return Split([split.records[i] for i in keep], split.images[idx], split.labels[idx])


def concept_index(records: list[dict]) -> dict[str, int]:
    """Concept id -> class index, in sorted id order (stable across runs)."""
    return {cid: i for i, cid in enumerate(sorted({r["id"] for r in records}))}


def word_index(records: list[dict]) -> dict[str, int]:
    """Word of any concept name -> index, for the multi-label word head."""
    return {w: i for i, w in enumerate(sorted({w for r in records for w in tokenize(r["name"])}))}


def word_targets(records: list[dict], words: dict[str, int]) -> torch.Tensor:
    """(N, W) 0/1 targets: which words the concept's name contains."""
    t = torch.zeros(len(records), len(words))
    for i, r in enumerate(records):
        for w in tokenize(r["name"]):
            if w in words:
                t[i, words[w]] = 1.0
    return t
