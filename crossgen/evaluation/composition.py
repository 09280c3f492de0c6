"""The composition evaluation of issue 18: does text -> image draw what each word says, also in combinations it
never saw? Run by `python -m crossgen.evaluate` (the `composition` section of metrics.json); docs/quality.md.

Groups (prompts = concept names; only concepts the evaluated data has records of):
- heldout_colour / heldout_tone: the committed hold-out (`crossgen.data.holdout`), colour x object and
  skin tone x person concepts kept out of every training stage;
- seen_colour / seen_tone: as many seen concepts, matched: the same object in a colour it is trained in, the same
  person concept in another (trained) tone;
- undrawn: the 42 "<colour> <object>" prompts no emoji draws (`holdout.UNDRAWN`).
Methods: the generator (the public `Pipeline.text_to_image`, so any generator can be measured), retrieval (the real
training drawings of the nearest training name in Word2Vec space, held-out concepts excluded), retrieval recoloured
to the asked colour or tone, the ceiling (real training-artist drawings of the concept; for undrawn prompts the
object's drawings recoloured), and optionally another checkpoint folder's generator ("other_generator").
Scores per group and method: the evaluator's top-1/top-5 of the exact concept, the attribute read from the image
(`colour.read_colour`, `SkinTone.predict`), the object in the object reader's top-5, attribute and object both.
Also the diversity of one request's images, determinism, and image -> text on the held-out concepts' test drawings.
"""
from __future__ import annotations

import textwrap
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..data.holdout import held_out_ids, load_holdout, object_of, parse_colour, parse_tone, undrawn_prompts
from ..errors import InvalidPromptError, NotAnEmojiError
from ..imaging.colour import COLOURS, read_colour, recolour
from ..models.evaluator import Evaluator, logits_and_pool, topk_accuracy
from ..models.object_reader import ObjectReader
from ..postprocess.skin_tone import TONES, SkinTone
from ..preprocess import normalize_text
from ..serving.batching import group_by
from ..serving.edit import retone
from ..serving.pipeline import Pipeline
from ..train.dataset import Split

GROUPS = ("heldout_colour", "seen_colour", "heldout_tone", "seen_tone", "undrawn")
READ_AS = {"light blue": "blue", "gray": "grey"}  # colour words of names that read_colour names otherwise


@dataclass
class CompositionConfig:
    images_per_prompt: int = 4
    seed: int = 0  # each prompt's seed is seed + crc32(prompt) % 10**6: fixed per prompt, whatever else is asked
    diversity_prompts: int = 20
    diversity_sizes: tuple[int, ...] = (4, 9)
    temperatures: tuple[float, ...] = (0.5, 1.0)
    min_distance: float = 0.03  # two images of one request closer than this (mean |pixel difference|) are one drawing


@dataclass
class Item:
    prompt: str
    id: str | None  # concept id (None for undrawn prompts)
    object: str
    colour: str | None = None
    tone: int | None = None  # index into TONES


def prompt_seed(prompt: str, seed: int) -> int:
    return seed + zlib.crc32(prompt.encode()) % 10**6


# --------------------------------------------------------------------------- groups

def build_groups(names: dict[str, str]) -> dict[str, list[Item]]:
    """The five groups, restricted to concepts in `names` (concept id -> name of the evaluated data)."""
    info = load_holdout()
    colour, tone = info["colour_object"], info["skin_tone"]
    groups: dict[str, list[Item]] = {g: [] for g in GROUPS}
    for h in colour["held_out"]:
        objects = colour["objects"][h["object"]]
        if h["id"] in names:
            groups["heldout_colour"].append(Item(names[h["id"]], h["id"], h["object"], READ_AS.get(h["colour"], h["colour"])))
        seen = [c for c in objects["colours"] if c not in objects["held_out"] and objects["colours"][c] in names
                and all(i.id != objects["colours"][c] for i in groups["seen_colour"])]
        if seen:  # the same object in a trained colour, the first unused in sorted order
            cid = objects["colours"][seen[0]]
            groups["seen_colour"].append(Item(names[cid], cid, h["object"], READ_AS.get(seen[0], seen[0])))
    for h in tone["held_out"]:
        variants, asked = tone["concepts"][h["concept"]], TONES.index(h["tone"])
        if h["id"] in names:
            groups["heldout_tone"].append(Item(names[h["id"]], h["id"], object_of(names[h["id"]]), tone=asked))
        other = TONES[(asked + 1) % len(TONES)]  # the next tone, trained on this concept
        if variants[other] in names:
            cid = variants[other]
            groups["seen_tone"].append(Item(names[cid], cid, object_of(names[cid]), tone=TONES.index(other)))
    groups["undrawn"] = [Item(p["prompt"], None, p["object"], p["colour"]) for p in undrawn_prompts()]
    return groups


