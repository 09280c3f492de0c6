"""The compositional hold-out (crossgen/data/holdout.py, the committed crossgen/data/holdout.json).

Fast, no model: the rule's properties on the committed file itself, build_holdout on small synthetic record
lists, and (only where data/emoji is built) that rebuilding from the dataset reproduces the committed file.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from crossgen.data.holdout import (COLOURS, HOLDOUT_FILE, TONES, build_holdout, held_out_ids, load_holdout,
                                   parse_colour, parse_tone)

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT / "data" / "emoji" / "records.jsonl"


@pytest.fixture(scope="module")
def committed() -> dict:
    return json.loads(HOLDOUT_FILE.read_text(encoding="utf-8"))


def rec(cid: str, name: str) -> dict:
    return {"id": cid, "name": name, "style": "noto", "split": "train"}


def toned(base: str, cid: str, tone_at_end: bool = True) -> list[dict]:
    out = []
    for i, t in enumerate(TONES):
        out.append(rec(f"{cid}-{i}", f"{base} {t} skin tone" if tone_at_end else f"{base} {t} skin tone beard"))
    return out


def colour_records(objects: dict[str, list[str]]) -> list[dict]:
    return [rec(f"{obj}-{c}", f"{c} {obj}") for obj, cs in objects.items() for c in cs]


def kept_colours(info: dict) -> dict[str, set[str]]:
    return {o: set(v["colours"]) - set(v["held_out"]) for o, v in info["colour_object"]["objects"].items()}


def check_properties(info: dict) -> None:
    """The rule's promises, read from a hold-out dict alone."""
    co, st = info["colour_object"], info["skin_tone"]
    kept = kept_colours(info)
    for obj, v in co["objects"].items():
        n = len(v["colours"])
        assert n >= info["parameters"]["min_colours"]
        assert len(v["held_out"]) == max(1, min(int(n / 5 + 0.5), n - 2)), obj  # about a fifth, at least one
        assert len(kept[obj]) >= 2, obj
    for h in co["held_out"]:
        assert h["colour"] in co["objects"][h["object"]]["held_out"]
        assert co["objects"][h["object"]]["colours"][h["colour"]] == h["id"]
        assert h["name"] == f"{h['colour']} {h['object']}"
        assert any(h["colour"] in kept[o] for o in kept if o != h["object"]), h  # colour still seen elsewhere
    assert sum(len(v["held_out"]) for v in co["objects"].values()) == len(co["held_out"]) == co["counts"]["held_out"]

    concepts = st["concepts"]
    assert all(list(v) == list(TONES) for v in concepts.values())
    held = {h["concept"]: h for h in st["held_out"]}
    assert len(held) == len(st["held_out"])  # one tone per concept at most: the other four stay
    assert len(held) == (max(1, int(len(concepts) / 5 + 0.5)) if concepts else 0)
    for c, h in held.items():
        assert concepts[c][h["tone"]] == h["id"]
    for t in TONES if concepts else ():
        assert sum(c not in held or held[c]["tone"] != t for c in concepts) > 0  # every tone still seen elsewhere
    per_tone = [sum(h["tone"] == t for h in held.values()) for t in TONES]
    assert max(per_tone) - min(per_tone) <= 1
    assert dict(zip(TONES, per_tone)) == st["counts"]["per_tone"]

    ids = {h["id"] for h in co["held_out"]} | {h["id"] for h in st["held_out"]}
    assert set(info["ids"]) == ids and info["ids"] == sorted(ids)
    assert info["counts"]["held_out"] == len(ids)


# --------------------------------------------------------------------------- the committed file


def test_committed_file_keeps_the_rules_promises(committed):
    check_properties(committed)


