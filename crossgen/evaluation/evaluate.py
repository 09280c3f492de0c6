"""python -m crossgen.evaluate --data data/emoji --split test [--checkpoints checkpoints] [--train-evaluator]

Image -> text: exact name, BLEU-1..4, ROUGE-L, CIDEr of the beam-3 captions against nearest-neighbour
(ResNet features, raw pixels) and most-frequent-caption baselines. Text -> image: the evaluator's
top-1/top-5 and FID of VAE samples against shuffled-text and retrieval baselines and the real images.
Confidence: the out-of-domain probe's AUROC and FPR at 95 % TPR against the evaluated images for each kind of
the out-of-domain set's test part (`--ood`, built when absent), the share accepted at the shipped threshold, and
the calibration error of the best caption's probability before and after calibration.
Composition (`crossgen.evaluation.composition`, issue 18; `--no-composition` skips it): held-out colour x object and skin
tone x person concepts against matched seen ones and prompts no emoji draws, read by the evaluator, the colour and
skin-tone readers and the object reader, against retrieval, retrieve-then-recolour and the real drawings; the
diversity of one request's images; image -> text on the held-out concepts' test drawings.
Everything is measured in one run; prints a table, writes a metrics JSON and grid PNGs.
"""
from __future__ import annotations

import argparse
import datetime
import random
import textwrap
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..checkpoint import save_json, sha256
from ..data.ood import TARGET_KINDS, ensure_ood, load_ood
from ..data.records import FIXTURE_ALWAYS
from ..device import get_device
from ..errors import CheckpointError, UnknownWordsError
from ..imaging.matte import iou as matte_iou
from ..imaging.matte import matte, transparent
from ..models.evaluator import Evaluator, evaluator_missing_hint, load_evaluator, logits_and_pool, topk_accuracy
from ..models.object_reader import load_object_reader
from ..postprocess.chain import Reading
from ..postprocess.metrics import auroc, expected_calibration_error, fpr_at_tpr
from ..postprocess.skin_tone import load_skin_tone
from ..preprocess import load_image, normalize_text, to_tensor
from ..serving.pipeline import Pipeline, default_checkpoints
from ..train.captioner import extract, nbest_and_concepts
from ..train.confidence import embed_images
from ..train.dataset import Split, load_split
from ..train.evaluator import evaluator_config, train_evaluator
from ..train.loop import hardware
from .composition import CompositionConfig, composition, draw_undrawn_grid, print_composition

EMPTY = "<empty>"  # stands in for an empty caption: ROUGE-L divides by the candidate's length
REFERENCES = "per image, the record's first two captions: its name and its keywords joined into one caption"
USED_FILES = ["manifest.json", "word2vec.bin", "vae.json", "vae.safetensors", "features.json", "features.safetensors",
              "captioner.json", "captioner.safetensors", "concept_fallback.json", "skin_tone.json", "confidence.json",
              "evaluator.json",
              "evaluator.safetensors", "object_reader.json", "object_reader.safetensors"]


@dataclass
class EvalConfig:
    prompts: int = 500
    images_per_prompt: int = 4
    seed: int = 0
    beam: int = 3
    n_best: int = 3
    batch_size: int = 256


# --------------------------------------------------------------------------- metric helpers

