"""Build the emoji dataset from the pinned npm packages of split.json: fetch (npm pack) or read the packages,
name every concept of emoji-datasource's emoji.json, rasterise each style's artwork to 64x64 RGB, write records."""
from __future__ import annotations

import datetime as _dt
import json
import re
import shutil
import subprocess
import tarfile
import time
import unicodedata
from collections import Counter
from multiprocessing import Pool
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..errors import DataError, DataNotFoundError, UsageError
from ..preprocess import load_image, normalize_text, resize
from .records import IMAGE_SIZE, SPLITS, concept_id, split_config, split_of, write_records

TONES = {"1f3fb": "light skin tone", "1f3fc": "medium-light skin tone", "1f3fd": "medium skin tone",
         "1f3fe": "medium-dark skin tone", "1f3ff": "dark skin tone"}

# --------------------------------------------------------------------------- packages


def package_dir(package: str, version: str, source: str | Path | None = None,
                cache: str | Path = "data/npm") -> Path:
    """Directory of the extracted package: found under `source` (extracted or .tgz), else `npm pack`ed into `cache`."""
    base, cache = f"{package.lstrip('@').replace('/', '-')}-{version}", Path(cache)
    tgz = cache / f"{base}.tgz"
    if source is not None:
        source = Path(source)
        for cand in (source / base / "package", source / base):
            if (cand / "package.json").is_file():
                return _checked(cand, package, version)
        tgz = source / f"{base}.tgz"
        if not tgz.is_file():
            raise DataNotFoundError(f"{package}@{version}: neither {source / base}/package/ nor {tgz} exists")
    dest = cache / base / "package"
    if not (dest / "package.json").is_file():
        if not tgz.is_file():
            cache.mkdir(parents=True, exist_ok=True)
            print(f"npm pack {package}@{version}")
            try:
                subprocess.run(["npm", "pack", f"{package}@{version}", "--pack-destination", str(cache.resolve())],
                               check=True, capture_output=True, text=True)
            except (OSError, subprocess.CalledProcessError) as e:  # no npm, no network, no such package
                detail = (getattr(e, "stderr", None) or str(e)).strip().splitlines()[-1:]
                raise DataNotFoundError(f"npm pack {package}@{version} failed ({' '.join(detail) or e}); download the "
                                        f"packages elsewhere and pass their folder with --from DIR") from e
        _extract(tgz, cache / base)
    return _checked(dest, package, version)


