"""COCO captions: ``annotations/captions_{train,val}2017.json`` with ``train2017/`` and ``val2017/`` images.

COCO's test images have no public captions, so train2017 is the training split and val2017 the
validation split; a hashed 50% of val2017 is kept apart as the test split.
"""
from __future__ import annotations

import json
from pathlib import Path

from .source_records import hashed_split, make_record

YEARS = ("2017", "2014")


def read_coco(root: Path) -> list[dict]:
    """Records of every COCO image with captions, grouped by image id (its captions in file order)."""
    records = []
    for part in ("train", "val"):
        path = next((root / "annotations" / f"captions_{part}{y}.json" for y in YEARS
                     if (root / "annotations" / f"captions_{part}{y}.json").is_file()), None)
        if path is None:
            continue
        year = path.stem[-4:]
        data = json.loads(path.read_text(encoding="utf-8"))
        captions: dict[int, list[str]] = {}
        for a in data["annotations"]:
            captions.setdefault(a["image_id"], []).append(a["caption"])
        for img in data["images"]:
            split = "train" if part == "train" else ("test" if hashed_split(str(img["id"]), 0.0, 0.5) == "test" else "val")
            records.append(make_record(str(img["id"]), root / f"{part}{year}" / img["file_name"],
                                       captions.get(img["id"], []), split, "coco"))
    return records
