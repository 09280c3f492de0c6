"""Stage `captioner`: train the LSTM on frozen ResNet18 features of (augmented) training images."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..augment import augment
from ..captioner import Captioner, CaptionerConfig, Vocab
from ..checkpoint import load_model, save_model
from ..concept_fallback import ConceptFallback, choose_threshold
from ..data import load_records
from ..image_features import FeatureConfig, ImageFeatures
from ..preprocess import normalize_text
from ..skin_tone import fit_skin_tone, load_skin_tone, tone_regions, two_tone_concepts
from .dataset import Split, load_split
from .loop import run_epochs, seed_everything


@dataclass
class CaptionerTrainConfig:
    epochs: int = 12
    batch_size: int = 256
    lr: float = 2e-3
    views: int = 2  # augmented views per training image (plus the clean one); 6 x 20 epochs took >1 h on 2 cores
    embed_dim: int = 256
    hidden_dim: int = 512
    dropout: float = 0.3
    seed: int = 0


@torch.inference_mode()
def extract(model: ImageFeatures, split: Split, device: torch.device, views: int = 0,
            g: torch.Generator | None = None, batch_size: int = 256) -> torch.Tensor:
    """(N * (1 + views), 512) features: the clean images, then `views` augmented passes."""
    feats = []
    for v in range(1 + views):
        for i in tqdm(range(0, len(split), batch_size), desc=f"features view {v}", leave=False):
            x = split.batch(torch.arange(i, min(i + batch_size, len(split))), device)
            feats.append(model.embed(augment(x, g) if v else x).float().cpu())
    return torch.cat(feats)


@torch.inference_mode()
def nbest_and_concepts(features: ImageFeatures, captioner: Captioner, vocab: Vocab, feats: torch.Tensor,
                       beam: int, n_best: int, batch_size: int = 256) -> tuple[list[list[tuple[str, float]]], torch.Tensor | None]:
    """Per row of feats (N, 512): the captioner's n-best (caption, log-probability), and the concept head's
    probabilities (N, K) on CPU (None without a head)."""
    device = next(captioner.parameters()).device
    nbest, probs = [], []
    for i in range(0, len(feats), batch_size):
        f = feats[i:i + batch_size].to(device)
        nbest += [[(vocab.decode(h.tokens), h.logprob) for h in hs] for hs in captioner.generate(f, beam=beam, n_best=n_best)]
        if features.head is not None:
            probs.append(features.head(f).softmax(-1).cpu())
    return nbest, torch.cat(probs) if probs else None


def pad(seqs: list[list[int]]) -> torch.Tensor:
    out = torch.zeros(len(seqs), max(map(len, seqs)), dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor(s)
    return out


def train_captioner(data: str | Path, out: str | Path, device: torch.device, cfg: CaptionerTrainConfig,
                    work: str | Path, resume: bool = True, limit: int | None = None) -> dict:
    g = seed_everything(cfg.seed)
    features, _ = load_model(out, "features", ImageFeatures, FeatureConfig, device)
    train, val = load_split(data, "train", limit=limit), load_split(data, "val", limit=limit)
    vocab = Vocab.build(r["name"] for r in train.records)
    x_train = extract(features, train, device, cfg.views, g if device.type == "cpu" else None)  # (N*(1+views), 512)
    x_val = extract(features, val, device)
    y_train = pad([vocab.encode(r["name"]) for r in train.records]).repeat(1 + cfg.views, 1)  # (N*(1+views), T)
    y_val = pad([vocab.encode(r["name"]) for r in val.records])
    model = Captioner(CaptionerConfig(vocab_size=len(vocab), embed_dim=cfg.embed_dim, hidden_dim=cfg.hidden_dim,
                                      dropout=cfg.dropout)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    steps = cfg.epochs * ((len(x_train) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(steps, 1), pct_start=0.1)

    def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = model(x.to(device), y.to(device))  # (B, T-1, V)
        return F.cross_entropy(logits.transpose(1, 2), y[:, 1:].to(device), ignore_index=vocab.pad)

    def train_epoch(epoch: int) -> dict:
        perm = torch.randperm(len(x_train), generator=g)
        tot = 0.0
        for i in tqdm(range(0, len(perm), cfg.batch_size), desc=f"captioner {epoch}/{cfg.epochs}", leave=False):
            idx = perm[i:i + cfg.batch_size]
            loss = loss_of(x_train[idx], y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            tot += loss.item() * len(idx)
        return {"train_loss": tot / len(perm)}

    @torch.inference_mode()
    def evaluate() -> dict:
        loss = loss_of(x_val, y_val).item()
        hyps = model.greedy(x_val.to(device))
        exact = sum(vocab.decode(h.tokens) == r["name"] for h, r in zip(hyps, val.records)) / max(len(val), 1)
        return {"val_loss": loss, "val_exact": exact}

    def save(row: dict) -> None:
        save_model(out, "captioner", model, half=True, vocab=vocab.to_json(),
                   train={"epoch": row["epoch"], "val_exact": row["val_exact"], "config": asdict(cfg)})

    best = run_epochs("captioner", model, opt, sched, cfg.epochs, train_epoch, evaluate, save, work,
                      Path(out) / "logs", resume)
    tones = fit_tones(data, out, limit)  # first: the fallback's threshold is chosen on the captions it rewrites
    return {**best, "skin_tone": tones, "fallback": fit_fallback(data, out, device, limit)}


def fit_fallback(data: str | Path, out: str | Path, device: torch.device, limit: int | None = None,
                 beam: int = 3, n_best: int = 3) -> dict:
    """Choose on the validation slice below which caption probability the feature model's concept head names
    the image instead (see `crossgen.concept_fallback`), on the captions as the Pipeline gives them (tone words
    read by `<out>/skin_tone.json` when present); writes `<out>/concept_fallback.json`. Returns the choice; {}
    when the feature model has no concept head."""
    features, meta = load_model(out, "features", ImageFeatures, FeatureConfig, device)
    if features.head is None or not meta.get("concepts"):
        return {}
    captioner, cmeta = load_model(out, "captioner", Captioner, CaptionerConfig, device)
    vocab = Vocab(cmeta["vocab"])
    names_by_id = {r["id"]: r["name"] for r in load_records(data, split="train")}
    names = [normalize_text(names_by_id.get(c, "")) for c in meta["concepts"]]
    val = load_split(data, "val", limit=limit)
    nbest, probs = nbest_and_concepts(features, captioner, vocab, extract(features, val, device), beam, n_best)
    reader = load_skin_tone(out)
    images = [val.images[i].float() / 255 for i in range(len(val))] if reader is not None else None
    threshold, scores = choose_threshold(nbest, probs, names, [r["name"] for r in val.records], reader, images)
    how = f"validation exact-name accuracy, beam {beam}" + (", tones read by the skin-tone reader" if reader else "")
    ConceptFallback(names, threshold).save(out, chosen_on=how, val_exact=scores, val_images=len(val))
    return {"threshold": threshold, "val_exact": scores}


def fit_tones(data: str | Path, out: str | Path, limit: int | None = None) -> dict:
    """Fit the skin-tone reader (`crossgen.skin_tone`) on the toned training and validation images of every
    training artist; writes `<out>/skin_tone.json`. Returns the radius and its leave-one-artist-out accuracies."""
    split = load_split(data, ["train", "val"], limit=limit)
    regions = tone_regions(split.records, split.images)
    reader, scores = fit_skin_tone(regions)
    reader.pairs = two_tone_concepts([normalize_text(r["name"]) for r in split.records])
    reader.save(out, chosen_on="leave-one-artist-out tone accuracy on the training artists' toned images",
                loo_accuracy=scores, regions=len(regions))
    return {"radius": reader.radius, "colours": len(reader.palette), "two_tone_concepts": len(reader.pairs),
            "loo_accuracy": scores}
