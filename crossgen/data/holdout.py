"""The compositional hold-out of issue 18: colour x object and skin tone x person concepts kept out of training.

The rule, applied to the concept names of a built dataset (``build_holdout``), written to the committed
``crossgen/data/holdout.json`` by ``python -m crossgen.data holdout`` and read back with ``load_holdout`` /
``held_out_ids``. Everything is decided by the names alone (one name per concept id), so the same records give
the same file on any machine.

**colour x object.** A concept is "<colour> <object>" when its name (a name with a skin tone phrase never is) is
one of the colour words of ``COLOURS`` (longest first, so "light blue heart" is light blue + heart), one space,
then a non-empty rest, its object ("large blue circle" is not: its name starts with "large"). An object is
eligible when it comes in at least ``MIN_COLOURS`` (3) colours. For each eligible object, in sorted order, its
colours are ranked by ``sha256(SALT|name)`` and taken in that order as long as the colour is still kept on at least
one other eligible object (a colour that only one object has is never held out), until
``k = max(1, floor(n * FRACTION + 0.5))`` of its n colours are held out, and never so many that the object keeps
fewer than ``MIN_KEPT_COLOURS`` (2). Where no further colour passes that check, the object holds out fewer (none on
the committed dataset).

**skin tone x person.** A toned variant is a name with exactly one of the five tone phrases ("thumbs up medium
skin tone", "man light skin tone beard"); its concept is the name with the phrase taken out ("thumbs up",
"man beard"). Two-tone names (handshakes, couples: "handshake light skin tone dark skin tone") are never
candidates and stay in training, as do the untoned concept and the bare modifiers ("light skin tone"). A
toned concept is one with all five single-tone
variants. ``k = max(1, floor(N * FRACTION + 0.5))`` of the N toned concepts, the first by ``sha256(SALT|concept)``,
each lose one tone: in that order, the tone is the first by ``sha256(SALT|concept|tone)`` among the tones held out
least often so far, so the tones are spread evenly (counts differ by at most one) and every concept keeps its
other four tones, every tone stays on the other concepts.

**prompts no emoji draws.** ``UNDRAWN``: 42 "<colour> <object>" prompts, two off-nature colours for each of 21
objects that are concepts of their own (or, for "apple", the object of "red apple" and "green apple"); no emoji is
named so. They are kept out of training like the hold-out (no augmented caption may name them), as are the 20 of
``VALIDATION_UNDRAWN`` on other objects, which choose the generator's design (UNDRAWN only reports it).

``object_of`` is the object of any name: its tone phrase and its leading colour word taken out, so every colour
and tone of one thing share it ("purple heart" and "red heart" -> "heart"; "thumbs up dark skin tone" -> "thumbs
up"). The object reader of the evaluation classifies drawings into these objects.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HOLDOUT_FILE = Path(__file__).with_name("holdout.json")
VERSION = 1
SALT = "crossgen-holdout-v1"
FRACTION = 0.2
MIN_COLOURS = 3  # an object is eligible with at least this many colours
MIN_KEPT_COLOURS = 2  # an object keeps at least this many colours in training
COLOURS = ("light blue", "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white",
           "grey", "gray")
# As crossgen.postprocess.skin_tone spells them (the data layer may not import the post-processing).
TONES = ("light", "medium light", "medium", "medium dark", "dark")
TONE_PHRASE = re.compile(r"\b(medium light|medium dark|light|medium|dark) skin tone\b")


UNDRAWN = tuple((colour, obj) for obj, colours in (
    ("apple", "blue purple"), ("banana", "purple blue"), ("cat face", "green blue"), ("dog face", "purple green"),
    ("fish", "green pink"), ("tulip", "blue yellow"), ("umbrella", "green orange"), ("strawberry", "blue purple"),
    ("carrot", "blue purple"), ("frog", "red blue"), ("pig face", "green blue"), ("sun", "green purple"),
    ("cactus", "red blue"), ("lemon", "blue red"), ("mushroom", "blue green"), ("crab", "green blue"),
    ("grapes", "yellow blue"), ("ghost", "green red"), ("taxi", "pink green"), ("octopus", "green blue"),
    ("tiger face", "blue pink")) for colour in colours.split())
# Twenty more, on other objects, for choosing the generator's design on validation (UNDRAWN is for reporting).
VALIDATION_UNDRAWN = tuple((colour, obj) for obj, colour in (
    ("rabbit face", "green"), ("cow face", "purple"), ("horse face", "blue"), ("mouse face", "orange"),
    ("bear", "pink"), ("penguin", "red"), ("snail", "blue"), ("butterfly", "red"), ("rose", "blue"),
    ("sunflower", "purple"), ("pear", "red"), ("peach", "green"), ("cherries", "blue"), ("watermelon", "purple"),
    ("pineapple", "pink"), ("hamburger", "blue"), ("rocket", "green"), ("bus", "purple"), ("snowman", "red"),
    ("elephant", "yellow")))


def object_of(name: str) -> str:
    """The object of a concept name: its skin tone phrase and its leading colour word taken out."""
    name = " ".join(TONE_PHRASE.sub(" ", " ".join(name.split())).split())
    parsed = parse_colour(name)
    return parsed[1] if parsed else name


def undrawn_prompts() -> list[dict[str, str]]:
    """The prompts no emoji draws, as {"prompt", "colour", "object"}."""
    return [{"prompt": f"{c} {o}", "colour": c, "object": o} for c, o in UNDRAWN]


def _rank(*parts: str) -> int:
    return int(hashlib.sha256("|".join((SALT, *parts)).encode()).hexdigest(), 16)


def _quota(n: int) -> int:
    """About a fifth of n, at least one (half rounds up, not to even)."""
    return max(1, int(n * FRACTION + 0.5))


def concept_names(records: Iterable[dict]) -> dict[str, str]:
    """id -> name, the first name seen for each id."""
    out: dict[str, str] = {}
    for r in records:
        out.setdefault(r["id"], " ".join(r["name"].split()))
    return out


def parse_colour(name: str) -> tuple[str, str] | None:
    """'light blue heart' -> ('light blue', 'heart'); None when the name is not '<colour> <object>'."""
    if TONE_PHRASE.search(name):
        return None
    for colour in sorted(COLOURS, key=len, reverse=True):
        if name.startswith(colour + " ") and name[len(colour) + 1:].strip():
            return colour, name[len(colour) + 1:].strip()
    return None


def parse_tone(name: str) -> tuple[str, str] | None:
    """'man light skin tone beard' -> ('man beard', 'light'); None without exactly one tone phrase."""
    found = list(TONE_PHRASE.finditer(name))
    if len(found) != 1:
        return None
    m = found[0]
    concept = " ".join((name[:m.start()] + " " + name[m.end():]).split())
    return (concept, m.group(1)) if concept else None


def _colour_object(names: dict[str, str]) -> dict[str, Any]:
    by_object: dict[str, dict[str, str]] = {}  # object -> colour -> id
    for cid, name in sorted(names.items()):
        parsed = parse_colour(name)
        if parsed:
            colour, obj = parsed
            by_object.setdefault(obj, {}).setdefault(colour, cid)
    objects = {o: dict(sorted(c.items())) for o, c in sorted(by_object.items()) if len(c) >= MIN_COLOURS}
    kept = {o: set(c) for o, c in objects.items()}
    held: list[dict[str, str]] = []
    for obj, colours in objects.items():
        want = min(_quota(len(colours)), len(colours) - MIN_KEPT_COLOURS)
        taken = 0
        for colour in sorted(colours, key=lambda c: _rank(f"{c} {obj}")):
            if taken >= want:
                break
            if not any(colour in kept[o] for o in objects if o != obj):
                continue  # the colour would be seen on no other object: repair by taking the next one
            kept[obj].discard(colour)
            taken += 1
            cid = colours[colour]
            held.append({"id": cid, "name": names[cid], "object": obj, "colour": colour})
    colour_counts: dict[str, int] = {}
    for o in objects:
        for c in objects[o]:
            colour_counts[c] = colour_counts.get(c, 0) + 1
    return {
        "objects": {o: {"colours": c, "held_out": sorted(set(c) - kept[o])} for o, c in objects.items()},
        "held_out": sorted(held, key=lambda h: (h["object"], h["colour"])),
        "counts": {"objects": len(objects), "concepts": sum(len(c) for c in objects.values()),
                   "held_out": len(held), "colours": dict(sorted(colour_counts.items()))},
    }


def _skin_tone(names: dict[str, str]) -> dict[str, Any]:
    variants: dict[str, dict[str, str]] = {}  # concept -> tone -> id
    for cid, name in sorted(names.items()):
        parsed = parse_tone(name)
        if parsed:
            concept, tone = parsed
            variants.setdefault(concept, {}).setdefault(tone, cid)
    toned = {c: {t: v[t] for t in TONES} for c, v in sorted(variants.items()) if set(v) == set(TONES)}
    chosen = sorted(toned, key=_rank)[:_quota(len(toned))] if toned else []
    per_tone = {t: 0 for t in TONES}
    held: list[dict[str, str]] = []
    for concept in chosen:
        least = min(per_tone.values())
        tone = min((t for t in TONES if per_tone[t] == least), key=lambda t: _rank(concept, t))
        per_tone[tone] += 1
        cid = toned[concept][tone]
        held.append({"id": cid, "name": names[cid], "concept": concept, "tone": tone})
    return {
        "concepts": toned,
        "held_out": sorted(held, key=lambda h: (h["concept"], TONES.index(h["tone"]))),
        "counts": {"concepts": len(toned), "variants": 5 * len(toned), "held_out": len(held), "per_tone": per_tone},
    }


RULE = ("colour x object: names '<colour> <object>' (colour words " + ", ".join(COLOURS) + ", longest first; "
        "names with a skin tone phrase excluded); objects in >= 3 colours; per object (sorted) its colours by "
        "sha256(salt|name), each taken while it stays on another eligible object, until max(1, floor(n/5 + 1/2)) "
        "held out and >= 2 kept. skin tone x person: names with exactly one tone phrase; concept = name without it; "
        "concepts with all five tones; the first max(1, floor(N/5 + 1/2)) by sha256(salt|concept) each lose the "
        "tone first by sha256(salt|concept|tone) among the least held-out tones so far; two-tone names stay in "
        "training.")


def build_holdout(records: Iterable[dict]) -> dict[str, Any]:
    """The hold-out of these records (dicts with at least "id" and "name"), as holdout.json holds it."""
    names = concept_names(records)
    colour = _colour_object(names)
    tone = _skin_tone(names)
    ids = sorted({h["id"] for h in colour["held_out"]} | {h["id"] for h in tone["held_out"]})
    return {
        "description": "Compositional hold-out of issue 18 (colour x object, skin tone x person), built by "
                       "python -m crossgen.data holdout from the dataset's concept names; rule in "
                       "crossgen/data/holdout.py and docs/data.md. Used by the composition evaluation of issue 18; "
                       "not yet removed from training.",
        "version": VERSION,
        "rule": RULE,
        "parameters": {"salt": SALT, "fraction": FRACTION, "min_colours": MIN_COLOURS,
                       "min_kept_colours": MIN_KEPT_COLOURS, "colours": list(COLOURS), "tones": list(TONES)},
        "counts": {"concepts": len(names), "colour_object": colour["counts"]["held_out"],
                   "skin_tone": tone["counts"]["held_out"], "held_out": len(ids)},
        "ids": ids,
        "colour_object": colour,
        "skin_tone": tone,
    }


def write_holdout(info: dict[str, Any], path: str | Path = HOLDOUT_FILE) -> Path:
    """Write holdout.json (one-space indent, keys in the order build_holdout gives them)."""
    path = Path(path)
    path.write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


@functools.lru_cache(maxsize=None)
def _load(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def load_holdout(path: str | Path | None = None) -> dict[str, Any]:
    """The committed hold-out (crossgen/data/holdout.json), or the one at path."""
    return _load(str(path or HOLDOUT_FILE))


def held_out_ids(group: str | None = None, path: str | Path | None = None) -> set[str]:
    """Concept ids held out: all, or one group ("colour_object" or "skin_tone")."""
    info = load_holdout(path)
    if group is None:
        return set(info["ids"])
    if group not in ("colour_object", "skin_tone"):
        raise ValueError(f"unknown hold-out group {group!r}: colour_object or skin_tone")
    return {h["id"] for h in info[group]["held_out"]}