# --------------------------------------------------------------------------- images of each method

def pil_to_uint8(images: list[Image.Image]) -> torch.Tensor:
    """PIL images -> (n, 3, 64, 64) uint8."""
    return torch.from_numpy(np.stack([np.asarray(im.convert("RGB").resize((64, 64))) for im in images])).permute(0, 3, 1, 2)


def draw(pipe: Pipeline, prompt: str, n: int, seed: int, temperature: float = 1.0) -> torch.Tensor | None:
    """n images of a prompt from the pipeline as uint8 (n, 3, 64, 64); None when its words are unknown."""
    try:
        return pil_to_uint8(pipe.text_to_image(prompt, n=n, seed=prompt_seed(prompt, seed), temperature=temperature))
    except InvalidPromptError:
        return None


def generated(pipe: Pipeline, items: list[Item], cfg: CompositionConfig) -> list[torch.Tensor | None]:
    """Each prompt's images from the pipeline (None when its words are unknown)."""
    return [draw(pipe, it.prompt, cfg.images_per_prompt, cfg.seed) for it in items]


class Retrieval:
    """The real training drawings of the training name nearest to a prompt in Word2Vec space (as the evaluation's
    nn_retrieval), the held-out concepts' records left out: they are not training data."""

    def __init__(self, pipe: Pipeline, train: Split):
        held = held_out_ids()
        self.rows = [i for i, r in enumerate(train.records) if r["id"] not in held]
        self.images, self.records = train.images, train.records
        self.encoder = pipe.text_encoder
        self.bank = torch.from_numpy(self.encoder.encode_batch([train.records[i]["name"] for i in self.rows]))  # (N, D)

    def nearest(self, prompt: str) -> list[int]:
        """Rows of train (every drawing of the nearest name); [] when no word of the prompt is known."""
        v = torch.from_numpy(self.encoder.encode_batch([prompt]))[0]  # (D,)
        if not v.any() or not len(self.rows):
            return []
        sims = self.bank @ v
        return [self.rows[j] for j in (sims >= sims.max() - 1e-5).nonzero()[:, 0].tolist()]

    def images_for(self, prompt: str, n: int) -> torch.Tensor | None:
        rows = self.nearest(prompt)
        return self.images[[rows[j % len(rows)] for j in range(n)]] if rows else None


def recoloured(images: torch.Tensor | None, item: Item, reader: SkinTone | None) -> torch.Tensor | None:
    """uint8 (n, 3, H, W) -> painted in the item's colour, or its skin in the item's tone."""
    if images is None:
        return None
    x = images.float() / 255
    if item.colour is not None and item.colour not in COLOURS:
        return images  # grey: no paint for it
    if item.colour is not None:
        x = torch.stack([recolour(im, item.colour) for im in x])
    elif item.tone is not None and reader is not None:
        x = torch.stack([retone(im, reader, item.tone) for im in x])
    return (x * 255 + 0.5).to(torch.uint8)


def real_drawings(items: list[Item], real: Split, n: int) -> list[torch.Tensor | None]:
    """The ceiling: each concept's real training-artist drawings (cycled to n); for undrawn prompts the drawings
    of the object (named so, else any concept with that object) recoloured to the asked colour."""
    by_id: dict[str, list[int]] = {}
    by_name: dict[str, list[int]] = {}
    by_object: dict[str, list[int]] = {}
    for i, r in enumerate(real.records):
        by_id.setdefault(r["id"], []).append(i)
        by_name.setdefault(normalize_text(r["name"]), []).append(i)
        by_object.setdefault(object_of(normalize_text(r["name"])), []).append(i)
    out = []
    for it in items:
        rows = by_id.get(it.id, []) if it.id else by_name.get(it.object) or by_object.get(it.object, [])
        images = real.images[[rows[j % len(rows)] for j in range(n)]] if rows else None
        out.append(recoloured(images, it, None) if it.id is None else images)
    return out


# --------------------------------------------------------------------------- scores

