"""Fit `crossgen/postprocess/confidence.py`: the out-of-domain probe and the caption-probability calibration, on validation data
only (the training drawings, the validation slice and the validation part of the out-of-domain set)."""
from __future__ import annotations

import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import MANIFEST, load_json, load_model
from ..data.ood import TARGET_KINDS, ensure_ood, load_ood
from ..imaging.augment import augment
from ..models.captioner import Captioner, CaptionerConfig, Vocab
from ..models.image_features import FeatureConfig, ImageFeatures
from ..postprocess.chain import PostProcess
from ..postprocess.concept_fallback import load_fallback
from ..postprocess.confidence import SOURCES, Calibration, Confidence, DomainCheck, nbest_logits
from ..postprocess.metrics import auroc, expected_calibration_error, fpr_at_tpr
from ..postprocess.skin_tone import load_skin_tone
from ..preprocess import load_image, normalize_text, resize, to_tensor
from .captioner import extract, nbest_and_concepts
from .dataset import load_split

ACCEPT = 0.98  # share of the validation slice the domain threshold lets through
WEIGHT_DECAY = 1e-2  # chosen by leave-one-artist-out acceptance and validation AUROC (docs/experiments.md)
# Candidates for DomainCheck.msp_weight (chosen by choose_msp_weight). Capped at 0.5: with features trained without
# two of the artists, a larger weight turned away more than 1 point more of those artists' drawings (an unseen
# artist makes the concept head unsure too; docs/experiments.md).
MSP_WEIGHTS = (0.0, 0.25, 0.5)


# --------------------------------------------------------------------------- fitting


def learned_styles(out: str | Path) -> set[str] | None:
    """The artists whose drawings trained the models in `out` (the training counts of manifest.json's data
    record), None when the folder records none."""
    path = Path(out) / MANIFEST
    counts = (load_json(path).get("data") or {}).get("counts", {}) if path.is_file() else {}
    return {style for style, c in counts.items() if c.get("train")} or None


def fit_probe(inside: torch.Tensor, outside: torch.Tensor, weight_decay: float = WEIGHT_DECAY, steps: int = 300,
              seed: int = 0) -> DomainCheck:
    """A logistic probe on standardised unit features, in-domain (N, 512) against out-of-domain (M, 512), the two
    classes weighted equally. The threshold is set later (`DomainCheck.threshold`)."""
    inside, outside = F.normalize(inside.float(), dim=1), F.normalize(outside.float(), dim=1)
    mean, std = inside.mean(0), inside.std(0) + 1e-6
    x = (torch.cat([inside, outside]) - mean) / std  # (N + M, 512)
    y = torch.cat([torch.ones(len(inside)), torch.zeros(len(outside))])
    w = torch.cat([torch.full((len(inside),), 0.5 / len(inside)), torch.full((len(outside),), 0.5 / len(outside))])
    torch.manual_seed(seed)
    probe = torch.nn.Linear(x.shape[1], 1)
    opt = torch.optim.Adam(probe.parameters(), lr=1e-2)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            loss = (F.binary_cross_entropy_with_logits(probe(x).squeeze(1), y, reduction="none") * w).sum()
            (loss + weight_decay * probe.weight.pow(2).sum()).backward()
            opt.step()
    return DomainCheck(mean.tolist(), std.tolist(), probe.weight.detach()[0].tolist(), float(probe.bias.detach()),
                       threshold=0.0)