def caption_scores(hyps: list[str], refs: list[list[str]]) -> dict[str, float]:
    """Corpus BLEU-1..4, ROUGE-L and CIDEr (pycocoevalcap) of normalised hypotheses vs references."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    res = {i: [h or EMPTY] for i, h in enumerate(hyps)}
    gts = {i: [r or EMPTY for r in rs] for i, rs in enumerate(refs)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    return {**{f"bleu{n + 1}": float(b) for n, b in enumerate(bleu)}, "rouge_l": float(rouge), "cider": float(cider)}


def references(record: dict) -> list[str]:
    return [normalize_text(c) for c in (record.get("captions") or [])[:2]] or [normalize_text(record["name"])]


def caption_metrics(nbest: list[list[str]], records: list[dict]) -> dict[str, float]:
    """Exact-name accuracy of the best caption and within the n-best, plus the n-gram scores of the best."""
    names = [normalize_text(r["name"]) for r in records]
    nbest = [[normalize_text(c) for c in cs] for cs in nbest]
    n = max(len(records), 1)
    return {"exact_top1": sum(cs[0] == t for cs, t in zip(nbest, names)) / n,
            "exact_nbest": sum(t in cs for cs, t in zip(nbest, names)) / n,
            **caption_scores([cs[0] for cs in nbest], [references(r) for r in records])}


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D) and (M, D)."""
    from scipy import linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu, s1, s2 = a.mean(0) - b.mean(0), np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():  # fewer samples than dimensions make the covariances singular
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():  # nudge the diagonals
            eps = np.eye(len(s1)) * 1e-6
            covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = np.real(covmean)  # imaginary parts are numerical noise
    return float(max(mu @ mu + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean), 0.0))


def intra_fid(gen: np.ndarray, gen_groups: np.ndarray, real: np.ndarray, real_groups: np.ndarray,
              min_size: int = 8) -> float | None:
    """Class-conditional FID (intra-FID, Miyato & Koyama 2018): the mean over groups of the FID between the
    generated and the real features of that group, for groups with at least `min_size` real images. Plain
    FID compares two unlabelled sets, so images drawn for the wrong prompts score as well as the right ones;
    here each group's images must look like that group's real images. None when no group is large enough."""
    scores = [fid(gen[gen_groups == g], real[real_groups == g]) for g in np.unique(real_groups)
              if (real_groups == g).sum() >= min_size and (gen_groups == g).sum() >= min_size]
    return float(np.mean(scores)) if scores else None


def nearest_names(query: torch.Tensor, bank: torch.Tensor, names: list[str], k: int, chunk: int = 512) -> list[list[str]]:
    """Per query row, the names of the k nearest distinct-named bank rows by cosine similarity, nearest first."""
    bank = torch.nn.functional.normalize(bank.float(), dim=1)
    out = []
    for i in range(0, len(query), chunk):
        q = torch.nn.functional.normalize(query[i:i + chunk].float(), dim=1)
        top = (q @ bank.T).topk(min(len(bank), 8 * k), dim=1).indices.tolist()
        out += [list(dict.fromkeys(names[j] for j in row))[:k] for row in top]
    return out


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation with no fixed point (n > 1): a cycle through a shuffled order."""
    order, perm = rng.permutation(n), np.arange(n)
    perm[order] = np.roll(order, -1)
    return perm


# --------------------------------------------------------------------------- the two directions

def captioning(pipe: Pipeline, train: Split, test: Split, cfg: EvalConfig) -> tuple[dict, list[list[str]], list[Reading]]:
    """The captioning section (the shipped captioning; the LSTM alone, and before the skin-tone reader, when those
    are shipped; three baselines on `test`), the shipped n-best lists and each image's `Reading`."""
    f_train, f_test = extract(pipe.features, train, pipe.device), extract(pipe.features, test, pipe.device)
    # (caption, log-probability) n-best lists of the captioner alone, and the concept head's probabilities
    lstm, probs = nbest_and_concepts(pipe.features, pipe.captioner, pipe.vocab, f_test, cfg.beam, cfg.n_best, cfg.batch_size)
    # as Pipeline.read: the shipped post-processing of each n-best, and the lists after its first step alone
    steps = pipe.postprocess
    heads = probs if probs is not None else [None] * len(lstm)  # None: a feature model without a concept head
    domain = steps.confidence.domain.score(f_test, probs).tolist() if steps.confidence.domain is not None else [None] * len(lstm)
    readings = [steps.read(cs, p, test.images[i].float() / 255, d) for i, (cs, p, d) in enumerate(zip(lstm, heads, domain))]
    untoned = [steps.name(cs, p)[0] for cs, p in zip(lstm, heads)]
    nbest = [[c for c, _ in r.captions] or [""] for r in readings]
    names = [r["name"] for r in train.records]
    counts = Counter(normalize_text(c) for r in train.records for c in r.get("captions") or [r["name"]])
    frequent = [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:cfg.n_best]]
    methods = {
        "model": nbest,
        **({"without_skin_tone": [[c for c, _ in cs] or [""] for cs in untoned]} if steps.skin_tone is not None else {}),
        **({"captioner_alone": [[c for c, _ in cs] or [""] for cs in lstm]} if steps.fallback is not None else {}),
        "nn_features": nearest_names(f_test, f_train, names, cfg.n_best),
        "nn_pixels": nearest_names(test.images.flatten(1), train.images.flatten(1), names, cfg.n_best),
        "most_frequent": [frequent] * len(test),
    }
    baselines = {"without_skin_tone": "the shipped captioning without the skin-tone reader (tones as the captioner named them)",
                 "captioner_alone": "the LSTM's beam search without the concept-head fallback or the skin-tone reader",
                 "nn_features": "name of the training image nearest in the shipped ResNet feature space (cosine)",
                 "nn_pixels": "name of the training image nearest in raw 64x64 RGB pixels (cosine)",
                 "most_frequent": f"the most frequent entries of the training records' captions lists: {frequent}"}
    fallback = {"threshold": steps.fallback.threshold} if steps.fallback is not None else None
    skin_tone = {"radius": steps.skin_tone.radius, "colours": len(steps.skin_tone.palette)} if steps.skin_tone is not None else None
    return {"images": len(test), "references": REFERENCES, "baselines": baselines, "fallback": fallback,
            "skin_tone": skin_tone,
            "nbest": f"beam {cfg.beam}, n-best {cfg.n_best}; baselines: the {cfg.n_best} nearest distinct names "
                     f"(most_frequent: the {cfg.n_best} most frequent captions)",
            "methods": {m: caption_metrics(v, test.records) for m, v in methods.items()}}, nbest, readings