def score(items: list[Item], images: list[torch.Tensor | None], evaluator: Evaluator, objects: ObjectReader | None,
          skin: SkinTone | None) -> dict:
    """One group x method: top-1/top-5 of the exact concept (concept groups), attribute, object, both; all
    over images; prompts without images (unknown words, no real drawing) are counted apart."""
    keep = [(it, im) for it, im in zip(items, images) if im is not None]
    out: dict = {"prompts": len(keep), "missing": len(items) - len(keep), "images": sum(len(im) for _, im in keep)}
    if not keep:
        return out
    x = torch.cat([im for _, im in keep])  # (M, 3, 64, 64) uint8
    per = [it for it, im in keep for _ in range(len(im))]
    if all(it.id is not None for it in per):
        labels = np.array([evaluator.index.get(it.id, -1) for it in per])
        logits, _ = logits_and_pool(evaluator, x)
        out.update(topk_accuracy(logits, labels))
    xf = x.float() / 255
    if per[0].colour is not None:
        attribute = np.array([read_colour(im) == it.colour for im, it in zip(xf, per)])
    elif skin is not None:
        attribute = np.array([skin.predict(im) == it.tone for im, it in zip(xf, per)])
    else:
        attribute = None
    if attribute is not None:
        out["attribute"] = float(attribute.mean())
    if objects is not None:
        obj = np.array([it.object in top for it, top in zip(per, objects.top(x, 5))])
        out["object"] = float(obj.mean())
        if attribute is not None:
            out["both"] = float((obj & attribute).mean())
    return out


def min_pairwise(images: torch.Tensor) -> float:
    """(n, 3, H, W) uint8 -> the smallest mean absolute pixel difference ([0, 1] scale) between two of them."""
    x = images.float().flatten(1) / 255
    d = torch.cdist(x, x, p=1) / x.shape[1]  # (n, n) mean |difference|
    d.fill_diagonal_(float("inf"))
    return float(d.min())


def diversity(pipe: Pipeline, prompts: list[str], cfg: CompositionConfig) -> dict:
    """Per n and temperature, over the first cfg.diversity_prompts prompts with known words: min and median of each
    request's smallest pairwise distance, and the share of requests with none below cfg.min_distance; determinism:
    the same prompt and seed twice."""
    known = (p for p in prompts if draw(pipe, p, 1, cfg.seed) is not None)  # words known, in order
    prompts = [p for _, p in zip(range(cfg.diversity_prompts), known)]
    out: dict = {"prompts": len(prompts), "threshold": cfg.min_distance, "requests": {}}
    same = []
    for n in cfg.diversity_sizes:
        for t in cfg.temperatures:
            mins = [min_pairwise(draw(pipe, p, n, cfg.seed, t)) for p in prompts]
            out["requests"][f"n{n}_t{t}"] = {"min": float(np.min(mins)) if mins else None,
                                            "median": float(np.median(mins)) if mins else None,
                                            "share_ok": float(np.mean([m >= cfg.min_distance for m in mins])) if mins else None}
    for p in prompts[:5]:
        same.append(bool(torch.equal(draw(pipe, p, 4, cfg.seed), draw(pipe, p, 4, cfg.seed))))
    out["deterministic"] = all(same) if same else None
    return out