def choose_msp_weight(inside: torch.Tensor, val: torch.Tensor, val_concepts: torch.Tensor | None,
                      outside: torch.Tensor, outside_concepts: torch.Tensor | None, rows: list[dict]
                      ) -> tuple[float, dict[float, float]]:
    """The weight of the log of the concept head's largest probability in the domain score, by a 2-fold
    cross-validation over the sources of the out-of-domain validation part (`rows`; the crops of one picture stay
    in one fold): a probe fitted on one fold's images (and `inside`, the training drawings) scores the other fold
    against the validation slice (`val`), and the weight with the lowest mean FPR at 95 % TPR over the target kinds
    wins, the smaller on a tie. 0 without a concept head. Returns the weight and each candidate's mean FPR95."""
    if val_concepts is None or outside_concepts is None:
        return 0.0, {}
    fold = np.array([zlib.crc32(r["source"].encode()) % 2 for r in rows])
    kinds = np.array([r["kind"] for r in rows])
    probes = [fit_probe(inside, outside[torch.from_numpy(fold != f)]) for f in (0, 1)]
    fpr = {}
    for a in MSP_WEIGHTS:
        per_fold_kind = []
        for f, probe in enumerate(probes):
            check = replace(probe, msp_weight=a)
            emoji, other = check.score(val, val_concepts).numpy(), check.score(outside, outside_concepts).numpy()
            per_fold_kind += [fpr_at_tpr(emoji, other[(fold == f) & (kinds == k)]) for k in TARGET_KINDS
                              if ((fold == f) & (kinds == k)).any()]
        fpr[a] = float(np.mean(per_fold_kind))
    return min(MSP_WEIGHTS, key=lambda a: (fpr[a], a)), fpr