def test_committed_file_has_both_groups_of_the_expected_size(committed):
    co, st = committed["colour_object"], committed["skin_tone"]
    assert {"heart", "circle", "square", "book"} <= set(co["objects"])  # objects in >= 3 colours
    assert 0.15 <= co["counts"]["held_out"] / co["counts"]["concepts"] <= 0.3
    assert st["counts"]["concepts"] >= 300 and 0.19 <= st["counts"]["held_out"] / st["counts"]["concepts"] <= 0.21
    assert committed["parameters"]["tones"] == list(TONES) and committed["parameters"]["colours"] == list(COLOURS)
    assert "not yet removed from training" in committed["description"]


def test_committed_file_is_what_the_rule_gives_on_its_own_names(committed):
    """The file lists every candidate (all colours of each object, all five tones of each concept): rebuilding
    from those names alone gives the same choice, so the file is consistent with the code's rule."""
    records = [rec(cid, f"{c} {o}") for o, v in committed["colour_object"]["objects"].items()
               for c, cid in v["colours"].items()]
    names = {h["id"]: h["name"] for h in committed["skin_tone"]["held_out"]}
    for concept, tones in committed["skin_tone"]["concepts"].items():
        for t, cid in tones.items():
            # Held-out names are in the file; others are rebuilt with the tone at the end (their concept is enough).
            records.append(rec(cid, names.get(cid, f"{concept} {t} skin tone")))
    rebuilt = build_holdout(records)
    assert rebuilt["colour_object"] == committed["colour_object"]
    assert rebuilt["skin_tone"] == committed["skin_tone"]
    assert rebuilt["ids"] == committed["ids"]


def test_load_and_ids(committed):
    assert load_holdout() == committed
    assert held_out_ids() == set(committed["ids"])
    assert held_out_ids("colour_object") | held_out_ids("skin_tone") == held_out_ids()
    assert not held_out_ids("colour_object") & held_out_ids("skin_tone")
    with pytest.raises(ValueError):
        held_out_ids("shape")


def test_tones_match_the_skin_tone_module():
    from crossgen.postprocess import skin_tone

    assert TONES == skin_tone.TONES


@pytest.mark.skipif(not DATASET.is_file(), reason="data/emoji is not built (python -m crossgen.data emoji); the "
                                                  "committed holdout.json is still checked by the tests above")
def test_rebuilding_from_the_dataset_reproduces_the_committed_file(committed):
    from crossgen.data import load_records

    assert build_holdout(load_records(DATASET.parent)) == committed


# --------------------------------------------------------------------------- parsing


def test_parse_colour():
    assert parse_colour("red heart") == ("red", "heart")
    assert parse_colour("light blue heart") == ("light blue", "heart")
    assert parse_colour("black square button") == ("black", "square button")
    assert parse_colour("large blue diamond") is None
    assert parse_colour("light bulb") is None
    assert parse_colour("red") is None
    assert parse_colour("man light skin tone red hair") is None


def test_parse_tone():
    assert parse_tone("thumbs up medium light skin tone") == ("thumbs up", "medium light")
    assert parse_tone("thumbs up light skin tone") == ("thumbs up", "light")
    assert parse_tone("man dark skin tone beard") == ("man beard", "dark")
    assert parse_tone("handshake light skin tone dark skin tone") is None  # two-tone: never a candidate
    assert parse_tone("medium skin tone") is None  # the bare modifier has no concept
    assert parse_tone("thumbs up") is None


# --------------------------------------------------------------------------- synthetic records

SYNTH = {
    "heart": ["red", "orange", "yellow", "green", "blue", "purple", "pink", "black", "white", "brown", "grey"],
    "circle": ["red", "orange", "yellow", "green", "blue", "purple", "black", "white"],
    "square": ["red", "orange", "yellow", "green", "blue"],
    "book": ["green", "blue", "orange"],
    "apple": ["red", "green"],  # two colours: not eligible
}


def synthetic() -> list[dict]:
    records = colour_records(SYNTH)
    for i, base in enumerate(["thumbs up", "waving hand", "man", "woman", "person", "baby", "ninja", "fairy",
                              "mage", "pilot", "judge", "farmer", "cook", "artist"]):
        records += toned(base, f"t{i}", tone_at_end=i % 3 != 0)
    records += [rec("hs", "handshake light skin tone dark skin tone"), rec("hs1", "handshake light skin tone"),
                rec("mod", "light skin tone"), rec("tu", "thumbs up"), rec("x", "grinning face")]
    return records