def _extract(tgz: Path, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(tgz) as tf:
        members = [m for m in tf.getmembers() if "/sheets" not in m.name and (m.isfile() or m.isdir())]
        tf.extractall(tmp, members=members, filter="data")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def _checked(path: Path, package: str, version: str) -> Path:
    meta = json.loads((path / "package.json").read_text(encoding="utf-8"))
    if meta.get("version") != version:
        raise DataError(f"{path} holds {package}@{meta.get('version')}, but split.json pins {version}")
    return path


# --------------------------------------------------------------------------- text


def _split_tags(s: str | None) -> list[str]:
    return [t for t in (s or "").split(",") if t.strip()]


def _short_name(s: str) -> str:
    """emoji.json short name -> words ('+1' stays, normalised later to 'plus 1'; '-1' -> 'minus 1'; 'flag-ci')."""
    s = "minus " + s[1:] if s.startswith("-") else s
    return s.replace("_", " ").replace("-", " ")


def _keywords(raw: Iterable[str], name: str) -> list[str]:
    out: list[str] = []
    for k in (normalize_text(r) for r in raw):
        if k and k != name and k not in out:
            out.append(k)
    return out


def _captions(name: str, keywords: list[str]) -> list[str]:
    caps = [name] + ([" ".join(keywords)] if keywords else []) + keywords
    return list(dict.fromkeys(c for c in caps if c))


def load_concepts(emoji_json: Path, openmoji_json: Path) -> list[dict[str, Any]]:
    """Every concept of emoji.json (base records + skin variations) with its name, keywords and source fields."""
    om = {concept_id(r["hexcode"]): r for r in json.loads(openmoji_json.read_text(encoding="utf-8"))}
    concepts = []
    for r in sorted(json.loads(emoji_json.read_text(encoding="utf-8")), key=lambda r: r.get("sort_order", 0)):
        bid = concept_id(r["unified"])
        bom = om.get(bid, {})
        bcldr = bom.get("annotation") or r["name"].lower()
        base_raw = (_split_tags(bom.get("tags")) + _split_tags(bom.get("openmoji_tags"))
                    + [_short_name(s) for s in r.get("short_names", [])])
        variants = [(bid, r, None)] + [(concept_id(v["unified"]), v, k)
                                       for k, v in r.get("skin_variations", {}).items()]
        for cid, entry, tone_key in variants:
            vom = om.get(cid, {})
            tones = " ".join(dict.fromkeys(TONES[p] for p in cid.split("-") if p in TONES)) if tone_key else ""
            cldr = vom.get("annotation") or (f"{bcldr}: {tones}" if tones else bcldr)
            name = normalize_text(cldr)
            raw = (_split_tags(vom.get("tags")) + _split_tags(vom.get("openmoji_tags")) if tone_key else []) + base_raw
            keywords = _keywords(raw, name)
            concepts.append({
                "id": cid, "name": name, "keywords": keywords, "captions": _captions(name, keywords),
                "category": r.get("category", ""), "subcategory": r.get("subcategory", ""),
                "cldr": cldr, "uname": f"{r['name']} {tones}".strip(), "entry": entry,
                "om_hex": vom.get("hexcode"),
            })
    return concepts


# --------------------------------------------------------------------------- iconify


def slug(text: str) -> str:
    """Iconify-style slug of a CLDR name: 'A button (blood type)' -> 'a-button-blood-type', 'keycap: #' ->
    'keycap-pound'."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"['\u2019]", "", text)
    for sym, word in (("*", " asterisk "), ("#", " pound "), ("&", " and ")):
        text = text.replace(sym, word)
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def squash(text: str) -> str:
    """A name with spaces, hyphens and punctuation removed, as fxemoji spells it: 'red apple' -> 'redapple',
    'ATM sign' -> 'atmsign', 'keycap: #' -> 'keycappound'."""
    return slug(text).replace("-", "")


# fluent-emoji(-flat) spell "thumbs up: light skin tone" as thumbs-up-light (longest first: -medium-light before -light)
TONE_SUFFIXES = ("-medium-light", "-medium-dark", "-light", "-medium", "-dark")
# How a package names its icons (split.json "names"): CLDR slugs, squashed CLDR/Unicode names, or slugs of its own
NAME_RULES = ("slug", "squashed", "own-slug")
LABELS = ("cldr", "unicode_name", "variant")  # how a strict match was made, best first


def _icon_keys(name: str, tones: bool = False) -> list[str]:
    keys = [name]
    for prefix in ("flag-for-flag-", "flag-for-"):  # noto-v1 / emojione spell "flag: Japan" as flag-for-[flag-]japan
        if name.startswith(prefix):
            keys.append("flag-" + name[len(prefix):])
            break
    if tones and name.endswith(TONE_SUFFIXES):  # 'thumbs-up-light' -> 'thumbs-up-light-skin-tone'
        keys.append(name + "-skin-tone")
    return keys


def _own_keys(name: str, flag: bool) -> list[str]:
    """Keys of an icon named by its package's own slugs (streamline-emojis): the name, the name without a '-1'
    (the first of several numbered drawings; -2, -3, ... are other drawings, for people skin tones that are not
    named, and stay out), and for an icon of the package's Flags category 'flag-<country>'."""
    keys = [name]
    m = re.fullmatch(r"(.+)-(\d+)", name)
    if m and m.group(2) == "1":
        keys.append(m.group(1))
    if flag:
        keys = [f"flag-{k}" for k in keys] + keys
    return keys


def _unique_index(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    index: dict[str, set[str]] = {}
    for key, cid in pairs:
        index.setdefault(key, set()).add(cid)
    return {k: next(iter(v)) for k, v in index.items() if len(v) == 1}  # ambiguous slugs match nothing


def _index(pairs: Iterable[tuple[str, str, str]]) -> dict[str, dict[str, str]]:
    """key -> {concept id: the first kind of name ('cldr' before 'unicode_name') that gives it}."""
    index: dict[str, dict[str, str]] = {}
    for key, cid, kind in pairs:
        index.setdefault(key, {}).setdefault(cid, kind)
    return index


def match_slugs(icons: dict[str, Any], concepts: list[dict], names: str = "slug", tones: bool = False,
                flags: Iterable[str] = ()) -> tuple[dict[str, str], dict[str, int]]:
    """concept id -> icon name through the CLDR names (then the Unicode names, e.g. 'dizzy face'); icons and aliases
    that match no name uniquely stay out. Returns the map and match counts.

    names: "slug" (CLDR slugs, 'red-apple'; with tones, a -light .. -dark suffix names the toned concept),
    "squashed" (names with spaces, hyphens and punctuation removed, 'redapple'), or "own-slug" (the package's own
    slugs, 'amazed-face': the slug as is or without a '-1' numbering). For "squashed" and "own-slug" an icon is
    matched only when all its keys, against every CLDR and Unicode name together, give exactly one concept; an icon
    of the package's Flags category (`flags`) matches only a concept of the Flags category (streamline's 'turkey' is
    the flag, not the bird)."""
    if names not in NAME_RULES:
        raise DataError(f"unknown icon naming {names!r}; known: {list(NAME_RULES)}")
    got: dict[str, str] = {}
    stats = Counter()
    all_names = list(icons.get("icons", {})) + list(icons.get("aliases", {}))
    if names == "slug":
        cldr = _unique_index((slug(c["cldr"]), c["id"]) for c in concepts)
        uni = {k: v for k, v in _unique_index((slug(c["uname"]), c["id"]) for c in concepts).items() if k not in cldr}
        for label, index in (("cldr", cldr), ("unicode_name", uni)):
            used = set(got.values())
            for n in all_names:
                cid = next((index[k] for k in _icon_keys(n, tones) if k in index), None)
                if n not in used and cid and cid not in got:
                    got[cid], stats[label] = n, stats[label] + 1
                    used.add(n)
    else:
        key = squash if names == "squashed" else slug
        index = _index((key(c[field]), c["id"], kind) for kind, field in (("cldr", "cldr"), ("unicode_name", "uname"))
                       for c in concepts)
        is_flag = {c["id"]: c["category"] == "Flags" for c in concepts}
        flag_icons = set(flags)
        found = []  # (rank, icon order, concept id, icon name, label)
        for order, n in enumerate(all_names):
            exact = squash(n) if names == "squashed" else n
            keys = [exact] if names == "squashed" else _own_keys(n, n in flag_icons)
            hits: dict[str, tuple[int, str]] = {}  # concept id -> (rank, label) of its best key
            for k in keys:
                for cid, kind in index.get(k, {}).items():
                    if n in flag_icons and not is_flag[cid]:
                        continue
                    label = kind if k == exact else "variant"
                    rank = LABELS.index(label)
                    if cid not in hits or rank < hits[cid][0]:
                        hits[cid] = (rank, label)
            if len(hits) > 1:
                stats["ambiguous"] += 1
            elif hits:
                ((cid, (rank, label)),) = hits.items()
                found.append((rank, order, cid, n, label))
        for _, _, cid, n, label in sorted(found):
            if cid not in got:  # several drawings of one concept: the exact name, then the first in the package
                got[cid], stats[label] = n, stats[label] + 1
    parents = {_resolve(icons, n)[0] for n in got.values()}
    n_icons = len(icons.get("icons", {}))
    unmatched = sum(1 for n in icons.get("icons", {}) if n not in parents)
    stats.update(icons=n_icons, matched=len(got), icons_unmatched=unmatched)
    stats["rate"] = round(1 - unmatched / n_icons, 3) if n_icons else 0.0
    return got, dict(stats)


def match_chars(chars: dict[str, str], concepts: list[dict]) -> dict[str, str]:
    """concept id -> icon name through chars.json (code points compared without FE0F)."""
    by_id: dict[str, str] = {}
    for cp, name in chars.items():
        by_id.setdefault(concept_id(cp), name)
    return {c["id"]: by_id[c["id"]] for c in concepts if c["id"] in by_id}


def _resolve(icons: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    """Follow aliases to the parent icon, merging flips and rotations; returns (parent name, icon props)."""
    t = {"hFlip": False, "vFlip": False, "rotate": 0}
    for _ in range(8):
        item = icons.get("icons", {}).get(name) or icons.get("aliases", {}).get(name)
        if item is None:
            break
        t = {"hFlip": t["hFlip"] ^ bool(item.get("hFlip")), "vFlip": t["vFlip"] ^ bool(item.get("vFlip")),
             "rotate": (t["rotate"] + item.get("rotate", 0)) % 4}
        if "body" in item:
            return name, {**item, **t}
        name = item["parent"]
    raise KeyError(f"icon {name!r} not found")


def iconify_svg(icons: dict[str, Any], name: str) -> str:
    """Full SVG document of an icon (aliases resolved; own or default left/top/width/height)."""
    _, icon = _resolve(icons, name)
    left, top = icon.get("left", icons.get("left", 0)), icon.get("top", icons.get("top", 0))
    w, h = icon.get("width", icons.get("width", 16)), icon.get("height", icons.get("height", 16))
    cx, cy, body = left + w / 2, top + h / 2, icon["body"]
    ops = []
    if icon["rotate"]:
        ops.append(f"rotate({90 * icon['rotate']} {cx} {cy})")
    if icon["hFlip"] or icon["vFlip"]:
        sx, sy = (-1 if icon["hFlip"] else 1), (-1 if icon["vFlip"] else 1)
        ops.append(f"translate({cx} {cy}) scale({sx} {sy}) translate({-cx} {-cy})")
    if ops:
        body = f'<g transform="{" ".join(ops)}">{body}</g>'
    return f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="{left} {top} {w} {h}">{body}</svg>'


# --------------------------------------------------------------------------- images


def _render(job: tuple[str, str, str, str, str]) -> tuple[str, str, str | None]:
    """Rasterise one (style, id, kind, payload, destination); returns (style, id, error or None)."""
    style, cid, kind, payload, dest = job
    try:
        if kind in ("svg", "svgfile"):
            import cairosvg  # imported in the worker: a missing libcairo only fails the SVG styles
            data = payload.encode() if kind == "svg" else Path(payload).read_bytes()
            src: Any = cairosvg.svg2png(bytestring=data, output_width=IMAGE_SIZE, output_height=IMAGE_SIZE)
        else:
            src = payload
        img = load_image(src)
        arr = np.asarray(img) if img.size == (IMAGE_SIZE, IMAGE_SIZE) else resize(img, IMAGE_SIZE)
        Image.fromarray(arr).save(dest)
        return style, cid, None
    except Exception as e:  # noqa: BLE001 - any broken artwork is skipped and counted
        return style, cid, f"{type(e).__name__}: {e}"


def _jobs(style: str, spec: dict, pkg: Path, concepts: list[dict], out: Path) -> tuple[list[tuple], dict]:
    """Rasterisation jobs (style, id, kind, source, destination) of one style, and its match stats."""
    sources, stats = [], {}
    if spec["kind"] == "datasource":
        img_dir = pkg / "img" / spec["set"] / "64"
        for c in concepts:
            e = c["entry"]
            if e.get(f"has_img_{spec['set']}") and (img_dir / e["image"]).is_file():
                sources.append((c["id"], "png", str(img_dir / e["image"])))
    elif spec["kind"] == "openmoji":
        for c in concepts:
            path = pkg / "color" / "svg" / f"{c['om_hex'] or c['entry']['unified']}.svg"
            if path.is_file():
                sources.append((c["id"], "svgfile", str(path)))
    else:
        icons = json.loads((pkg / "icons.json").read_text(encoding="utf-8"))
        chars_file = pkg / "chars.json"
        chars = json.loads(chars_file.read_text(encoding="utf-8")) if chars_file.is_file() else {}
        if chars:
            got = match_chars(chars, concepts)
            drawn = {_resolve(icons, n)[0] for n in got.values()} & set(icons["icons"])
            stats = {"via": "chars.json", "icons": len(icons["icons"]), "matched": len(got),
                     "rate": round(len(drawn) / len(icons["icons"]), 3) if icons["icons"] else 0.0}
        else:
            names = spec.get("names", "slug")
            meta_file = pkg / "metadata.json"
            meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
            got, stats = match_slugs(icons, concepts, names=names, tones=spec.get("tones") == "suffix",
                                     flags=meta.get("categories", {}).get("Flags", []))
            stats = {"via": names, **stats}
        sources = [(c["id"], "svg", iconify_svg(icons, got[c["id"]])) for c in concepts if c["id"] in got]
    return [(style, cid, kind, src, str(out / "images" / style / f"{cid}.png")) for cid, kind, src in sources], stats


# --------------------------------------------------------------------------- build


def build_emoji(out: str | Path, source: str | Path | None = None, cache: str | Path = "data/npm",
                styles: Iterable[str] | None = None, workers: int = 2, command: str | None = None) -> dict[str, Any]:
    """Build the dataset into `out` (records.jsonl, images/, build.json); returns the build info."""
    t0, out, config = time.time(), Path(out), split_config()
    specs = config["styles"]
    styles = list(styles or specs)
    unknown = [s for s in styles if s not in specs]
    if unknown:
        raise UsageError(f"unknown style(s) {unknown}; known: {list(specs)}")

    def pkg(style: str) -> Path:
        return package_dir(specs[style]["package"], specs[style]["version"], source, cache)

    concepts = load_concepts(pkg(config["universe"]) / "emoji.json", pkg("openmoji") / "data" / "openmoji.json")
    jobs, matches = [], {}
    for style in styles:
        shutil.rmtree(out / "images" / style, ignore_errors=True)
        (out / "images" / style).mkdir(parents=True)
        style_jobs, stats = _jobs(style, specs[style], pkg(style), concepts, out)
        jobs += style_jobs
        if stats:
            matches[style] = stats
    failed: dict[tuple[str, str], str] = {}
    with Pool(max(1, workers)) as pool:
        for style, cid, err in tqdm(pool.imap_unordered(_render, jobs, chunksize=16), total=len(jobs),
                                    desc="rasterise", mininterval=2):
            if err:
                failed[(style, cid)] = err
    done = {(j[0], j[1]) for j in jobs} - set(failed)
    records, counts = [], {s: dict.fromkeys(SPLITS, 0) for s in styles}
    fields = ("name", "captions", "keywords", "category", "subcategory")
    for style in styles:
        for c in concepts:
            if (style, c["id"]) in done:
                split = split_of(c["id"], style, config)
                counts[style][split] += 1
                records.append({"id": c["id"], "style": style, "split": split,
                                "image": f"images/{style}/{c['id']}.png", **{f: c[f] for f in fields}})
    write_records(out / "records.jsonl", records)
    info = {
        "dataset": "emoji", "split_version": config["version"], "concepts": len(concepts),
        "packages": {s: f"{specs[s]['package']}@{specs[s]['version']}" for s in styles},
        "licences": {s: specs[s]["licence"] for s in styles},
        "counts": counts, "splits": {sp: sum(c[sp] for c in counts.values()) for sp in SPLITS},
        "records": len(records), "matches": matches,
        "failed": {s: sum(1 for k in failed if k[0] == s) for s in styles},
        "failures": [f"{s}/{cid}: {e}" for (s, cid), e in sorted(failed.items())][:50],
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.time() - t0, 1), "command": command,
    }
    (out / "build.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
