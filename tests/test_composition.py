"""The composition evaluation (crossgen/evaluation/composition.py, issue 18): its readers and groups on the committed fixture,
and the `composition` section on the fixture with the shipped checkpoints (no quality floors yet)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from crossgen.data import load_records
from crossgen.data.holdout import held_out_ids, object_of, parse_colour, undrawn_prompts
from crossgen.evaluation.composition import GROUPS, Item, Retrieval, build_groups, min_pairwise, recoloured, retone
from crossgen.imaging.colour import COLOURS, read_colour, read_colours, recolour
from crossgen.postprocess.skin_tone import load_skin_tone
from crossgen.preprocess import normalize_text
from crossgen.train.dataset import load_split

from helpers import FIXTURE, ROOT

SHIPPED = ROOT / "checkpoints"


@pytest.fixture(scope="module")
def fixture_train():
    return load_split(FIXTURE, "train")


def coloured_drawings(split) -> list[tuple[str, torch.Tensor]]:
    """(colour word, image in [0, 1]) of the drawings whose names start with a colour word read_colour names."""
    out = []
    for r, im in zip(split.records, split.images):
        parsed = parse_colour(normalize_text(r["name"]))
        if parsed and parsed[0] in COLOURS:
            out.append((parsed[0], im.float() / 255))
    return out


def test_colour_reader_names_the_colour_of_fixture_drawings(fixture_train):
    drawings = coloured_drawings(fixture_train) + coloured_drawings(load_split(FIXTURE, "test"))
    assert len(drawings) >= 4  # red heart and red apple by three artists
    read = [read_colour(image) == colour for colour, image in drawings]
    assert sum(read) >= len(read) - 1  # all but one: Noto's red apple (orange highlights) reads orange


@pytest.mark.parametrize("colour", [c for c in COLOURS if c not in ("black", "white")])
def test_recolour_then_read_back(fixture_train, colour):
    """A drawing painted in a chromatic colour reads back as that colour (most fixture drawings; black and
    white paint only the light or dark range, so a face with dark features can read otherwise)."""
    x = fixture_train.images[:40].float() / 255
    painted = torch.stack([recolour(im, colour) for im in x])
    assert sum(c == colour for c in read_colours(painted)) >= 0.8 * len(x)


def test_object_of_examples():
    assert object_of("purple heart") == object_of("red heart") == "heart"
    assert object_of("light blue heart") == "heart"
    assert object_of("thumbs up dark skin tone") == "thumbs up"
    assert object_of("man medium light skin tone beard") == "man beard"
    assert object_of("large blue circle") == "large blue circle"  # not "<colour> <object>"
    assert object_of("dog face") == "dog face"


def test_undrawn_prompts_are_no_concept_name():
    names = {normalize_text(r["name"]) for r in load_records(FIXTURE)}
    dataset = ROOT / "data" / "emoji10"
    if (dataset / "records.jsonl").is_file():
        names |= {normalize_text(r["name"]) for r in load_records(dataset)}
    prompts = [p["prompt"] for p in undrawn_prompts()]
    assert len(prompts) >= 40 and len(set(prompts)) == len(prompts)
    assert not set(prompts) & names


def test_groups_on_the_fixture():
    names = {r["id"]: normalize_text(r["name"]) for r in load_records(FIXTURE)}
    groups = build_groups(names)
    assert set(groups) == set(GROUPS) and len(groups["undrawn"]) == len(undrawn_prompts())
    held = held_out_ids()
    for g in ("heldout_colour", "heldout_tone"):
        assert all(it.id in held and it.id in names for it in groups[g])
    for g in ("seen_colour", "seen_tone"):
        assert not any(it.id in held for it in groups[g])
    assert [it.prompt for it in groups["heldout_colour"]] == ["red heart"]  # held out, and in the fixture
    assert all(it.tone is not None for it in groups["heldout_tone"] + groups["seen_tone"])


def test_min_pairwise_and_retone():
    a = torch.zeros(3, 3, 8, 8, dtype=torch.uint8)
    a[1] += 255
    a[2, 0] = 51  # one channel of three at 0.2: mean 0.0667 from the first image
    assert min_pairwise(a) == pytest.approx(0.2 / 3, abs=1e-3)
    reader = load_skin_tone(SHIPPED)
    skin = torch.tensor(reader.palette[0]).view(3, 1, 1).expand(3, 16, 16) / 255  # the first artist's first tone
    target = reader.tones.index(4) if reader.tones[0] != 4 else 4
    out = retone(skin, reader, 4)
    assert reader.predict(out) == 4 and reader.predict(skin) == reader.tones[0] != 4
    assert out.shape == skin.shape and target >= 0
    it = Item("red heart", "2764", "heart", colour="blue")
    heart = (skin * 255).to(torch.uint8)[None]
    assert read_colour(recoloured(heart, it, reader)[0].float() / 255) == "blue"


@pytest.mark.slow
def test_retrieval_never_returns_held_out_drawings():
    import crossgen

    pipe = crossgen.Pipeline.from_checkpoints(SHIPPED, "cpu")
    train = load_split(FIXTURE, "train")
    held = held_out_ids()
    retrieval = Retrieval(pipe, train)
    assert any(r["id"] in held for r in train.records)  # the fixture's training artists draw held-out concepts
    for prompt in ["red heart", "purple heart", "blue apple", "thumbs up dark skin tone", "dog face"]:
        rows = retrieval.nearest(prompt)
        assert rows and not any(train.records[i]["id"] in held for i in rows)


@pytest.mark.slow
def test_composition_section_on_the_fixture(tmp_path):
    from crossgen.evaluate import main as evaluate

    out, grid = tmp_path / "metrics.json", tmp_path / "grid.png"
    evaluate(["--data", str(FIXTURE), "--checkpoints", str(SHIPPED), "--device", "cpu", "--out", str(out), "--grid", "",
              "--composition-grid", str(grid), "--ood", str(tmp_path / "ood"), "--prompts", "10"])
    comp = json.loads(out.read_text())["composition"]
    assert grid.is_file() and comp["grid"] == str(grid)
    assert set(comp["scores"]) == set(GROUPS)
    for g, methods in comp["scores"].items():
        assert {"generator", "retrieval", "retrieve_recolour", "ceiling"} <= set(methods)
        for m, row in methods.items():
            assert row["prompts"] + row["missing"] == len(comp["groups"][g])
            for key in ("top1", "top5", "attribute", "object", "both"):
                if key in row and not (isinstance(row[key], float) and math.isnan(row[key])):
                    assert 0 <= row[key] <= 1, (g, m, key)
            if row["prompts"]:
                assert "attribute" in row and "object" in row and "both" in row
                assert ("top5" in row) == (g != "undrawn")
    assert comp["scores"]["undrawn"]["generator"]["prompts"] == len(undrawn_prompts())
    div = comp["diversity"]
    assert div["deterministic"] is True and div["prompts"] > 0
    for row in div["requests"].values():
        assert 0 <= row["min"] <= row["median"] and 0 <= row["share_ok"] <= 1
    assert comp["image_to_text"]["heldout_all"]["images"] == 5  # the fixture's Twemoji drawings of held-out concepts