def confidence(pipe: Pipeline, test: Split, readings: list[Reading], ood_dir: str | Path) -> dict:
    """The confidence section: the out-of-domain probe against each kind of the out-of-domain set's test part
    (the evaluated images are the in-domain side), the share accepted at the shipped threshold, and the
    calibration error (15 bins) of the best caption's probability against exact-name correctness, and the largest
    sum of an image's n-best probabilities."""
    correct = np.array([bool(r.captions) and normalize_text(r.captions[0][0]) == normalize_text(rec["name"])
                        for r, rec in zip(readings, test.records)], float)
    raw = np.array([np.exp(r.captions[0][1]) if r.captions else 0.0 for r in readings])
    shown = np.array([r.probabilities[0] if r.probabilities else 0.0 for r in readings])
    out = {"images": len(test), "accuracy": float(correct.mean()), "mean_probability_before": float(raw.mean()),
           "mean_probability_after": float(shown.mean()), "ece_before": expected_calibration_error(raw, correct),
           "ece_after": expected_calibration_error(shown, correct),
           "calibrated": pipe.postprocess.confidence.calibration is not None,
           # the n-best probabilities are one distribution: on every image they add up to at most 1
           "nbest_sum_max": max((sum(r.probabilities) for r in readings), default=0.0),
           "nbest_sum_at_most_1": float(np.mean([sum(r.probabilities) <= 1 + 1e-9 for r in readings]))}
    domain = pipe.postprocess.confidence.domain
    if domain is None:
        return out
    inside = np.array([r.domain_score for r in readings])
    accepted = np.array([r.in_domain for r in readings])
    rows, images = load_ood(ensure_ood(ood_dir), "test")
    feats = embed_images(pipe.features, images, pipe.device)
    outside = domain.score(feats, pipe.features.concepts(feats)).numpy()
    kinds = np.array([r["kind"] for r in rows])
    per_kind = {k: {"images": int((kinds == k).sum()), "auroc": auroc(inside, outside[kinds == k]),
                    "fpr95": fpr_at_tpr(inside, outside[kinds == k]),
                    "accepted": float((outside[kinds == k] >= domain.threshold).mean())} for k in sorted(set(kinds))}
    targets = [k for k in TARGET_KINDS if k in per_kind]
    return {**out, "threshold": domain.threshold, "accepted": float(accepted.mean()),
            "accepted_exact": float(correct[accepted].mean()) if accepted.any() else 0.0,
            "ood": per_kind, "ood_mean": {m: float(np.mean([per_kind[k][m] for k in targets]))
                                          for m in ("auroc", "fpr95", "accepted")},
            "ood_kinds": "photo, screenshot, text, noise (targets, averaged in ood_mean); drawing: logos, icons "
                         "and clip art that are not emoji, reported on their own row (policy: out of domain)"}