def edits(pipe: Pipeline, test: Split, objects: ObjectReader | None, skin: SkinTone | None, real: Split,
          per_object: int = 2) -> dict:
    """Editing with words (`Pipeline.edit`) on the test artist's drawings, each edited twice, its name read by the
    captioner as in the app. Colour: drawings named '<colour> <object>' of objects drawn in at least 3 colours, to the
    next two of those colours (in COLOURS order, wrapping); right when `read_colour` gives the asked colour and the
    object reader keeps the object in its top 5. Tone: drawings with one skin tone, to the next two tones; right when
    the skin-tone reader gives the asked tone and the object is kept. Identity: each colour drawing edited with its
    own name, its mean absolute pixel difference, against the median difference between two training artists'
    drawings of the same concept (`real`). Images that do not pass as emoji are counted apart."""
    names = [normalize_text(r["name"]) for r in test.records]
    colours: dict[str, list[str]] = {}
    for name in names:
        if (parsed := parse_colour(name)) and parsed[0] in COLOURS:
            colours.setdefault(parsed[1], []).append(parsed[0])
    colours = {o: [c for c in COLOURS if c in cs] for o, cs in colours.items() if len(set(cs)) >= 3}
    jobs: dict[str, list[tuple[int, str, str, str | int]]] = {"colour": [], "tone": []}  # (row, words, object, asked)
    for i, name in enumerate(names):
        if (parsed := parse_colour(name)) and parsed[0] in colours.get(parsed[1], ()):
            own = colours[parsed[1]]
            for k in range(1, per_object + 1):
                asked = own[(own.index(parsed[0]) + k) % len(own)]
                jobs["colour"].append((i, asked, parsed[1], asked))
        elif (toned := parse_tone(name)) and skin is not None:
            for k in range(1, per_object + 1):
                asked = (TONES.index(toned[1]) + k) % len(TONES)
                jobs["tone"].append((i, f"{TONES[asked]} skin tone", object_of(name), asked))
    out: dict = {}
    for kind, todo in jobs.items():
        done, refused = [], 0
        for i, words, obj, asked in todo:
            try:
                done.append((pipe.edit(Image.fromarray(test.images[i].permute(1, 2, 0).numpy()), words), obj, asked))
            except NotAnEmojiError:
                refused += 1
        if not done:
            out[kind] = {"edits": 0, "refused": refused}
            continue
        x = pil_to_uint8([e.image for e, _, _ in done])  # (M, 3, 64, 64)
        xf = x.float() / 255
        attribute = np.array([(read_colour(im) == asked) if kind == "colour" else (skin.predict(im) == asked)
                              for im, (_, _, asked) in zip(xf, done)])
        kept = np.array([obj in top for (_, obj, _), top in zip(done, objects.top(x, 5))]) if objects else None
        out[kind] = {"edits": len(done), "refused": refused, "drawings": len({i for i, *_ in todo}),
                     "attribute": float(attribute.mean()), "object": None if kept is None else float(kept.mean()),
                     "both": None if kept is None else float((attribute & kept).mean())}
    mad = []
    for i in sorted({i for i, *_ in jobs["colour"]}):
        try:
            same = pipe.edit(Image.fromarray(test.images[i].permute(1, 2, 0).numpy()), names[i], name=names[i])
        except NotAnEmojiError:
            continue
        mad.append(float((pil_to_uint8([same.image]).float() - test.images[i].float()).abs().mean() / 255))
    pairs = [float((real.images[a].float() - real.images[b].float()).abs().mean() / 255)
             for js in group_by(real.records, lambda r: r["id"]).values() for a, b in zip(js, js[1:])]
    out["identity"] = {"drawings": len(mad), "mean_abs_diff": float(np.mean(mad)) if mad else None,
                       "artists_median_diff": float(np.median(pairs)) if pairs else None}
    return out


def captions_by_group(test: Split, nbest: list[list[str]], groups: dict[str, list[Item]]) -> dict:
    """Image -> text on the test drawings: exact-name accuracy of the best caption per group (held-out, their
    matched seen concepts, every other concept)."""
    ids = {g: {it.id for it in items if it.id} for g, items in groups.items() if g != "undrawn"}
    held = held_out_ids()
    sets = {**ids, "heldout_all": held, "seen_all": None}
    out = {}
    for g, wanted in sets.items():
        rows = [i for i, r in enumerate(test.records) if (r["id"] not in held if wanted is None else r["id"] in wanted)]
        exact = [normalize_text(nbest[i][0]) == normalize_text(test.records[i]["name"]) for i in rows]
        out[g] = {"images": len(rows), "exact_top1": float(np.mean(exact)) if rows else None}
    return out


# --------------------------------------------------------------------------- the section

