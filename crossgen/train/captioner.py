"""Stage `captioner`: train the LSTM on frozen ResNet18 features of (augmented) training images, then fit
the caption post-processing (skin-tone reader, concept-head fallback) on the emoji set.

A reader decides which images and captions are paired (`EmojiCaptionerData`: names of the built set in
memory; `StreamedCaptionerData`: every caption of an external set, features extracted per rank);
`train_captioner` is the one loop for both."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..checkpoint import load_model, save_model
from ..data import load_records
from ..imaging.augment import augment
from ..models.captioner import Captioner, CaptionerConfig, Vocab
from ..models.image_features import FeatureConfig, ImageFeatures
from ..postprocess.chain import PostProcess
from ..postprocess.concept_fallback import ConceptFallback
from ..postprocess.skin_tone import SkinTone, fit_skin_tone, load_skin_tone, tone_regions, two_tone_concepts
from ..preprocess import normalize_text
from .dataset import Split, load_split
from .distributed import Dist, Precision, all_min, all_sum, wrap
from .loop import run_epochs, seed_everything
from .streaming import DataConfig, loader, to_float


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
            probs.append(features.concepts(f).cpu())
    return nbest, torch.cat(probs) if probs else None


def pad(seqs: list[list[int]]) -> torch.Tensor:
    out = torch.zeros(len(seqs), max(map(len, seqs)), dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor(s)
    return out


class CaptionPairs(NamedTuple):
    """Captions paired with image features: several captions may point at one feature row."""
    feats: torch.Tensor  # (M, 512) image features on CPU (clean, then augmented views)
    rows: torch.Tensor  # (P,) the feature row of each caption
    tokens: torch.Tensor  # (P, T) token ids, <bos> ... <eos> <pad>...


class CaptionerData(Protocol):
    """What `train_captioner` asks of a data source."""
    vocab: Vocab
    max_len: int  # longest caption in words
    monitor: tuple[str, bool]  # the validation figure that chooses the saved epoch, and whether higher is better

    def pairs(self, features: ImageFeatures, g: torch.Generator) -> tuple[CaptionPairs, CaptionPairs]: ...  # train, val
    def shuffle(self, g: torch.Generator) -> torch.Generator: ...  # orders the training pairs each epoch
    def score(self, model: Captioner, val: CaptionPairs) -> dict: ...  # validation figures beside the loss
    def meta(self, row: dict, cfg: CaptionerTrainConfig, train: CaptionPairs) -> dict: ...  # the "train" field


def train_captioner(source: CaptionerData, out: str | Path, d: Dist, cfg: CaptionerTrainConfig, work: str | Path,
                    resume: bool = True, amp: bool = False) -> dict:
    """Train the LSTM captioner on frozen features of `<out>/features` (extracted once) against `source`'s
    captions (AdamW, one-cycle LR, gradients clipped at 5, mixed precision on CUDA when `amp`, DDP when `d` is
    distributed); the epoch best by `source.monitor` (the emoji set: validation exact-name accuracy; an external
    set: the validation loss per token) is saved as `<out>/captioner.safetensors`. Returns the best epoch's row."""
    g = seed_everything(cfg.seed)
    features, _ = load_model(out, "features", ImageFeatures, FeatureConfig, d.device)
    train, val = source.pairs(features, g)
    del features
    vocab = source.vocab
    model = Captioner(CaptionerConfig(vocab_size=len(vocab), embed_dim=cfg.embed_dim, hidden_dim=cfg.hidden_dim,
                                      dropout=cfg.dropout, max_len=source.max_len)).to(d.device)
    net = wrap(model, d)
    steps = all_min((len(train.rows) + cfg.batch_size - 1) // cfg.batch_size, d)  # the same number on every rank
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(cfg.epochs * steps, 1), pct_start=0.1)
    prec = Precision(d.device, amp)
    shuffle = source.shuffle(g)

    def loss_of(m: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """Next-word cross-entropy of captions y (B, T) given features x (B, 512), <pad> ignored."""
        y = y.to(d.device)
        with prec.autocast():
            logits = m(x.to(d.device), y)  # (B, T-1, V)
        return F.cross_entropy(logits.float().transpose(1, 2), y[:, 1:], ignore_index=vocab.pad, reduction=reduction)

    def train_epoch(epoch: int) -> dict:
        perm = torch.randperm(len(train.rows), generator=shuffle)
        tot = n = 0.0
        for s in tqdm(range(steps), desc=f"captioner {epoch}/{cfg.epochs}", leave=False, disable=not d.main):
            idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            loss = loss_of(net, train.feats[train.rows[idx]], train.tokens[idx])
            prec.step(loss, opt, model.parameters(), clip=5.0)
            sched.step()
            tot, n = tot + loss.item() * len(idx), n + len(idx)
        tot, n = all_sum([tot, n], d)
        return {"train_loss": tot / max(n, 1)}

    @torch.inference_mode()
    def evaluate() -> dict:
        tot = tokens = 0.0
        for i in range(0, len(val.rows), 1024):
            x, y = val.feats[val.rows[i:i + 1024]], val.tokens[i:i + 1024]
            tot += loss_of(model, x, y, "sum").item()
            tokens += (y[:, 1:] != vocab.pad).sum().item()
        tot, tokens = all_sum([tot, tokens], d)
        return {"val_loss": tot / max(tokens, 1), **source.score(model, val)}  # loss per token

    def save(row: dict) -> None:
        save_model(out, "captioner", model, half=True, vocab=vocab.to_json(), train=source.meta(row, cfg, train))

    monitor, maximise = source.monitor
    return run_epochs("captioner", model, opt, sched, cfg.epochs, train_epoch, evaluate, save, work,
                      Path(out) / "logs", resume, monitor, main=d.main, maximise=maximise)


# --------------------------------------------------------------------------- the built emoji set

class EmojiCaptionerData:
    """The built emoji set: each image's name is its caption; the training images are seen clean and in
    cfg.views augmented views. Validation also scores the greedy caption's exact-name accuracy."""

    def __init__(self, data: str | Path, device: torch.device, views: int, limit: int | None = None):
        self.train, self.val = load_split(data, "train", limit=limit), load_split(data, "val", limit=limit)
        self.vocab = Vocab.build(r["name"] for r in self.train.records)
        self.max_len, self.device, self.views = CaptionerConfig.max_len, device, views
        # the caption is the name, so the epoch that names the most validation drawings exactly is kept: with 6 views
        # the loss per token is lowest at epoch 2 of 6 (68.8 % exact), the last epoch names 70.9 % (experiments.md)
        self.monitor = ("val_exact", True)

    def pairs(self, features: ImageFeatures, g: torch.Generator) -> tuple[CaptionPairs, CaptionPairs]:
        x_train = extract(features, self.train, self.device, self.views, g if self.device.type == "cpu" else None)
        y_train = pad([self.vocab.encode(r["name"]) for r in self.train.records]).repeat(1 + self.views, 1)
        x_val = extract(features, self.val, self.device)  # (N, 512)
        y_val = pad([self.vocab.encode(r["name"]) for r in self.val.records])
        return CaptionPairs(x_train, torch.arange(len(x_train)), y_train), CaptionPairs(x_val, torch.arange(len(x_val)), y_val)

    def shuffle(self, g: torch.Generator) -> torch.Generator:
        return g  # the stage's generator, after it drew the augmented views

    def score(self, model: Captioner, val: CaptionPairs) -> dict:
        hyps = model.greedy(val.feats.to(self.device))
        exact = sum(self.vocab.decode(h.tokens) == r["name"] for h, r in zip(hyps, self.val.records))
        return {"val_exact": exact / max(len(self.val), 1)}

    def meta(self, row: dict, cfg: CaptionerTrainConfig, train: CaptionPairs) -> dict:
        return {"epoch": row["epoch"], "val_exact": row["val_exact"], "config": asdict(cfg)}


# --------------------------------------------------------------------------- external sets, streamed

@torch.inference_mode()
def extract_shard(model: ImageFeatures, records: list[dict], d: Dist, data: DataConfig, views: int = 0,
                  batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's (M, 512) features on CPU and (M,) record index of each row: clean, then `views` augmented passes."""
    dl = loader(records, model.config.image_size, batch_size, d, data.num_workers, False, 0)
    feats, rows = [], []
    for v in range(1 + views):
        for x, idx, _ in tqdm(dl, desc=f"features view {v}", leave=False, disable=not d.main):
            x = to_float(x, d.device)
            feats.append(model.embed(augment(x) if v else x).float().cpu())
            rows.append(idx)
    return torch.cat(feats), torch.cat(rows)


def caption_pairs(feats: torch.Tensor, rows: torch.Tensor, records: list[dict], vocab: Vocab,
                  max_len: int) -> CaptionPairs:
    """Every caption of every extracted row (rows: (M,) record index of each feature row)."""
    feat_idx, seqs = [], []
    for j, i in enumerate(rows.tolist()):
        for c in records[i]["captions"]:
            feat_idx.append(j)
            seqs.append(vocab.encode(c, max_len))
    return CaptionPairs(feats, torch.tensor(feat_idx, dtype=torch.long), pad(seqs))


class StreamedCaptionerData:
    """An external set: features of this rank's shard of images are extracted once (streamed), then every
    (image, caption) pair is a training example; the vocabulary is the words seen data.vocab_min_count times."""

    def __init__(self, records: dict[str, list[dict]], d: Dist, cfg: CaptionerTrainConfig, data: DataConfig):
        self.records, self.d, self.data, self.views, self.seed = records, d, data, cfg.views, cfg.seed
        self.vocab = Vocab.build((c for r in records["train"] for c in r["captions"]), min_count=data.vocab_min_count)
        self.max_len = data.max_len
        self.monitor = ("val_loss", False)  # many captions per image: no exact name to count

    def pairs(self, features: ImageFeatures, g: torch.Generator) -> tuple[CaptionPairs, CaptionPairs]:
        train, val = self.records["train"], self.records["val"]
        x_train, rows = extract_shard(features, train, self.d, self.data, self.views)  # (M, 512)
        x_val, val_rows = extract_shard(features, val, self.d, self.data)
        return (caption_pairs(x_train, rows, train, self.vocab, self.max_len),
                caption_pairs(x_val, val_rows, val, self.vocab, self.max_len))

    def shuffle(self, g: torch.Generator) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed + 1000 * self.d.rank)  # each rank shuffles its own pairs

    def score(self, model: Captioner, val: CaptionPairs) -> dict:
        return {}

    def meta(self, row: dict, cfg: CaptionerTrainConfig, train: CaptionPairs) -> dict:
        return {"epoch": row["epoch"], "val_loss": row["val_loss"], "config": asdict(cfg), "pairs": len(train.rows),
                "ranks": self.d.world}


# --------------------------------------------------------------------------- caption post-processing fits

THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # of the concept-head fallback; 0 = never replace


def choose_threshold(nbest: list[list[tuple[str, float]]], probs: torch.Tensor, names: list[str], truth: list[str],
                     reader: SkinTone | None = None, images: list[torch.Tensor] | None = None) -> tuple[float, dict[str, float]]:
    """The fallback threshold among THRESHOLDS with the best exact-name accuracy of the best caption (the smallest
    on a tie), and the accuracy at each. nbest per image as from the captioner, probs (N, K) of the head; with a
    skin-tone reader and the images (3, H, W), the best caption's tone words are read first, as the Pipeline does."""
    truth = [normalize_text(t) for t in truth]
    scores = {}
    reader = reader if images is not None else None
    for t in THRESHOLDS:
        steps = PostProcess(ConceptFallback(names, t), reader)  # the first two steps (no reader: the tone step skipped)
        best = [steps.tone(steps.name(cs, p)[0], images[i] if reader else None)[0][0] if cs else ""
                for i, (cs, p) in enumerate(zip(nbest, probs))]
        scores[str(t)] = sum(normalize_text(b) == y for b, y in zip(best, truth)) / max(len(truth), 1)
    chosen = max(THRESHOLDS, key=lambda t: (scores[str(t)], -t))
    return chosen, scores


def fit_fallback(data: str | Path, out: str | Path, device: torch.device, limit: int | None = None,
                 beam: int = 3, n_best: int = 3) -> dict:
    """Choose on the validation slice below which caption probability the feature model's concept head names
    the image instead (see `crossgen/postprocess/concept_fallback.py`), on the captions as the Pipeline gives them (tone words
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
    """Fit the skin-tone reader (`crossgen/postprocess/skin_tone.py`) on the toned training and validation images of every
    training artist; writes `<out>/skin_tone.json`. Returns the radius and its leave-one-artist-out accuracies."""
    split = load_split(data, ["train", "val"], limit=limit)
    regions = tone_regions(split.records, split.images)
    reader, scores = fit_skin_tone(regions)
    reader.pairs = two_tone_concepts([normalize_text(r["name"]) for r in split.records])
    reader.save(out, chosen_on="leave-one-artist-out tone accuracy on the training artists' toned images",
                loo_accuracy=scores, regions=len(regions))
    return {"radius": reader.radius, "colours": len(reader.palette), "two_tone_concepts": len(reader.pairs),
            "loo_accuracy": scores}
