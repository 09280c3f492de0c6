"""Streaming data for external sets (COCO, Flickr, a folder): records per split, images decoded by
DataLoader workers on the fly (never all in memory), sharded over ranks with DistributedSampler."""
from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..data.records import SPLITS
from ..data.sources import load_source
from ..errors import CrossgenError, DataError
from ..preprocess import load_image, resize, tokenize
from .distributed import Dist

PRETRAINED_SIZE = 224  # ImageNet ResNet18 weights expect 224 px photos


@dataclass
class DataConfig:
    """The data side of training on an external set (flags of the same names)."""
    root: str = ""  # where the set lives on disk
    image_size: int = 0  # feature extractor input side; 0 = 224 with --resnet-weights, else 64
    vae_image_size: int = 64  # the CVAE draws 64 px images
    num_workers: int = 4  # DataLoader worker processes per rank
    resnet_weights: str = ""  # local ImageNet ResNet18 state dict (never downloaded); "" = from scratch
    max_words: int = 1000  # size of the feature extractor's caption-word head
    vocab_min_count: int = 5  # captioner vocabulary: words seen at least this often
    max_len: int = 20  # captioner: longest caption in words
    amp: bool = True  # bf16/fp16 autocast (CUDA only)

    def feature_size(self) -> int:
        return self.image_size or (PRETRAINED_SIZE if self.resnet_weights else 64)


def load_splits(source: str, root: str | Path, limit: int | None = None) -> dict[str, list[dict]]:
    """split -> records of an external set; `limit` keeps the first N of each split. When the set's split gives
    no validation image (a small folder: the hash sends about 5 % there), one training image is taken for it."""
    records = load_source(source, root)
    out = {s: [r for r in records if r["split"] == s] for s in SPLITS}
    if not out["val"] and len(out["train"]) >= 2:
        taken = min(out["train"], key=lambda r: hashlib.sha1(r["id"].encode()).hexdigest())  # the same one each run
        out["train"] = [r for r in out["train"] if r is not taken]
        out["val"] = [taken]
        print(f"{source} under {root}: no validation image in its split; {taken['id']!r} is used for validation")
    if not out["train"] or not out["val"]:
        raise DataError(f"{source} under {root} has {len(records)} captioned image(s), too few to split into training "
                        f"and validation images: add images, or choose the split with train/ and val/ subfolders "
                        f"(at least one image in each)")
    return {s: rs[:limit] if limit else rs for s, rs in out.items()}


class ImageCaptions(Dataset):
    """Item i: (image (3, S, S) uint8, i, caption). `caption`: "first", "random" (one per draw) or "none" ("")."""

    def __init__(self, records: list[dict], size: int, caption: str = "none"):
        self.records, self.size, self.caption = records, size, caption

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, str]:
        r = self.records[i]
        try:
            a = resize(load_image(r["image"]), self.size)  # (S, S, 3) uint8, square-padded as at inference
        except CrossgenError as e:
            warnings.warn(f"{r['image']}: {e}; a white image is used instead", stacklevel=1)
            a = np.full((self.size, self.size, 3), 255, dtype=np.uint8)
        caps = r["captions"]
        text = "" if self.caption == "none" else caps[0] if self.caption == "first" else \
            caps[int(torch.randint(len(caps), ()).item())]
        return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1), i, text


def loader(records: list[dict], size: int, batch_size: int, d: Dist, workers: int, shuffle: bool, seed: int,
           caption: str = "none") -> DataLoader:
    """A DataLoader over this rank's shard (every rank gets the same number of batches)."""
    data = ImageCaptions(records, size, caption)
    sampler = DistributedSampler(data, num_replicas=d.world, rank=d.rank, shuffle=shuffle, seed=seed)
    return DataLoader(data, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=d.device.type == "cuda", persistent_workers=workers > 0,
                      generator=torch.Generator().manual_seed(seed + d.rank))


def to_float(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(B, 3, S, S) uint8 -> float in [0, 1] on device (the models normalise with ImageNet statistics)."""
    return x.to(device, non_blocking=True).float().div_(255)


def top_words(records: list[dict], n: int) -> dict[str, int]:
    """The n words found in the most images' captions -> index (ties in alphabetical order)."""
    df = Counter(w for r in records for w in {w for c in r["captions"] for w in tokenize(c)})
    return {w: i for i, (w, _) in enumerate(sorted(df.items(), key=lambda kv: (-kv[1], kv[0]))[:n])}


def word_sets(records: list[dict], words: dict[str, int]) -> list[list[int]]:
    """For each record, the indices of its captions' words (the multi-label targets, kept sparse)."""
    return [sorted({words[w] for c in r["captions"] for w in tokenize(c) if w in words}) for r in records]


def multi_hot(sets: list[list[int]], idx: torch.Tensor, n: int) -> torch.Tensor:
    """(B, n) 0/1 targets of the records idx."""
    t = torch.zeros(len(idx), n)
    for row, i in enumerate(idx.tolist()):
        t[row, sets[i]] = 1.0
    return t
