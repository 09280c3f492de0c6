"""Tests of the emoji dataset builder on a tiny synthetic package tree, and of the committed fixture."""
from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crossgen.data import STYLES, build_emoji, build_fixture, load_images, load_records, split_config
from crossgen.data.records import FIXTURE_ALWAYS

FIXTURE = Path(__file__).parent / "fixtures" / "emoji"
RED, BLUE = (255, 0, 0), (0, 0, 255)


def _square_svg(color: str, size: int = 72) -> str:
    q = size // 4
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}">'
            f'<rect x="{q}" y="{q}" width="{2 * q}" height="{2 * q}" fill="{color}"/></svg>')


def _png(path: Path) -> None:
    """64x64 RGBA: transparent with an opaque red square in the middle."""
    a = np.zeros((64, 64, 4), np.uint8)
    a[16:48, 16:48] = (*RED, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a, "RGBA").save(path)


def _pkg(root: Path, style: str) -> Path:
    spec = split_config()["styles"][style]
    d = root / f"{spec['package'].lstrip('@').replace('/', '-')}-{spec['version']}" / "package"
    d.mkdir(parents=True)
    (d / "package.json").write_text(json.dumps({"name": spec["package"], "version": spec["version"]}))
    return d


def _variation(unified: str, twitter: bool) -> dict:
    return {"unified": unified, "image": unified.lower() + ".png", "has_img_google": True, "has_img_twitter": twitter}