def choose_prompts(test: list[dict], train_ids: set[str], known: dict[str, int], n: int, seed: int) -> list[dict]:
    """One record per distinct test concept that is also a training (and evaluator) concept; n drawn with `seed`."""
    by_id: dict[str, dict] = {}
    for r in test:
        if r["id"] in train_ids and r["id"] in known:
            by_id.setdefault(r["id"], r)
    ids = sorted(by_id)
    return [by_id[c] for c in sorted(random.Random(seed).sample(ids, min(n, len(ids))))]


def sample_images(pipe: Pipeline, vectors: torch.Tensor, n: int, seed: int, chunk: int = 128) -> torch.Tensor:
    """n VAE samples per text vector as uint8 (P*n, 3, H, W), grouped by vector; the noise depends only on seed."""
    g, out = torch.Generator("cpu").manual_seed(seed), []
    for i in range(0, len(vectors), chunk):
        out.append((pipe.vae.sample(vectors[i:i + chunk], n=n, generator=g) * 255 + 0.5).to(torch.uint8).cpu())
    return torch.cat(out)


def text_to_image(pipe: Pipeline, evaluator: Evaluator, train: Split, test: Split,
                  cfg: EvalConfig) -> tuple[dict, list[dict], torch.Tensor]:
    """Evaluator top-1/top-5 and FID of VAE samples and baselines; also the prompts and their samples."""
    chosen = choose_prompts(test.records, {r["id"] for r in train.records}, evaluator.index, cfg.prompts, cfg.seed)
    prompts, vecs, sents, unknown = [], [], [], []
    for r in chosen:
        try:
            encoded = pipe.encode_prompt(r["name"])
            vecs.append(pipe.text_input(encoded))
            sents.append(encoded.vector)
            prompts.append(r)
        except (UnknownWordsError, ValueError):
            unknown.append(r["name"])
    if not prompts:
        return {"skipped": "no test concept is also a training concept with known words"}, [], torch.zeros(0)
    n, k = cfg.images_per_prompt, len(prompts)
    vectors = torch.from_numpy(np.stack(vecs))  # (P, text_in) what the VAE reads
    labels = np.array([evaluator.index[r["id"]] for r in prompts])
    ids = {r["id"] for r in prompts}
    real = test.images[[i for i, r in enumerate(test.records) if r["id"] in ids]]
    real_labels = np.array([evaluator.index[r["id"]] for r in test.records if r["id"] in ids])
    name_vecs = torch.from_numpy(pipe.text_encoder.encode_batch([r["name"] for r in train.records]))  # (N, D)
    sims = torch.from_numpy(np.stack(sents)) @ name_vecs.T  # (P, N) sentence vectors
    nearest = [(s >= s.max() - 1e-5).nonzero()[:, 0].tolist() for s in sims]  # every image of the closest name
    retrieved = train.images[[near[j % len(near)] for near in nearest for j in range(n)]]
    generated = sample_images(pipe, vectors, n, cfg.seed)
    shuffled = sample_images(pipe, vectors[derangement(k, np.random.default_rng(cfg.seed))], n, cfg.seed)
    groups = np.array([r.get("category") or "" for r in prompts]).repeat(n)  # the prompt's category, per image
    real_groups = np.array([r.get("category") or "" for r in test.records if r["id"] in ids])
    logits_real, pool_real = logits_and_pool(evaluator, real)
    out = {}
    for name, images in [("vae", generated), ("vae_shuffled_text", shuffled), ("nn_retrieval", retrieved)]:
        logits, pool = logits_and_pool(evaluator, images)
        out[name] = {**topk_accuracy(logits, labels.repeat(n)), "fid": fid(pool, pool_real),
                     "intra_fid": intra_fid(pool, groups, pool_real, real_groups), "images": len(images)}
    out["real_test"] = {**topk_accuracy(logits_real, real_labels), "fid": None, "intra_fid": None, "images": len(real)}
    info = {"prompts": k, "images_per_prompt": n, "seed": cfg.seed, "real_images": len(real), "unknown_prompts": unknown,
            "prompt_rule": "names of distinct test concepts that are also training concepts, sampled with the seed",
            "baselines": {"vae_shuffled_text": "the same VAE and noise, each prompt's vector swapped with another prompt's",
                          "nn_retrieval": "real training images of the training name whose Word2Vec vector is closest to "
                                          "the prompt's (cycled to images_per_prompt); the evaluator was trained on them",
                          "real_test": "the held-out real images of the prompts' concepts: what a perfect generator "
                                       "in the held-out style would score"},
            "fid_note": "evaluator pool features vs the real test images of the prompt concepts; with fewer images than "
                        "512 dimensions the estimate is biased upwards: compare only within one run",
            "intra_fid_note": "mean over the emoji categories (Smileys & Emotion, Animals & Nature, ...) with at least 8 "
                              "prompts of the FID between the images drawn for that category's prompts and its real "
                              "test images: unlike plain FID it drops only when each prompt gets images of its kind"}
    return {**info, "methods": out}, prompts, generated


