"""External image-caption sets on disk (COCO, Flickr30k/8k, a plain folder) as records for training.

Every reader returns the same record shape as a built emoji dataset, so the training stages treat
both alike: ``id`` (the image id: it groups the image's captions), ``style`` (the source name),
``split`` ("train" | "val" | "test"), ``image`` (absolute path), ``name`` (the first caption),
``captions`` (all of them) and ``keywords`` (empty). Images are not read here: the training loaders
decode them on the fly.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

SOURCES = ("coco", "flickr30k", "flickr8k", "folder")
SPLIT_NAMES = ("train", "val", "test")


def hashed_split(image_id: str, val: float = 0.05, test: float = 0.05) -> str:
    """A stable split for sets that ship none: sha1 of the id into 100 buckets."""
    bucket = int(hashlib.sha1(image_id.encode()).hexdigest()[:8], 16) % 100
    return "val" if bucket < round(val * 100) else "test" if bucket < round((val + test) * 100) else "train"


def make_record(image_id: str, image: str | Path, captions: list[str], split: str, source: str) -> dict:
    """One image with its captions in crossgen's record shape (blank captions dropped)."""
    caps = [" ".join(c.split()) for c in captions if c and c.strip()]
    return {"id": str(image_id), "style": source, "split": split, "image": str(Path(image).resolve()),
            "name": caps[0] if caps else "", "captions": caps, "keywords": []}


def _readers() -> dict[str, Callable[[Path], list[dict]]]:
    from .coco import read_coco
    from .flickr import read_flickr
    from .folder import read_folder
    return {"coco": read_coco, "flickr30k": lambda r: read_flickr(r, "flickr30k"),
            "flickr8k": lambda r: read_flickr(r, "flickr8k"), "folder": read_folder}


def load_source(name: str, root: str | Path, split: str | None = None, limit: int | None = None) -> list[dict]:
    """Records of an external set (`name` in SOURCES) under `root`, optionally one split and its first `limit`.
    Images whose file is missing and images without a caption are left out."""
    if name not in SOURCES:
        raise ValueError(f"Unknown data source {name!r}; expected one of {', '.join(SOURCES)}.")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--root {root} is not a directory (the {name} data set goes there).")
    records = [r for r in _readers()[name](root) if r["captions"] and (split is None or r["split"] == split)]
    records = [r for r in records if Path(r["image"]).is_file()]
    if not records and split is None:
        raise FileNotFoundError(f"No captioned images found for {name} under {root}.")
    return records[:limit] if limit else records
