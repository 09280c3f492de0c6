"""Tiny external data sets in every supported on-disk format, generated into a temp dir by the tests.

Each image is a coloured shape on a plain background; its captions name the colour and the shape,
so even a few seconds of training can lower the losses.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (240, 210, 20)}
SHAPES = ("square", "circle")


def draw(i: int, size: tuple[int, int] = (48, 36)) -> tuple[Image.Image, list[str]]:
    """Image i and its captions (colour and shape cycle with i; sizes and offsets vary)."""
    colour = list(COLOURS)[i % len(COLOURS)]
    shape = SHAPES[(i // len(COLOURS)) % len(SHAPES)]
    img = Image.new("RGB", size, (245, 245, 240) if i % 3 else (200, 200, 200))
    w, h = size
    r = 8 + i % 5
    box = (w // 2 - r + i % 7 - 3, h // 2 - r, w // 2 + r + i % 7 - 3, h // 2 + r)
    ImageDraw.Draw(img).rectangle(box, fill=COLOURS[colour]) if shape == "square" else \
        ImageDraw.Draw(img).ellipse(box, fill=COLOURS[colour])
    return img, [f"a {colour} {shape}", f"{colour} {shape} on a plain background", f"the {shape} is {colour}"]


def split_of(i: int, n: int) -> str:
    return "val" if i % 6 == 5 else "test" if i % 12 == 11 and n > 12 else "train"


def make_coco(root: Path, n: int = 12) -> Path:
    for part in ("train", "val"):
        ids = [i for i in range(n) if (part == "val") == (split_of(i, n) != "train")]
        (root / f"{part}2017").mkdir(parents=True, exist_ok=True)
        images, anns = [], []
        for i in ids:
            img, caps = draw(i)
            name = f"{i + 1:012d}.jpg"
            img.save(root / f"{part}2017" / name, quality=95)
            images.append({"id": i + 1, "file_name": name, "width": img.width, "height": img.height})
            anns += [{"id": 100 * i + k, "image_id": i + 1, "caption": c} for k, c in enumerate(caps)]
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"captions_{part}2017.json").write_text(json.dumps({"images": images, "annotations": anns}))
    return root


def make_karpathy(root: Path, source: str, n: int = 12) -> Path:
    folder = root / ("flickr30k-images" if source == "flickr30k" else "Flicker8k_Dataset")
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(n):
        img, caps = draw(i)
        name = f"{1000 + i}_{source}.jpg"
        img.save(folder / name)
        split = split_of(i, n) if i % 4 else "restval"
        images.append({"filename": name, "imgid": i, "split": split,
                       "sentences": [{"raw": c, "tokens": c.split()} for c in caps]})
    (root / f"dataset_{source}.json").write_text(json.dumps({"dataset": source, "images": images}))
    return root


def make_results_csv(root: Path, n: int = 12) -> Path:
    """Kaggle's Flickr30k layout: flickr30k_images/results.csv and flickr30k_images/flickr30k_images/*.jpg."""
    folder = root / "flickr30k_images" / "flickr30k_images"
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["image_name| comment_number| comment"]
    for i in range(n):
        img, caps = draw(i)
        img.save(folder / f"{2000 + i}.jpg")
        lines += [f"{2000 + i}.jpg| {k}| {c}" for k, c in enumerate(caps)]
    (root / "flickr30k_images" / "results.csv").write_text("\n".join(lines) + "\n")
    return root


def make_token_txt(root: Path, n: int = 12) -> Path:
    """Flickr8k: Flicker8k_Dataset/*.jpg, Flickr8k_text/Flickr8k.token.txt and the split lists."""
    (root / "Flicker8k_Dataset").mkdir(parents=True, exist_ok=True)
    (root / "Flickr8k_text").mkdir(exist_ok=True)
    lines, lists = [], {"train": [], "val": [], "test": []}
    for i in range(n):
        img, caps = draw(i)
        name = f"{3000 + i}_ab.jpg"
        img.save(root / "Flicker8k_Dataset" / name)
        lines += [f"{name}#{k}\t{c}" for k, c in enumerate(caps)]
        lists[split_of(i, n)].append(name)
    (root / "Flickr8k_text" / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    for split, name in (("train", "trainImages"), ("val", "devImages"), ("test", "testImages")):
        (root / "Flickr8k_text" / f"Flickr_8k.{name}.txt").write_text("\n".join(lists[split]) + "\n")
    return root


def make_folder_txt(root: Path, n: int = 12) -> Path:
    """photo.png + photo.txt; the validation images in val/."""
    for i in range(n):
        img, caps = draw(i)
        folder = root / "val" if split_of(i, n) == "val" else root / "photos"
        folder.mkdir(parents=True, exist_ok=True)
        img.save(folder / f"img{i:03d}.png")
        (folder / f"img{i:03d}.txt").write_text("\n".join(caps) + "\n")
    return root


def make_folder_csv(root: Path, n: int = 12) -> Path:
    """captions.csv with a header, one row per caption, and a split column."""
    (root / "pics").mkdir(parents=True, exist_ok=True)
    rows = [["path", "caption", "split"]]
    for i in range(n):
        img, caps = draw(i)
        img.save(root / "pics" / f"{i}.jpg")
        rows += [[f"pics/{i}.jpg", c, split_of(i, n)] for c in caps]
    with open(root / "captions.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return root
