"""The record format of a built dataset (records.jsonl + 64px PNGs), its split rule, readers and the fixture.

A built dataset directory holds ``records.jsonl`` (one JSON object per (concept, style)), ``images/<style>/<id>.png``
(64x64 RGB, transparency composited on white) and ``build.json``. Record fields: ``id`` (code points, lower-case hex
joined with "-", FE0F removed), ``style``, ``split`` ("train" | "val" | "test"), ``image`` (path relative to the
dataset directory), ``name``, ``captions``, ``keywords``, ``category``, ``subcategory``.
"""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataNotFoundError
from ..preprocess import load_image, resize

IMAGE_SIZE = 64
SPLITS = ("train", "val", "test")
SPLIT_FILE = Path(__file__).with_name("split.json")
FIXTURE_STYLES = ("noto", "openmoji", "twemoji")
# Always in the fixture: apple, dog face, dog, cat face, thumbs up (+2 tones), flag of Japan, keycap #, red heart,
# automobile, then a few foods, animals and faces.
FIXTURE_ALWAYS = (
    "1f34e", "1f436", "1f415", "1f431", "1f44d", "1f44d-1f3fb", "1f44d-1f3ff", "1f1ef-1f1f5", "0023-20e3", "2764",
    "1f697", "1f355", "1f34c", "1f369", "1f354", "1f98a", "1f418", "1f408", "1f427", "1f600", "1f602", "1f60d",
    "1f622",
)


@functools.lru_cache(maxsize=None)
def split_config() -> dict[str, Any]:
    """The committed split (crossgen/data/split.json): styles with pinned packages, test style, validation rule."""
    return json.loads(SPLIT_FILE.read_text(encoding="utf-8"))


class _Styles(Mapping):
    """style -> "package@version", read from split.json on first use (no work at import time)."""

    def _data(self) -> dict[str, str]:
        return {s: f"{p['package']}@{p['version']}" for s, p in split_config()["styles"].items()}

    def __getitem__(self, key: str) -> str:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())

    def __repr__(self) -> str:
        return repr(self._data())


STYLES: Mapping[str, str] = _Styles()


def concept_id(codepoints: str) -> str:
    """'1F44D-1F3FB' / '2764-FE0F' -> '1f44d-1f3fb' / '2764': lower-case hex joined by '-', FE0F removed."""
    return "-".join(p for p in codepoints.lower().replace("_", "-").split("-") if p and p != "fe0f")


def split_of(cid: str, style: str, config: dict[str, Any] | None = None) -> str:
    """Split of one (concept, style): the style's split from split.json, with a hashed validation slice."""
    config = config or split_config()
    split = config["styles"][style]["split"]
    val = config["validation"]
    if split == val["from_split"]:
        bucket = int(hashlib.sha1(f"{cid}|{style}".encode()).hexdigest()[:8], 16) % 100
        if bucket < round(val["fraction"] * 100):
            return "val"
    return split


def write_records(path: str | Path, records: Iterable[dict]) -> int:
    """Write records as JSON lines; returns how many."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n


def load_records(data_dir: str | Path, split: str | Iterable[str] | None = None,
                 styles: str | Iterable[str] | None = None) -> list[dict]:
    """Records of a built dataset, optionally only some splits and/or styles, in file order."""
    path = Path(data_dir) / "records.jsonl"
    if not path.is_file():
        raise DataNotFoundError(f"No dataset at {data_dir} (missing records.jsonl). "
                                f"Build it with: python -m crossgen.data emoji --out {data_dir}")
    splits = {split} if isinstance(split, str) else (set(split) if split is not None else None)
    keep = {styles} if isinstance(styles, str) else (set(styles) if styles is not None else None)
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                if (splits is None or r["split"] in splits) and (keep is None or r["style"] in keep):
                    out.append(r)
    return out


def load_images(data_dir: str | Path, records: list[dict]) -> np.ndarray:
    """The records' images as uint8 (N, 64, 64, 3) RGB."""
    out = np.empty((len(records), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    for i, r in enumerate(records):
        img = load_image(Path(data_dir) / r["image"])
        out[i] = np.asarray(img) if img.size == (IMAGE_SIZE, IMAGE_SIZE) else resize(img, IMAGE_SIZE)
    return out


# --------------------------------------------------------------------------- fixture


def _fixture_ids(records: list[dict], styles: tuple[str, ...], n: int) -> list[str]:
    have: dict[str, set[str]] = {}
    for r in records:
        have.setdefault(r["id"], set()).add(r["style"])
    full = {cid for cid, s in have.items() if s.issuperset(styles)}
    chosen = [cid for cid in FIXTURE_ALWAYS if cid in full]
    rest = sorted(full - set(chosen), key=lambda c: hashlib.sha1(c.encode()).hexdigest())
    return chosen + rest[: max(0, n - len(chosen))]


def _attribution(packages: Mapping[str, str], styles: tuple[str, ...]) -> str:
    lines = ["# Attribution", "", "The images in this fixture are emoji artwork, rasterised or resized to 64x64 px "
             "and composited on white, from:", ""]
    for style in styles:
        p = split_config()["styles"][style]
        lines.append(f"- **{p['artwork']}** — `{packages.get(style, STYLES[style])}`, licence {p['licence']}.")
    lines += ["", "Names and keywords: Unicode CLDR annotations and tags as shipped in OpenMoji's data "
              "(CC-BY-SA-4.0), and emoji-datasource's names and short names (emoji-datasource data: MIT, "
              "Cal Henderson).", ""]
    return "\n".join(lines)


def build_fixture(data_dir: str | Path, out: str | Path, n: int = 100, styles: tuple[str, ...] = FIXTURE_STYLES,
                  command: str | None = None) -> dict[str, Any]:
    """Copy a deterministic selection of ~n concepts that all `styles` have (records, images, build.json,
    ATTRIBUTION.md) from a built dataset to `out`; returns the fixture's build info."""
    data_dir, out = Path(data_dir), Path(out)
    records = load_records(data_dir, styles=styles)
    ids = set(_fixture_ids(records, tuple(styles), n))
    missing = [c for c in FIXTURE_ALWAYS if c not in ids]
    if missing:
        print(f"fixture: not in all of {styles}, left out: {', '.join(missing)}")
    picked = [r for r in records if r["id"] in ids]
    if out.exists():
        shutil.rmtree(out / "images", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    for r in picked:
        dst = out / r["image"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_dir / r["image"], dst)
    write_records(out / "records.jsonl", picked)
    source = json.loads((data_dir / "build.json").read_text()) if (data_dir / "build.json").is_file() else {}
    packages = {s: source.get("packages", {}).get(s, STYLES[s]) for s in styles}
    counts: dict[str, dict[str, int]] = {}
    for r in picked:
        counts.setdefault(r["style"], {}).setdefault(r["split"], 0)
        counts[r["style"]][r["split"]] += 1
    info = {"dataset": "emoji-fixture", "concepts": len(ids), "packages": packages, "counts": counts,
            "source_date": source.get("date"), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": command}
    (out / "build.json").write_text(json.dumps(info, indent=2) + "\n")
    (out / "ATTRIBUTION.md").write_text(_attribution(packages, tuple(styles)))
    return info