def test_build_is_deterministic_and_independent_of_record_order():
    records = synthetic()
    first = build_holdout(records)
    shuffled = records[:]
    random.Random(1).shuffle(shuffled)
    assert build_holdout(shuffled) == first
    assert build_holdout(records + records) == first  # one concept per id, whatever the number of styles
    check_properties(first)


def test_synthetic_groups():
    info = build_holdout(synthetic())
    co, st = info["colour_object"], info["skin_tone"]
    assert set(co["objects"]) == {"heart", "circle", "square", "book"}  # apple has two colours
    assert {o: len(v["held_out"]) for o, v in co["objects"].items()} == {"heart": 2, "circle": 2, "square": 1,
                                                                          "book": 1}
    held_colours = {h["colour"] for h in co["held_out"]}
    assert not held_colours & {"pink", "brown", "grey"}  # on the heart only: never held out
    assert "apple-red" not in info["ids"] and "apple-green" not in info["ids"]
    assert len(st["concepts"]) == 14 and "handshake" not in st["concepts"]  # one single-tone variant only
    assert st["counts"]["held_out"] == 3  # round(14 / 5)
    assert {"hs", "hs1", "mod", "tu", "x"}.isdisjoint(info["ids"])
    assert all(h["name"].endswith("skin tone") or h["name"].endswith("skin tone beard") for h in st["held_out"])


def test_a_colour_is_never_held_out_on_every_object_that_has_it():
    # Three objects in the same five colours, one held out each: never the same colour on all three.
    objects = {o: ["black", "white", "red", "blue", "green"] for o in ("cube", "star", "moon")}
    info = build_holdout(colour_records(objects))
    check_properties(info)
    for colour in objects["cube"]:
        assert sum(colour in v["held_out"] for v in info["colour_object"]["objects"].values()) <= 2


def test_repair_takes_the_next_colour_and_gives_up_rather_than_break_the_promise():
    # Only red is on both objects. The moon (first in sorted order) can only lose red, whatever the hash ranks
    # first; the star then cannot lose red (no longer seen on the moon) nor blue or green (seen nowhere else).
    info = build_holdout(colour_records({"moon": ["red", "pink", "brown"], "star": ["red", "blue", "green"]}))
    objects = info["colour_object"]["objects"]
    assert objects["moon"]["held_out"] == ["red"] and objects["star"]["held_out"] == []
    assert info["ids"] == ["moon-red"]


def test_a_colour_only_one_object_has_is_never_held_out():
    info = build_holdout(colour_records({"star": ["red", "blue", "green"], "moon": ["red", "blue", "green"],
                                         "gem": ["pink", "purple", "brown", "white", "black"]}))
    objects = info["colour_object"]["objects"]
    assert objects["gem"]["held_out"] == []  # none of its colours is on another object
    assert len(objects["star"]["held_out"]) == len(objects["moon"]["held_out"]) == 1
    assert objects["star"]["held_out"] != objects["moon"]["held_out"]


def test_at_least_one_and_about_a_fifth():
    for n in range(3, 12):
        cs = list(COLOURS[1:1 + n])
        info = build_holdout(colour_records({"star": cs, "moon": cs}))
        held = {o: len(v["held_out"]) for o, v in info["colour_object"]["objects"].items()}
        assert held["star"] == max(1, int(n / 5 + 0.5)), n
        check_properties(info)


def test_no_candidates_gives_an_empty_holdout():
    info = build_holdout([rec("a", "grinning face"), rec("b", "red apple"), rec("c", "thumbs up light skin tone")])
    assert info["ids"] == [] and info["colour_object"]["objects"] == {} and info["skin_tone"]["concepts"] == {}
