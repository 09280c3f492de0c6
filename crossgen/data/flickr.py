"""Flickr30k and Flickr8k: Karpathy's ``dataset_flickr{30k,8k}.json`` splits, else the caption files
that ship with the sets — ``results.csv`` (Flickr30k: ``image_name| comment_number| comment``) or
``Flickr8k.token.txt`` (``image.jpg#0<TAB>caption``) — with Flickr8k's ``Flickr_8k.{train,dev,test}Images.txt``
lists when present, else a hashed split.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from ..errors import DataNotFoundError
from .source_records import hashed_split, make_record

IMAGE_DIRS = {"flickr30k": ("flickr30k-images", "flickr30k_images", "Images", "images", "."),
              "flickr8k": ("Flicker8k_Dataset", "Flickr8k_Dataset", "Images", "images", ".")}
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "val", "test": "test"}


def find(root: Path, names: tuple[str, ...]) -> Path | None:
    """The first of `names` that exists under root (also one level down, e.g. Flickr8k_text/)."""
    for name in names:
        for path in (root / name, *root.glob(f"*/{name}")):
            if path.exists():
                return path
    return None


def image_dir(root: Path, source: str, sample: str | None) -> Path:
    """The folder holding the images: the first candidate (under root or one level down) with `sample` in it."""
    bases = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    for name in IMAGE_DIRS[source]:
        for base in bases:
            if sample and (base / name / sample).is_file():
                return base / name
    return root / IMAGE_DIRS[source][0]


def read_karpathy(path: Path, root: Path, source: str) -> list[dict]:
    images = json.loads(path.read_text(encoding="utf-8"))["images"]
    folder = image_dir(root, source, images[0]["filename"] if images else None)
    return [make_record(Path(im["filename"]).stem, folder / im["filename"],
                        [s.get("raw") or " ".join(s["tokens"]) for s in im["sentences"]],
                        KARPATHY_SPLITS.get(im.get("split", "train"), "train"), source) for im in images]


def read_results_csv(path: Path) -> dict[str, list[str]]:
    """Flickr30k's results.csv: ``image_name| comment_number| comment`` (header first)."""
    captions: dict[str, list[str]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.reader(f, delimiter="|"):
            if len(row) >= 3 and row[0].strip() != "image_name":
                captions.setdefault(row[0].strip(), []).append("|".join(row[2:]).strip())
    return captions


def read_token_txt(path: Path) -> dict[str, list[str]]:
    """Flickr8k.token.txt (or Flickr30k's results_20130124.token): ``image.jpg#0<TAB>caption``."""
    captions: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "\t" in line:
            key, caption = line.split("\t", 1)
            captions.setdefault(key.split("#")[0].strip(), []).append(caption.strip())
    return captions


def listed_splits(root: Path) -> dict[str, str]:
    """Flickr8k's image lists: file name -> split ({} when the lists are absent)."""
    out = {}
    for split, name in (("train", "Flickr_8k.trainImages.txt"), ("val", "Flickr_8k.devImages.txt"),
                        ("test", "Flickr_8k.testImages.txt")):
        path = find(root, (name,))
        if path is not None:
            out.update({line.strip(): split for line in path.read_text().splitlines() if line.strip()})
    return out


def read_flickr(root: Path, source: str = "flickr30k") -> list[dict]:
    """Records of Flickr30k or Flickr8k under root, from whichever caption file is there."""
    karpathy = find(root, (f"dataset_{source}.json",))
    if karpathy is not None:
        return read_karpathy(karpathy, root, source)
    csv_path = find(root, ("results.csv",))
    token = find(root, ("Flickr8k.token.txt", "results_20130124.token", "captions.token"))
    if csv_path is None and token is None:
        raise DataNotFoundError(f"No {source} captions under {root}: expected dataset_{source}.json, "
                                "results.csv or Flickr8k.token.txt.")
    captions = read_results_csv(csv_path) if csv_path is not None else read_token_txt(token)
    splits = listed_splits(root)
    folder = image_dir(root, source, next(iter(captions), None))
    return [make_record(Path(name).stem, folder / name, caps, splits.get(name) or hashed_split(name), source)
            for name, caps in captions.items()]