EMOJI = [
    {"unified": "1F34E", "name": "RED APPLE", "short_names": ["apple"], "image": "1f34e.png", "sort_order": 1,
     "category": "Food & Drink", "subcategory": "food-fruit", "has_img_google": True, "has_img_twitter": True},
    {"unified": "1F44D", "name": "THUMBS UP SIGN", "short_names": ["+1", "thumbsup"], "image": "1f44d.png",
     "sort_order": 2, "category": "People & Body", "subcategory": "hand-fingers-closed", "has_img_google": True,
     "has_img_twitter": True, "skin_variations": {"1F3FB": _variation("1F44D-1F3FB", False),
                                                  "1F3FD": _variation("1F44D-1F3FD", True)}},
    {"unified": "2764-FE0F", "name": "HEAVY BLACK HEART", "short_names": ["heart"], "image": "2764-fe0f.png",
     "sort_order": 3, "category": "Smileys & Emotion", "subcategory": "heart", "has_img_google": True,
     "has_img_twitter": True},
]
OPENMOJI = [
    {"hexcode": "1F34E", "annotation": "red apple", "tags": "apple, diet, fruit", "openmoji_tags": "Red"},
    {"hexcode": "1F44D", "annotation": "thumbs up", "tags": "+1, good, hand", "openmoji_tags": "like, thumbs up"},
    {"hexcode": "1F44D-1F3FB", "annotation": "thumbs up: light skin tone", "tags": "", "openmoji_tags": ""},
    {"hexcode": "2764-FE0F", "annotation": "red heart", "tags": "heart, love", "openmoji_tags": ""},
    {"hexcode": "E000", "annotation": "extra openmoji", "tags": "extra", "openmoji_tags": ""},
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("npm")
    for style, img_set in (("noto", "google"), ("twemoji", "twitter")):
        d = _pkg(root, style)
        (d / "emoji.json").write_text(json.dumps(EMOJI))
        for e in EMOJI + [v for base in EMOJI for v in base.get("skin_variations", {}).values()]:
            _png(d / "img" / img_set / "64" / e["image"])
    d = _pkg(root, "openmoji")
    (d / "data").mkdir()
    (d / "data" / "openmoji.json").write_text(json.dumps(OPENMOJI))
    (d / "color" / "svg").mkdir(parents=True)
    for r in OPENMOJI:
        (d / "color" / "svg" / f"{r['hexcode']}.svg").write_text(_square_svg("#ff0000"))
    (d / "color" / "svg" / "2764-FE0F.svg").write_text("<svg><this is broken")  # skipped and counted
    d = _pkg(root, "fluent")  # chars.json, an alias, fe0f in a code point, a taller icon of its own height
    (d / "icons.json").write_text(json.dumps({
        "prefix": "fluent-emoji-flat", "width": 32, "height": 32,
        "icons": {"red-apple": {"body": '<rect x="8" y="8" width="16" height="16" fill="#0000ff"/>'},
                  "thumbs-up": {"body": '<rect x="8" y="8" width="16" height="17" fill="#0000ff"/>', "height": 33},
                  "thumbs-up-light": {"body": '<rect x="8" y="8" width="16" height="16" fill="#0000ff"/>'},
                  "red-heart": {"body": '<rect x="0" y="8" width="16" height="16" fill="#0000ff"/>'}},
        "aliases": {"heart-alias": {"parent": "red-heart", "hFlip": True}}}))
    (d / "chars.json").write_text(json.dumps({"1f34e": "red-apple", "1f44d": "thumbs-up",
                                              "1f44d-1f3fb": "thumbs-up-light", "2764-fe0f": "heart-alias"}))
    d = _pkg(root, "noto-v1")  # slug of CLDR names; heart through an alias named after the Unicode name
    body = _square_svg("#ff0000", 128).split(">", 1)[1].rsplit("<", 1)[0]
    (d / "icons.json").write_text(json.dumps({
        "prefix": "noto-v1", "width": 128, "height": 128,
        "icons": {"red-apple": {"body": body}, "thumbs-up-light-skin-tone": {"body": body},
                  "heart-drawing": {"body": body}, "unknown-flag": {"body": body}},
        "aliases": {"heavy-black-heart": {"parent": "heart-drawing"}}}))
    (d / "chars.json").write_text("{}")
    tgz_dir = _pkg(root, "emojione")  # only as a .tgz, and without chars.json
    (tgz_dir / "icons.json").write_text(json.dumps({"prefix": "emojione", "width": 64, "height": 64,
                                                    "icons": {"red-apple": {"body": body}}}))
    with tarfile.open(root / f"{tgz_dir.parent.name}.tgz", "w:gz") as tf:
        tf.add(tgz_dir, arcname="package")
    shutil.rmtree(tgz_dir.parent)
    d = _pkg(root, "fluent-color")  # CLDR slugs, skin tones as a -medium suffix, no chars.json
    (d / "icons.json").write_text(json.dumps({"prefix": "fluent-emoji", "width": 128, "height": 128,
                                              "icons": {"red-apple": {"body": body}, "thumbs-up-medium": {"body": body},
                                                        "thumbs-up-purple": {"body": body}}}))
    d = _pkg(root, "emojione-v1")  # CLDR slugs
    (d / "icons.json").write_text(json.dumps({"prefix": "emojione-v1", "width": 128, "height": 128,
                                              "icons": {"thumbs-up": {"body": body}}}))
    d = _pkg(root, "fxemoji")  # squashed CLDR / Unicode names
    (d / "icons.json").write_text(json.dumps({"prefix": "fxemoji", "width": 128, "height": 128,
                                              "icons": {"redapple": {"body": body}, "heavyblackheart": {"body": body},
                                                        "foxweary": {"body": body}}}))
    d = _pkg(root, "streamline")  # own slugs: numbered drawings, country names in the Flags category
    (d / "icons.json").write_text(json.dumps({"prefix": "streamline-emojis", "width": 128, "height": 128,
                                              "icons": {"red-apple-1": {"body": body}, "red-apple-2": {"body": body},
                                                        "thumbs-up-2": {"body": body}}}))
    (d / "metadata.json").write_text(json.dumps({"categories": {"Food Drink": ["red-apple-1", "red-apple-2"],
                                                                "Smiley People": ["thumbs-up-2"]}}))
    out = tmp_path_factory.mktemp("emoji")
    info = build_emoji(out, source=root, cache=root / "cache", workers=1, command="test")
    return out, info


def test_records_styles_and_split(built: tuple[Path, dict]) -> None:
    out, info = built
    recs = load_records(out)
    got = {(r["id"], r["style"]) for r in recs}
    ids = {"1f34e", "1f44d", "1f44d-1f3fb", "1f44d-1f3fd", "2764"}
    expected = ({(i, "noto") for i in ids} | {(i, "twemoji") for i in ids - {"1f44d-1f3fb"}}
                | {(i, "openmoji") for i in ids - {"2764", "1f44d-1f3fd"}}
                | {(i, "fluent") for i in ids - {"1f44d-1f3fd"}}
                | {("1f34e", "noto-v1"), ("1f44d-1f3fb", "noto-v1"), ("2764", "noto-v1"), ("1f34e", "emojione")}
                | {("1f34e", "fluent-color"), ("1f44d-1f3fd", "fluent-color"), ("1f44d", "emojione-v1"),
                   ("1f34e", "fxemoji"), ("2764", "fxemoji"), ("1f34e", "streamline")})
    assert got == expected and len(recs) == len(got)
    assert info["failed"]["openmoji"] == 1 and info["records"] == len(recs)
    assert info["matches"]["noto-v1"]["matched"] == 3 and info["matches"]["noto-v1"]["icons_unmatched"] == 1
    assert info["matches"]["emojione"]["matched"] == 1 and info["matches"]["fluent"]["matched"] == 4
    assert info["matches"]["fxemoji"] == {"via": "squashed", "cldr": 1, "unicode_name": 1, "icons": 3, "matched": 2,
                                          "icons_unmatched": 1, "rate": 0.667}
    assert info["matches"]["streamline"]["variant"] == 1 and info["matches"]["streamline"]["icons_unmatched"] == 2
    assert info["matches"]["fluent-color"]["rate"] == 0.667 and info["matches"]["emojione-v1"]["rate"] == 1.0
    assert info["licences"] == {s: p["licence"] for s, p in split_config()["styles"].items()}
    for r in recs:
        bucket = int(hashlib.sha1(f"{r['id']}|{r['style']}".encode()).hexdigest()[:8], 16) % 100
        assert r["split"] == ("test" if r["style"] == "twemoji" else ("val" if bucket < 5 else "train"))
        assert r["image"] == f"images/{r['style']}/{r['id']}.png"
    assert json.loads((out / "build.json").read_text())["packages"] == dict(STYLES)
    assert {r["style"] for r in load_records(out, split="test")} == {"twemoji"}
    assert len(load_records(out, styles=["noto-v1", "emojione"])) == 4
    assert {r["split"] for r in load_records(out, styles=["fluent-color", "emojione-v1", "fxemoji", "streamline"])} \
        <= {"train", "val"}


def test_names_keywords_captions(built: tuple[Path, dict]) -> None:
    by = {r["id"]: r for r in load_records(built[0], styles="noto")}
    assert by["1f34e"]["name"] == "red apple"
    assert by["1f34e"]["captions"] == ["red apple", "apple diet fruit red", "apple", "diet", "fruit", "red"]
    assert by["1f34e"]["category"] == "Food & Drink" and by["1f34e"]["subcategory"] == "food-fruit"
    assert by["1f44d"]["keywords"] == ["plus 1", "good", "hand", "like", "thumbsup"]  # minus the name itself
    assert by["1f44d-1f3fb"]["name"] == "thumbs up light skin tone"
    assert by["1f44d-1f3fb"]["keywords"] == ["plus 1", "good", "hand", "like", "thumbs up", "thumbsup"]
    assert by["1f44d-1f3fd"]["name"] == "thumbs up medium skin tone"  # not in OpenMoji: base name + tone
    assert by["2764"]["name"] == "red heart" and by["2764"]["keywords"] == ["heart", "love"]


def test_images_composited_and_round_trip(built: tuple[Path, dict]) -> None:
    out = built[0]
    recs = load_records(out)
    images = load_images(out, recs)
    assert images.shape == (len(recs), 64, 64, 3) and images.dtype == np.uint8
    for r, a in zip(recs, images):
        with Image.open(out / r["image"]) as im:
            assert im.size == (64, 64) and im.mode == "RGB"
            assert np.array_equal(np.asarray(im), a)
        assert tuple(a[1, 1]) == (255, 255, 255), r  # transparency composited on white
        assert tuple(a[32, 32]) in (RED, BLUE) or r["style"] == "fluent", r
    fl = {r["id"]: a for r, a in zip(recs, images) if r["style"] == "fluent"}
    assert tuple(fl["1f34e"][32, 32]) == BLUE
    assert fl["2764"][32, 48].tolist() == list(BLUE) and fl["2764"][32, 16].tolist() == [255, 255, 255]  # hFlip
    assert load_images(out, []).shape == (0, 64, 64, 3)


def test_fixture_from_build(built: tuple[Path, dict], tmp_path: Path) -> None:
    info = build_fixture(built[0], tmp_path / "fx", n=10)
    recs = load_records(tmp_path / "fx")
    assert info["concepts"] == 2 and len(recs) == 6  # only apple and thumbs up have all three styles
    assert (tmp_path / "fx" / "ATTRIBUTION.md").read_text().count("licence") == 3


def test_committed_fixture() -> None:
    recs = load_records(FIXTURE)
    ids = {r["id"] for r in recs}
    assert 90 <= len(ids) <= 110 and len(recs) == 3 * len(ids)
    assert {r["style"] for r in recs} == {"noto", "openmoji", "twemoji"}
    assert set(FIXTURE_ALWAYS) <= ids
    assert all((r["split"] == "test") == (r["style"] == "twemoji") for r in recs)
    assert {r["split"] for r in recs} <= {"train", "val", "test"}
    images = load_images(FIXTURE, recs)
    assert images.shape == (len(recs), 64, 64, 3) and images.dtype == np.uint8
    assert (images < 250).any(axis=(1, 2, 3)).all()  # none blank
    assert sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file()) <= 2 * 2**20
    assert all(r["name"] and r["captions"][0] == r["name"] for r in recs)
