"""A plain folder of captioned images: ``photo.jpg`` + ``photo.txt`` (one caption per line), or a
``captions.csv`` of ``path,caption`` rows (paths relative to the folder; a header row, repeated paths
for several captions and an optional third ``split`` column are allowed). Images in ``train/``,
``val/`` or ``test/`` subfolders take that split; the others a hashed one.
"""
from __future__ import annotations

import csv
from pathlib import Path

from .source_records import SPLIT_NAMES, hashed_split, make_record

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
CSV_NAMES = ("captions.csv", "captions.tsv")


def split_for(rel: Path, given: str | None = None) -> str:
    if given in SPLIT_NAMES:
        return given
    top = rel.parts[0] if len(rel.parts) > 1 else None
    return top if top in SPLIT_NAMES else hashed_split(rel.as_posix())


def read_csv(path: Path, root: Path) -> list[dict]:
    captions: dict[str, list[str]] = {}
    splits: dict[str, str] = {}
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.reader(f, delimiter="\t" if path.suffix == ".tsv" else ","):
            if len(row) < 2 or row[0].strip().lower() in ("path", "image", "file", "filename"):
                continue
            key = row[0].strip()
            captions.setdefault(key, []).append(row[1])
            if len(row) > 2 and row[2].strip():
                splits[key] = row[2].strip()
    return [make_record(Path(k).with_suffix("").as_posix(), root / k, caps, split_for(Path(k), splits.get(k)), "folder")
            for k, caps in captions.items()]


def read_folder(root: Path) -> list[dict]:
    """Records of every captioned image under root (the CSV when there is one, else the .txt files)."""
    table = next((root / n for n in CSV_NAMES if (root / n).is_file()), None)
    if table is not None:
        return read_csv(table, root)
    records = []
    for image in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS):
        txt = image.with_suffix(".txt")
        if txt.is_file():
            rel = image.relative_to(root)
            records.append(make_record(rel.with_suffix("").as_posix(), image,
                                       txt.read_text(encoding="utf-8").splitlines(), split_for(rel), "folder"))
    return records