# --------------------------------------------------------------------------- grid, table, CLI

def draw_grid(path: str | Path, prompts: list[tuple[str, torch.Tensor]], n: int,
              captioned: list[tuple[torch.Tensor, str, str]], style: str, cell: int = 96, head: int = 26) -> None:
    """Rows of prompt -> its n samples, then rows of held-out image -> best caption (green when exact)."""
    font, label = ImageFont.load_default(size=13), 190
    height = 2 * head + (len(prompts) + len(captioned)) * (cell + 4)
    sheet = Image.new("RGB", (label + n * (cell + 4), height), "white")
    draw = ImageDraw.Draw(sheet)

    def pil(x: torch.Tensor) -> Image.Image:
        return Image.fromarray(x.permute(1, 2, 0).numpy()).resize((cell, cell), Image.NEAREST)

    draw.text((4, 6), f"text -> image ({n} samples each)", fill="black", font=font)
    y = head
    for prompt, images in prompts:
        draw.multiline_text((4, y + 8), textwrap.fill(prompt, 24), fill="black", font=font)
        for j in range(n):
            sheet.paste(pil(images[j]), (label + j * (cell + 4), y))
        y += cell + 4
    draw.text((4, y + 6), f"image -> text (held-out {style})", fill="black", font=font)
    y += head
    for image, caption, name in captioned:
        sheet.paste(pil(image), (4, y))
        draw.multiline_text((cell + 12, y + 8), textwrap.fill(f"-> {caption}", 40) + "\n" + textwrap.fill(f"(true: {name})", 40),
                            fill="darkgreen" if normalize_text(caption) == normalize_text(name) else "firebrick", font=font)
        y += cell + 4
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def familiar_first(items: list, key) -> list:
    """Well-known concepts (apple, dog, thumbs up, ...) first, then the rest in order."""
    rank = {c: i for i, c in enumerate(FIXTURE_ALWAYS)}
    return sorted(items, key=lambda it: rank.get(key(it), len(rank)))