def composition(pipe: Pipeline, evaluator: Evaluator, objects: ObjectReader | None, skin: SkinTone | None,
                train: Split, real: Split, test: Split | None = None, nbest: list[list[str]] | None = None,
                cfg: CompositionConfig = CompositionConfig(), baseline: Pipeline | None = None) -> tuple[dict, dict]:
    """The composition section and the undrawn prompts' generated images (for the grid).
    train: the training split (retrieval candidates); real: the training artists' drawings of every concept (train
    and val records: the ceiling); test + nbest: the captioned test drawings (image -> text per group)."""
    names = {r["id"]: normalize_text(r["name"]) for s in (train, real, test) if s is not None for r in s.records}
    groups = build_groups(names)
    retrieval, n = Retrieval(pipe, train), cfg.images_per_prompt
    section: dict = {"config": asdict(cfg), "groups": {g: [it.prompt for it in items] for g, items in groups.items()},
                     "scores": {}}
    grid: dict = {}
    for g, items in groups.items():
        gen = generated(pipe, items, cfg)
        ret = [retrieval.images_for(it.prompt, n) for it in items]
        methods = {"generator": gen, "retrieval": ret, "retrieve_recolour": [recoloured(im, it, skin) for im, it in zip(ret, items)],
                   "ceiling": real_drawings(items, real, n)}
        if baseline is not None:
            methods["other_generator"] = generated(baseline, items, cfg)
        section["scores"][g] = {m: score(items, ims, evaluator, objects, skin) for m, ims in methods.items()}
        if g == "undrawn":
            grid = {it.prompt: im for it, im in zip(items, gen) if im is not None}
    seen = [it.prompt for g in ("seen_colour", "seen_tone") for it in groups[g]]
    held = held_out_ids()  # then other training names, to reach cfg.diversity_prompts
    extra = sorted({normalize_text(r["name"]) for r in train.records if r["id"] not in held} - set(seen))
    section["diversity"] = diversity(pipe, seen + extra, cfg)
    if test is not None and nbest is not None:
        section["image_to_text"] = captions_by_group(test, nbest, groups)
    if test is not None:
        section["edits"] = edits(pipe, test, objects, skin, real)
    section["readers"] = {"colour": "crossgen.imaging.colour.read_colour (dominant foreground hue; light blue counts as blue)",
                          "tone": "SkinTone.predict (skin_tone.json palette)" if skin else None,
                          "object": f"object_reader ({objects.parts.config.tuned or 'head only'}), top-5" if objects else None,
                          "evaluator": "evaluator top-1/top-5 of the exact concept (not for undrawn prompts)"}
    section["methods"] = {"generator": "Pipeline.text_to_image(prompt, n, seed=seed + crc32(prompt) % 1e6)",
                          "retrieval": "real training drawings of the nearest training name (Word2Vec), held-out concepts excluded",
                          "retrieve_recolour": "the retrieved drawings recoloured (colour.recolour) or their skin pixels moved to the asked tone",
                          "ceiling": "real training-artist drawings of the concept; undrawn: the object's drawings recoloured",
                          "other_generator": "the generator of --composition-baseline" if baseline is not None else None}
    return section, grid


def draw_undrawn_grid(path: str | Path, grid: dict[str, torch.Tensor], columns: int = 3, cell: int = 64, label: int = 110) -> None:
    """Prompt label + its images, `columns` prompts per row."""
    if not grid:
        return
    font, n = ImageFont.load_default(size=12), max(len(v) for v in grid.values())
    block = label + n * (cell + 2) + 12
    rows = (len(grid) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * block, rows * (cell + 6) + 6), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (prompt, images) in enumerate(grid.items()):
        x, y = (k % columns) * block + 4, (k // columns) * (cell + 6) + 6
        draw.multiline_text((x, y + cell // 2 - 8), textwrap.fill(prompt, 16), fill="black", font=font)
        for j, im in enumerate(images):
            sheet.paste(Image.fromarray(im.permute(1, 2, 0).numpy()), (x + label + j * (cell + 2), y))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def print_composition(section: dict) -> None:
    print("\ncomposition (evaluator top-1/top-5 of the concept; attribute = colour or tone read; object = object reader top-5)")
    cols = ["prompts", "top1", "top5", "attribute", "object", "both"]
    print(f"{'group':<16}{'method':<19}" + "".join(f"{c:>10}" for c in cols))
    for g, methods in section["scores"].items():
        for m, row in methods.items():
            cells = [f"{row[c]:>10}" if c == "prompts" else (f"{row[c]:>10.3f}" if c in row else f"{'-':>10}") for c in cols]
            print(f"{g:<16}{m:<19}" + "".join(cells))
    div = section["diversity"]
    for k, row in div["requests"].items():
        if row["min"] is not None:
            print(f"diversity {k}: min {row['min']:.4f}, median {row['median']:.4f}, share >= {div['threshold']}: {row['share_ok']:.2f}")
    print(f"deterministic: {div['deterministic']}")
    for g, row in (section.get("image_to_text") or {}).items():
        if row["exact_top1"] is not None:
            print(f"image -> text {g}: exact {row['exact_top1']:.3f} on {row['images']} images")
    ed = section.get("edits") or {}
    for kind in ("colour", "tone"):
        row = ed.get(kind) or {}
        if row.get("edits"):
            obj = "-" if row["object"] is None else f"{row['object']:.3f}"
            both = "-" if row["both"] is None else f"{row['both']:.3f}"
            print(f"edits {kind}: {row['edits']} edits of {row['drawings']} drawings ({row['refused']} not emoji): "
                  f"{kind} read {row['attribute']:.3f}, object kept {obj}, both {both}")
    if (ident := ed.get("identity")) and ident["drawings"]:
        print(f"edits identity: mean |difference| {ident['mean_abs_diff']:.4f} on {ident['drawings']} drawings "
              f"(two artists' drawings of a concept: median {ident['artists_median_diff']:.4f})")