def fit_nbest(logprobs: list[list[float]], answer: list[int], steps: int = 200) -> list[float]:
    """[a, c] of the n-best calibration (`crossgen.postprocess.confidence.Calibration`): softmax over [a * logprob_1 ..
    a * logprob_n, c] minimising the log-loss of `answer`, the index of the caption that is exactly the image's
    name (n, "something else", when none is). Lists may be of different lengths."""
    n = max(len(lps) for lps in logprobs)
    lp = torch.full((len(logprobs), n), -torch.inf, dtype=torch.float64)  # (N, n); missing captions: -inf
    for i, lps in enumerate(logprobs):
        lp[i, :len(lps)] = torch.tensor(lps, dtype=torch.float64)
    y = torch.tensor([a if a < len(lps) else n for a, lps in zip(answer, logprobs)])
    ac = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([ac], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(nbest_logits(lp, ac[0], ac[1]), y)  # (N, n + 1) logits, as the Pipeline shows them
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return [float(v) for v in ac.detach()]


def answer_index(captions: list[tuple[str, float]], name: str) -> int:
    """Where the image's exact name is in its n-best list; len(captions) when it is not there."""
    names = [normalize_text(c) for c, _ in captions]
    name = normalize_text(name)
    return names.index(name) if name in names else len(captions)


@torch.inference_mode()
def embed_images(features: ImageFeatures, images: list, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """(N, 512) features of any readable images, preprocessed as the Pipeline does."""
    size = features.config.image_size
    out = []
    for i in range(0, len(images), batch_size):
        x = to_tensor([resize(load_image(im), size) for im in images[i:i + batch_size]])
        out.append(features.embed(x).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, features.config.feature_dim)


def nbest_captions(data: str | Path, out: str | Path, features: ImageFeatures, device: torch.device,
                   limit: int | None = None, beam: int = 3, n_best: int = 3
                   ) -> tuple[list[list[tuple[str, float]]], list[str], torch.Tensor, torch.Tensor | None, list[dict]]:
    """On the validation slice: each image's n-best list as the Pipeline gives it (fallback, then tones, with
    the captioner and steps saved in `out` on `features`), the source of its probabilities, the features (N, 512),
    the concept head's probabilities (N, K; None without a head) and the records."""
    captioner, cmeta = load_model(out, "captioner", Captioner, CaptionerConfig, device)
    val = load_split(data, "val", limit=limit)
    feats = extract(features, val, device)
    nbest, probs = nbest_and_concepts(features, captioner, Vocab(cmeta["vocab"]), feats, beam, n_best)
    steps = PostProcess(load_fallback(out, features.config.num_classes), load_skin_tone(out))  # the first two steps
    lists, sources = [], []
    for i, caps in enumerate(nbest):
        named, source = steps.name(caps, probs[i] if probs is not None else None)
        lists.append(steps.tone(named, val.images[i].float() / 255))
        sources.append(source)
    return lists, sources, feats, probs, val.records


def fit_confidence(data: str | Path, out: str | Path, device: torch.device, work: str | Path,
                   limit: int | None = None, views: int = 1, seed: int = 0) -> dict:
    """Fit and write `<out>/confidence.json`: the probe on the training drawings of every artist in `data` (clean
    and `views` augmented views) against the validation part of the out-of-domain set (built into `<work>/ood`
    when absent), its threshold on the whole validation slice, and the calibration of the best caption's
    probability on the validation drawings of the artists the captioner learned from (`learned_styles`; all of
    them when the folder records none). A dataset with more artists than the models learned from widens what the
    probe knows as emoji; it cannot teach the calibration how often the captions are right for artists the
    captioner never saw (docs/experiments.md). Returns the validation figures."""
    features, _ = load_model(out, "features", ImageFeatures, FeatureConfig, device)
    g = torch.Generator().manual_seed(seed)
    train = load_split(data, "train", limit=limit)
    inside = [extract(features, train, device)]
    for _ in range(views):
        inside.append(torch.cat([features.embed(augment(train.batch(torch.arange(i, min(i + 256, len(train))),
                                                                     torch.device("cpu")), g)).float().cpu()
                                 for i in range(0, len(train), 256)]))
    ood_rows, ood_images = load_ood(ensure_ood(Path(work) / "ood"), "val")
    outside = embed_images(features, ood_images, device)
    nbest, sources, val_feats, val_concepts, val_records = nbest_captions(data, out, features, device, limit)
    outside_concepts = features.concepts(outside.to(device))
    msp_weight, msp_fpr95 = choose_msp_weight(torch.cat(inside), val_feats, val_concepts, outside, outside_concepts,
                                              ood_rows)
    domain = replace(fit_probe(torch.cat(inside), outside), msp_weight=msp_weight)
    val_scores = domain.score(val_feats, val_concepts).numpy()
    domain.threshold = float(np.quantile(val_scores, 1 - ACCEPT))
    ood_scores = domain.score(outside, outside_concepts).numpy()
    kinds = np.array([r["kind"] for r in ood_rows])
    per_kind = {k: {"auroc": auroc(val_scores, ood_scores[kinds == k]),
                    "fpr95": fpr_at_tpr(val_scores, ood_scores[kinds == k]),
                    "passed": float((ood_scores[kinds == k] >= domain.threshold).mean())}
                for k in sorted(set(kinds))}

    styles = learned_styles(out)
    learned = np.array([styles is None or r["style"] in styles for r in val_records])
    answers = [answer_index(caps, r["name"]) for caps, r in zip(nbest, val_records)]
    correct = np.array([a == 0 for a in answers], float)
    logprobs = [[lp for _, lp in caps] for caps in nbest]
    src = np.array(sources)
    fit_on = {s: np.flatnonzero(learned & (src == s)) for s in SOURCES}
    params = {s: fit_nbest([logprobs[i] for i in idx], [answers[i] for i in idx]) if len(idx) >= 10 else [1.0, 0.0]
              for s, idx in fit_on.items()}
    calibration = Calibration(params)
    shown = np.array([calibration.probabilities(lps, s)[0] for lps, s in zip(logprobs, sources)])
    raw = np.array([np.exp(lps[0]) for lps in logprobs])
    figures = {"val_images": len(val_records), "val_accepted": float((val_scores >= domain.threshold).mean()),
               "probe_artists": sorted({r["style"] for r in train.records}), "ood_val": per_kind,
               "msp_weight_cv_fpr95": {str(a): v for a, v in msp_fpr95.items()},
               "calibration_images": int(learned.sum()), "calibration_artists": sorted(styles) if styles else None,
               "ece_val_before": expected_calibration_error(raw[learned], correct[learned]),
               "ece_val_after": expected_calibration_error(shown[learned], correct[learned])}
    Confidence(domain, calibration).save(
        out, chosen_on=f"probe: training drawings of every artist in the data + {views} augmented view(s) against "
                       f"the out-of-domain set's validation part, weight decay {WEIGHT_DECAY}, plus {msp_weight} x log "
                       "max concept probability (the weight by a source-split 2-fold cross-validation in that part, "
                       "lowest mean FPR95); threshold: {ACCEPT:.0%} "
                       "of the validation slice accepted; calibration: the n-best list as one distribution with "
                       "'something else' (softmax over a x log-probability and c), per source, by the log-loss of which "
                       "caption is exactly the name on the validation drawings of the artists the captioner learned from", **figures)
    return figures