def print_table(m: dict) -> None:
    cap = m["captioning"]
    print(f"\nimage -> text on {m['split']} ({cap['images']} images; refs: name + joined keywords)")
    cols = ["exact_top1", "exact_nbest", "bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "cider"]
    print(f"{'method':<18}" + "".join(f"{c:>12}" for c in cols))
    for name, row in cap["methods"].items():
        print(f"{name:<18}" + "".join(f"{row[c]:>12.4f}" for c in cols))
    t2i = m["text_to_image"]
    if "methods" in t2i:
        print(f"\ntext -> image ({t2i['prompts']} prompts x {t2i['images_per_prompt']} images; evaluator)")
        print(f"{'method':<18}{'top1':>12}{'top5':>12}{'fid':>12}{'intra_fid':>12}")
        for name, row in t2i["methods"].items():
            fid_s, intra_s = ("-" if row.get(k) is None else f"{row[k]:.2f}" for k in ("fid", "intra_fid"))
            print(f"{name:<18}{row['top1']:>12.4f}{row['top5']:>12.4f}{fid_s:>12}{intra_s:>12}")
    conf = m.get("confidence") or {}
    if conf:
        print(f"\nconfidence: best-caption ECE {conf['ece_before']:.4f} -> {conf['ece_after']:.4f} (calibrated); "
              f"n-best sums at most 1 on {conf['nbest_sum_at_most_1']:.1%} of the images (largest {conf['nbest_sum_max']:.3f})")
    if "ood" in conf:
        print(f"in-domain accepted {conf['accepted']:.4f} at threshold {conf['threshold']:.3f}")
        print(f"{'out-of-domain':<18}{'images':>8}{'auroc':>10}{'fpr95':>10}{'accepted':>10}")
        for kind, row in {**conf["ood"], "mean (targets)": {"images": 0, **conf["ood_mean"]}}.items():
            print(f"{kind:<18}{row['images'] or '':>8}{row['auroc']:>10.4f}{row['fpr95']:>10.4f}{row['accepted']:>10.4f}")
    if m.get("composition"):
        print_composition(m["composition"])
    clear = m.get("transparency") or {}
    if clear.get("iou_mean") is not None:
        print(f"\ntransparency: matte IoU with Twemoji's own alpha {clear['iou_mean']:.4f} (median "
              f"{clear['iou_median']:.4f}, {clear['twemoji_images']} drawings)")
    if clear.get("undrawn_images"):
        print(f"transparency: {clear['undrawn_images']} images of the undrawn prompts, corners transparent "
              f"{clear['corners_transparent']:.1%}, object opaque {clear['object_opaque']:.1%}")
    print(f"\n{m['seconds']:.0f} s on {m['hardware']}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m crossgen.evaluate", description=__doc__)
    p.add_argument("--data", default="data/emoji")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--checkpoints", default=None, help="default: CROSSGEN_CHECKPOINTS or checkpoints/")
    p.add_argument("--prompts", type=int, default=EvalConfig.prompts)
    p.add_argument("--seed", type=int, default=EvalConfig.seed)
    p.add_argument("--limit", type=int, help="only the first N records of the split (and of each split for the evaluator)")
    p.add_argument("--train-evaluator", action="store_true", help="train the evaluator classifier first")
    p.add_argument("--evaluator-epochs", type=int, default=evaluator_config().epochs)
    p.add_argument("--work", default="runs", help="resumable evaluator training state")
    p.add_argument("--no-resume", dest="resume", action="store_false", help="train the evaluator from scratch")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="metrics JSON (default: <checkpoints>/metrics.json)")
    p.add_argument("--grid", default="assets/eval_grid.png", help="grid PNG ('' for none)")
    p.add_argument("--ood", default="data/ood", help="out-of-domain set (built there when absent: python -m crossgen.data ood)")
    p.add_argument("--npm", default="data/npm", help="npm cache the emoji set was built from (Twemoji's own RGBA "
                   "drawings, the truth of the transparency check; skipped when absent)")
    p.add_argument("--no-composition", dest="composition", action="store_false", help="skip the composition section")
    p.add_argument("--composition-baseline", metavar="DIR", help="another checkpoint folder whose generator is scored "
                   "as the 'other_generator' method of the composition section")
    p.add_argument("--composition-grid", help="grid PNG of the prompts no emoji draws (default: undrawn_grid.png beside "
                   "--grid; none when --grid is '')")
    return p


