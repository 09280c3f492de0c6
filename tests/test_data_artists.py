"""The four Iconify artists of issue 22 (fluent-color, emojione-v1, fxemoji, streamline): how their icon names are
matched to concepts (small synthetic inputs, no npm, no rasterising), and their place in the committed split."""
from __future__ import annotations

import hashlib

import pytest

from crossgen.data import STYLES, split_config
from crossgen.data.emoji import match_slugs, slug, squash
from crossgen.data.records import split_of

NEW = {"fluent-color": "@iconify-json/fluent-emoji@1.2.7", "emojione-v1": "@iconify-json/emojione-v1@1.2.3",
       "fxemoji": "@iconify-json/fxemoji@1.2.2", "streamline": "@iconify-json/streamline-emojis@1.2.4"}
OLD = {"noto": "emoji-datasource-google@16.0.0", "openmoji": "openmoji@17.0.0",
       "fluent": "@iconify-json/fluent-emoji-flat@1.2.6", "noto-v1": "@iconify-json/noto-v1@1.2.5",
       "emojione": "@iconify-json/emojione@1.2.3", "twemoji": "emoji-datasource-twitter@16.0.0"}


def _c(cid: str, cldr: str, uname: str | None = None, category: str = "Smileys & Emotion") -> dict:
    return {"id": cid, "cldr": cldr, "uname": uname or cldr.upper(), "category": category}


CONCEPTS = [
    _c("1f34e", "red apple"),
    _c("1f6a1", "aerial tramway"),
    _c("1f495", "two hearts"),
    _c("1f44d", "thumbs up", "THUMBS UP SIGN"),
    _c("1f44d-1f3fb", "thumbs up: light skin tone", "THUMBS UP SIGN light skin tone"),
    _c("1f44d-1f3fc", "thumbs up: medium-light skin tone", "THUMBS UP SIGN medium-light skin tone"),
    _c("1f44d-1f3ff", "thumbs up: dark skin tone", "THUMBS UP SIGN dark skin tone"),
    _c("1f5a4", "black heart"),
    _c("2665", "heart suit", "BLACK HEART SUIT"),
    _c("1f90d", "white heart", "BLACK HEART"),  # made up: a Unicode name that squashes like another's CLDR name
    _c("1f3e7", "ATM sign", "AUTOMATED TELLER MACHINE"),
    _c("1f476", "baby"),
    _c("2601", "cloud"),
    _c("1f983", "turkey"),
    _c("1f1f9-1f1f7", "flag: Türkiye", "Türkiye Flag", "Flags"),
    _c("1f1ef-1f1f5", "flag: Japan", "Japan Flag", "Flags"),
    _c("1f5fe", "map of Japan"),
]


def _icons(*names: str, aliases: dict | None = None) -> dict:
    return {"icons": {n: {"body": "<g/>"} for n in names}, "aliases": aliases or {}}


def test_name_helpers() -> None:
    assert slug("A button (blood type)") == "a-button-blood-type" and slug("flag: Türkiye") == "flag-turkiye"
    assert squash("red apple") == "redapple" and squash("ATM sign") == "atmsign"
    assert squash("jack-o-lantern") == "jackolantern" and squash("keycap: #") == "keycappound"


def test_squashed_names_match_only_unambiguous() -> None:
    icons = _icons("redapple", "aerialtramway", "2hearts", "blackheart", "blackheartsuit", "automatedtellermachine",
                   "foxweary")
    got, stats = match_slugs(icons, CONCEPTS, names="squashed")
    assert got == {"1f34e": "redapple", "1f6a1": "aerialtramway", "2665": "blackheartsuit",
                   "1f3e7": "automatedtellermachine"}
    # 'blackheart' is the CLDR name of one concept and the Unicode name of another: left out, not guessed;
    # '2hearts' and 'foxweary' name nothing
    assert stats["ambiguous"] == 1 and stats["cldr"] == 2 and stats["unicode_name"] == 2
    assert stats["icons"] == 7 and stats["matched"] == 4 and stats["icons_unmatched"] == 3
    assert stats["rate"] == round(4 / 7, 3)


def test_squashed_name_of_two_concepts_is_left_out() -> None:
    concepts = [_c("a", "ab button"), _c("b", "a-b button"), _c("c", "red apple")]
    got, stats = match_slugs(_icons("abbutton", "redapple"), concepts, names="squashed")
    assert got == {"c": "redapple"} and stats["ambiguous"] == 1


