"""External image-caption sets on disk (COCO, Flickr30k/8k, a plain folder) as records for training.

Every reader returns the same record shape as a built emoji dataset, so the training stages treat
both alike: ``id`` (the image id: it groups the image's captions), ``style`` (the source name),
``split`` ("train" | "val" | "test"), ``image`` (absolute path), ``name`` (the first caption),
``captions`` (all of them) and ``keywords`` (empty). Images are not read here: the training loaders
decode them on the fly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import DataNotFoundError, UsageError
from .coco import read_coco
from .flickr import read_flickr
from .folder import read_folder
from .source_records import SPLIT_NAMES, hashed_split, make_record  # noqa: F401  (the record helpers, re-exported)

SOURCES = ("coco", "flickr30k", "flickr8k", "folder")
READERS: dict[str, Callable[[Path], list[dict]]] = {
    "coco": read_coco, "flickr30k": lambda r: read_flickr(r, "flickr30k"),
    "flickr8k": lambda r: read_flickr(r, "flickr8k"), "folder": read_folder,
}


def load_source(name: str, root: str | Path, split: str | None = None, limit: int | None = None) -> list[dict]:
    """Records of an external set (`name` in SOURCES) under `root`, optionally one split and its first `limit`.
    Images whose file is missing and images without a caption are left out."""
    if name not in SOURCES:
        raise UsageError(f"Unknown data source {name!r}; expected one of {', '.join(SOURCES)}.")
    root = Path(root)
    if not root.is_dir():
        raise DataNotFoundError(f"--root {root} is not a directory (the {name} data set goes there).")
    records = [r for r in READERS[name](root) if r["captions"] and (split is None or r["split"] == split)]
    records = [r for r in records if Path(r["image"]).is_file()]
    if not records and split is None:
        raise DataNotFoundError(f"No captioned images found for {name} under {root}.")
    return records[:limit] if limit else records