def prepare_evaluator(args: argparse.Namespace, ckpt: Path, device: torch.device) -> None:
    """Train the evaluator classifier when --train-evaluator asks; otherwise it must be in the checkpoints."""
    if args.train_evaluator:
        train_evaluator(args.data, ckpt, device, evaluator_config(epochs=args.evaluator_epochs), args.work,
                        args.resume, args.limit)
    elif not (ckpt / "evaluator.safetensors").is_file():
        raise CheckpointError(evaluator_missing_hint(ckpt, args.data))


def write_grid(path: str, cfg: EvalConfig, prompts: list[dict], generated: torch.Tensor, test: Split,
               nbest: list[list[str]], style: str) -> None:
    """The grid PNG: samples of six prompts (familiar concepts first) and captions of six test images."""
    n = cfg.images_per_prompt
    rows = familiar_first(list(range(len(prompts))), lambda i: prompts[i]["id"])[:6]
    shown = familiar_first(list(range(len(test))), lambda i: test.records[i]["id"])[:6]
    draw_grid(path, [(prompts[i]["name"], generated[i * n:(i + 1) * n]) for i in rows], n,
              [(test.images[i], nbest[i][0], test.records[i]["name"]) for i in shown], style)


def metrics_record(args: argparse.Namespace, cfg: EvalConfig, ckpt: Path, device: torch.device, train: Split,
                   test: Split, evaluator: Evaluator, style: str, cap: dict, t2i: dict, conf: dict) -> dict:
    """The metrics JSON: what was measured on what (data, config, hardware, checkpoint hashes) and the figures."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "split": args.split,
        "data": str(args.data), "styles": style, "limit": args.limit,
        "counts": {"train_images": len(train), "eval_images": len(test), "evaluator_concepts": len(evaluator.concepts)},
        "config": asdict(cfg), "hardware": hardware(device),
        "checkpoints": {"dir": str(ckpt), "sha256": {f: sha256(ckpt / f) for f in USED_FILES if (ckpt / f).is_file()},
                        "evaluator_train": evaluator.meta.get("train", {})},
        "judge": {"evaluator_artists": evaluator.meta.get("train", {}).get("artists")},  # the artists it learned
        "captioning": cap, "confidence": conf,
        "text_to_image": t2i, "grid": args.grid or None,
    }


def run_composition(args: argparse.Namespace, ckpt: Path, device: torch.device, pipe: Pipeline, evaluator: Evaluator,
                    train: Split, test: Split, nbest: list[list[str]]) -> tuple[dict, dict]:
    """The composition section (object scores left out, with a note, when the folder has no usable object reader)
    and the images of the prompts no emoji draws; writes their grid."""
    try:
        objects, note = load_object_reader(ckpt, device), None
    except CheckpointError as e:
        objects, note = None, str(e)
    real = load_split(args.data, ["train", "val"], limit=args.limit)  # the training artists' drawings of every concept
    baseline = Pipeline.from_checkpoints(args.composition_baseline, device) if args.composition_baseline else None
    cfg = CompositionConfig(seed=args.seed)
    section, grid = composition(pipe, evaluator, objects, pipe.postprocess.skin_tone or load_skin_tone(ckpt), train, real, test,
                                nbest, cfg, baseline)
    section["object_reader_missing"] = note
    section["object_reader_artists"] = objects.meta.get("train", {}).get("artists") if objects else None
    path = args.composition_grid if args.composition_grid is not None else (
        str(Path(args.grid).with_name("undrawn_grid.png")) if args.grid else "")
    if path:
        draw_undrawn_grid(path, grid)
    section["grid"] = path or None
    return section, grid


def twemoji_originals(root: str | Path) -> Path | None:
    """The folder of Twemoji's own 64 px RGBA drawings in the npm cache the emoji set was built from."""
    found = sorted(Path(root).glob("emoji-datasource-twitter-*/package/img/twitter/64"))
    return found[-1] if found else None