def test_skin_tone_suffix_maps_to_the_toned_concept() -> None:
    icons = _icons("thumbs-up", "thumbs-up-light", "thumbs-up-medium-light", "thumbs-up-dark", "red-apple",
                   aliases={"thumbs-up-medium": {"parent": "thumbs-up"}})
    got, stats = match_slugs(icons, CONCEPTS, names="slug", tones=True)
    assert got == {"1f44d": "thumbs-up", "1f44d-1f3fb": "thumbs-up-light", "1f44d-1f3fc": "thumbs-up-medium-light",
                   "1f44d-1f3ff": "thumbs-up-dark", "1f34e": "red-apple"}
    assert stats["icons_unmatched"] == 0 and stats["rate"] == 1.0
    # without tones (the old styles) the suffixes name nothing: their matches are as before
    got, _ = match_slugs(icons, CONCEPTS, names="slug")
    assert got == {"1f44d": "thumbs-up", "1f34e": "red-apple"}


def test_own_slugs_exact_then_unambiguous_variants() -> None:
    icons = _icons("amazed-face", "baby-1", "baby-2", "baby-3", "cloud", "cloud-1", "red-apple-2", "turkey", "japan",
                   "thumbs-up")
    got, stats = match_slugs(icons, CONCEPTS, names="own-slug", flags=["turkey", "japan"])
    assert got == {"1f476": "baby-1", "2601": "cloud", "1f1ef-1f1f5": "japan", "1f44d": "thumbs-up"}
    # baby-2/-3 (skin tones it does not name) and red-apple-2 stay out, so do own names ('amazed-face');
    # 'turkey' in the Flags category is not the bird, and 'flag-turkey' names no concept (CLDR says Türkiye)
    assert "1f983" not in got and "1f34e" not in got
    assert stats["cldr"] == 2 and stats["variant"] == 2 and stats["matched"] == 4
    assert stats["icons_unmatched"] == 6
    # outside the Flags category the same name is the bird
    assert match_slugs(_icons("turkey"), CONCEPTS, names="own-slug")[0] == {"1f983": "turkey"}


def test_own_slug_that_names_two_concepts_is_left_out() -> None:
    concepts = [_c("a", "star"), _c("b", "glowing star", "STAR"), _c("c", "cloud")]
    got, stats = match_slugs(_icons("star", "cloud-1"), concepts, names="own-slug")
    assert got == {"c": "cloud-1"} and stats["ambiguous"] == 1


def test_unknown_naming_rule() -> None:
    with pytest.raises(ValueError, match="unknown icon naming"):
        match_slugs(_icons("x"), CONCEPTS, names="guess")


def test_split_pins_the_four_versions_and_keeps_the_old_ones() -> None:
    assert {s: STYLES[s] for s in NEW} == NEW
    assert {s: STYLES[s] for s in OLD} == OLD
    specs = split_config()["styles"]
    assert {s: specs[s]["licence"] for s in NEW} == {"fluent-color": "MIT", "emojione-v1": "CC-BY-SA-4.0",
                                                    "fxemoji": "Apache-2.0", "streamline": "CC-BY-4.0"}
    assert {s: specs[s]["names"] for s in NEW} == {"fluent-color": "slug", "emojione-v1": "slug",
                                                  "fxemoji": "squashed", "streamline": "own-slug"}
    assert specs["fluent-color"]["tones"] == "suffix" and "tones" not in specs["fluent"]
    assert specs["fluent"]["package"] == "@iconify-json/fluent-emoji-flat"  # 'fluent' is the flat one


def test_new_styles_train_only_twemoji_tests() -> None:
    specs = split_config()["styles"]
    assert [s for s, p in specs.items() if p["split"] == "test"] == ["twemoji"]
    assert all(specs[s]["split"] == "train" for s in NEW)
    ids = [f"{i:05x}" for i in range(0x1f300, 0x1f300 + 400)]
    for style in NEW:
        splits = [split_of(cid, style) for cid in ids]
        assert set(splits) == {"train", "val"}
        for cid, sp in zip(ids, splits):  # the same hash rule as every other training style
            bucket = int(hashlib.sha1(f"{cid}|{style}".encode()).hexdigest()[:8], 16) % 100
            assert sp == ("val" if bucket < 5 else "train")
