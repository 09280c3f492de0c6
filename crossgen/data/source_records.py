"""The record every external-set reader (coco, flickr, folder) returns, and the split of sets that ship none.

Kept apart from `sources.py` (which dispatches to the readers) so that the readers import only this:
the data package has no import cycle.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

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