def transparency(test: Split, grid: dict[str, torch.Tensor], originals: Path | None, sheet: str = "") -> dict:
    """Transparent downloads (`crossgen.imaging.matte`): the matte of each test drawing whose own RGBA original is in
    `originals` (composited on white, as the app sees any image) against that original's alpha (soft IoU); and on
    the generated images of the prompts no emoji draws, the share whose four corners are fully transparent and the
    share whose object is not (mean alpha of the centre quarter above 0.5). Writes those images as RGBA on a
    checkerboard to `sheet` (to look at)."""
    ious = []
    for r in test.records if originals is not None else []:
        path = next((originals / f"{r['id']}{s}.png" for s in ("", "-fe0f") if (originals / f"{r['id']}{s}.png").is_file()), None)
        if path is not None:
            rgba = Image.open(path).convert("RGBA")
            x = to_tensor(np.array(load_image(rgba)))[0]  # (3, H, W) on white
            ious.append(matte_iou(matte(x).numpy(), np.asarray(rgba)[..., 3] / 255))
    cleared = [transparent(Image.fromarray(im.permute(1, 2, 0).numpy())) for images in grid.values() for im in images]
    alphas = [np.asarray(im)[..., 3] for im in cleared]  # (64, 64) each
    corners = [bool((a[[0, 0, -1, -1], [0, -1, 0, -1]] == 0).all()) for a in alphas]
    objects = [bool(a[16:48, 16:48].mean() > 127) for a in alphas]
    if sheet and cleared:
        board = Image.new("RGBA", (64, 64), "white")
        for i in range(0, 64, 8):
            for j in range(0, 64, 8):
                if (i + j) // 8 % 2:
                    board.paste((204, 204, 204, 255), (i, j, i + 8, j + 8))
        n = max(len(v) for v in grid.values())
        out = Image.new("RGBA", (n * 66, len(grid) * 66), "white")
        for k, im in enumerate(cleared):
            out.paste(Image.alpha_composite(board, im), ((k % n) * 66, (k // n) * 66))
        out.save(sheet)
    return {"twemoji_images": len(ious), "iou_mean": float(np.mean(ious)) if ious else None,
            "iou_median": float(np.median(ious)) if ious else None,
            "undrawn_images": len(alphas), "corners_transparent": float(np.mean(corners)) if alphas else None,
            "object_opaque": float(np.mean(objects)) if alphas else None, "sheet": sheet or None}


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    t0, device = time.time(), get_device(args.device)
    ckpt = Path(args.checkpoints) if args.checkpoints else default_checkpoints()
    cfg = EvalConfig(prompts=args.prompts, seed=args.seed)
    prepare_evaluator(args, ckpt, device)
    parts = {"evaluator_training": round(time.time() - t0, 1)}
    pipe, evaluator = Pipeline.from_checkpoints(ckpt, device), load_evaluator(ckpt, device)
    train, test = load_split(args.data, "train"), load_split(args.data, args.split, limit=args.limit)
    t1 = time.time()
    cap, nbest, readings = captioning(pipe, train, test, cfg)
    conf = confidence(pipe, test, readings, args.ood)
    t2 = time.time()
    t2i, prompts, generated = text_to_image(pipe, evaluator, train, test, cfg)
    parts.update(loading=round(t1 - t0 - parts["evaluator_training"], 1), captioning=round(t2 - t1, 1),
                 text_to_image=round(time.time() - t2, 1))
    t3 = time.time()
    comp, grid = run_composition(args, ckpt, device, pipe, evaluator, train, test, nbest) if args.composition else (None, {})
    parts["composition"] = round(time.time() - t3, 1)
    sheet = str(Path(args.grid).with_name("transparent_grid.png")) if args.grid else ""
    clear = transparency(test, grid, twemoji_originals(args.npm), sheet)
    style = "/".join(sorted({r["style"] for r in test.records}))
    if args.grid:
        write_grid(args.grid, cfg, prompts, generated, test, nbest, style)
    metrics = metrics_record(args, cfg, ckpt, device, train, test, evaluator, style, cap, t2i, conf)
    metrics["composition"], metrics["transparency"] = comp, clear
    metrics["seconds"], metrics["seconds_by_part"] = round(time.time() - t0, 1), parts
    out = Path(args.out) if args.out else ckpt / "metrics.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_json(out, metrics)
    print_table(metrics)
    print(f"wrote {out}" + (f" and {args.grid}" if args.grid else ""))
    return metrics

