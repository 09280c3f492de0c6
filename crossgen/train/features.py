"""Stage `features`: train the ResNet18 feature extractor to name what an image shows.

On the built emoji set it learns each image's concept (class head) and the words of its name, and, with
outlier exposure (Hendrycks et al., arXiv 1812.04606), that the out-of-domain set's train part (photos, text,
screenshots, noise) is none of them: uniform concept probabilities and no name word; on an
external set (COCO, Flickr, a folder) the most frequent words of its captions (multi-label word head),
optionally from local ImageNet weights at 224 px. A reader decides what is read and scored
(`EmojiFeatureData`, `StreamedFeatureData`); `train_features` is the one loop for both.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, NamedTuple, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..checkpoint import load_model, save_model
from ..data import load_records
from ..data.ood import ensure_ood, load_ood
from ..imaging.augment import augment
from ..models.image_features import FeatureConfig, FeatureOutput, ImageFeatures, load_imagenet_state
from ..postprocess.metrics import auroc
from ..preprocess import load_image, resize
from .dataset import Split, concept_index, load_split, word_index, word_targets
from .distributed import Dist, Precision, all_sum, wrap
from .loop import run_epochs, seed_everything
from .streaming import DataConfig, loader, multi_hot, to_float, top_words, word_sets


@dataclass
class FeatureTrainConfig:
    epochs: int = 40  # still improving at 14 (36.6 % top-1 on Twemoji); 40: 49.5 %
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    word_loss: float = 0.5  # weight of the word head beside a concept head (alone, it is the whole loss)
    augment: float = 1.0
    outliers: float = 0.5  # weight of the outlier-exposure term (cross-entropy to uniform; 0: no outliers shown)
    outlier_batch: int = 32  # outliers added to each batch of the emoji set
    seed: int = 0


class FeatureBatch(NamedTuple):
    x: torch.Tensor  # (B, 3, S, S) float in [0, 1] on the device
    labels: torch.Tensor | None  # (B,) concept index, -1 for an outlier; None without a concept head
    words: torch.Tensor | None  # (B, W) 0/1 word targets; None without a word head


class FeatureData(Protocol):
    """What `train_features` asks of a data source."""
    concepts: dict[str, int]  # concept id -> class index ({} : no concept head)
    words: dict[str, int]  # word -> index of the word head ({}: no word head)

    def new_model(self) -> ImageFeatures: ...
    def steps(self) -> int: ...  # training batches per epoch (on this rank)
    def batches(self, epoch: int, g: torch.Generator) -> Iterator[FeatureBatch]: ...
    def evaluate(self, model: ImageFeatures, prec: Precision) -> dict: ...  # the row's validation figures
    def meta(self, row: dict, cfg: FeatureTrainConfig) -> dict: ...  # save_model's extra fields


def feature_loss(out: FeatureOutput, batch: FeatureBatch, cfg: FeatureTrainConfig) -> torch.Tensor:
    """Cross-entropy of the concept head (label-smoothed) on the emoji, cfg.outliers x cross-entropy to the
    uniform distribution on the outliers (label -1), plus cfg.word_loss x BCE of the word head (an outlier's
    targets are all 0); with no concept head the word BCE is the whole loss."""
    loss = None
    if batch.labels is not None:
        logits, inside = out.class_logits.float(), batch.labels >= 0  # (B, C), (B,)
        loss = F.cross_entropy(logits[inside], batch.labels[inside], label_smoothing=cfg.label_smoothing)
        if not inside.all():
            loss = loss + cfg.outliers * -logits[~inside].log_softmax(1).mean(1).mean()
    if batch.words is not None:
        words = F.binary_cross_entropy_with_logits(out.word_logits.float(), batch.words)
        loss = words if loss is None else loss + cfg.word_loss * words
    return loss


def train_features(source: FeatureData, out: str | Path, d: Dist, cfg: FeatureTrainConfig, work: str | Path,
                   resume: bool = True, name: str = "features", amp: bool = True) -> dict:
    """Train an ImageFeatures model on `source`'s training batches (AdamW, one-cycle LR, augmentation, mixed
    precision on CUDA when `amp`, DDP when `d` is distributed); the best validation epoch is saved as
    `<out>/<name>.safetensors`. Returns the best epoch's row."""
    g = seed_everything(cfg.seed)
    model = source.new_model().to(d.device).to(memory_format=torch.channels_last)
    net = wrap(model, d)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(cfg.epochs * source.steps(), 1),
                                                pct_start=0.15)
    prec = Precision(d.device, amp)

    def train_epoch(epoch: int) -> dict:
        total = n = 0.0
        for batch in tqdm(source.batches(epoch, g), total=source.steps(), desc=f"{name} {epoch}/{cfg.epochs}",
                          leave=False, disable=not d.main):
            x = batch.x  # (B, 3, S, S)
            if cfg.augment:
                x = augment(x, g if d.device.type == "cpu" else None, cfg.augment)
            with prec.autocast():
                loss = feature_loss(net(x.contiguous(memory_format=torch.channels_last)), batch, cfg)
            prec.step(loss, opt, model.parameters())
            sched.step()
            total, n = total + loss.item() * len(x), n + len(x)
        total, n = all_sum([total, n], d)
        return {"train_loss": total / max(n, 1)}

    def save(row: dict) -> None:
        save_model(out, name, model, half=True, **source.meta(row, cfg))

    return run_epochs(name, model, opt, sched, cfg.epochs, train_epoch, lambda: source.evaluate(model, prec), save,
                      work, Path(out) / "logs", resume, main=d.main)


# --------------------------------------------------------------------------- the built emoji set

@torch.inference_mode()
def evaluate(model: ImageFeatures, split: Split, device: torch.device, batch_size: int = 512) -> dict:
    """Loss and top-1/top-5 accuracy of the concept head on a split (unknown concepts skipped)."""
    keep = (split.labels >= 0).nonzero()[:, 0]
    loss = top1 = top5 = 0.0
    for i in range(0, len(keep), batch_size):
        idx = keep[i:i + batch_size]
        out = model(split.batch(idx, device))
        y = split.labels[idx].to(device)
        loss += F.cross_entropy(out.class_logits, y, reduction="sum").item()
        top = out.class_logits.topk(5, dim=1).indices
        top1 += (top[:, 0] == y).sum().item()
        top5 += (top == y[:, None]).any(1).sum().item()
    n = max(len(keep), 1)  # no known concept (tiny --limit runs): zeros
    return {"loss": loss / n, "top1": top1 / n, "top5": top5 / n}


class EmojiFeatureData:
    """The built emoji set in memory: concept labels of the training concepts, and the words of their names
    when cfg.word_loss > 0. The best epoch is the lowest validation concept loss; with `log_test`, accuracy on
    the held-out artist is logged each epoch (never used to choose). With cfg.outliers > 0 each batch gets
    cfg.outlier_batch images of the out-of-domain set's train part (`ood`, built there when absent), and each
    epoch logs how well the largest concept probability tells the validation slice from the out-of-domain
    validation part (AUROC; logged, not used to choose)."""

    def __init__(self, data: str | Path, device: torch.device, cfg: FeatureTrainConfig, limit: int | None = None,
                 log_test: bool = True, init: str | Path | None = None, ood: str | Path | None = None):
        train_records = load_records(data, split="train")[:limit or None]  # the records alone: no images decoded
        self.concepts = concept_index(train_records)
        self.words = word_index(train_records) if cfg.word_loss > 0 else {}
        self.train = load_split(data, "train", self.concepts, limit)
        self.val = load_split(data, "val", self.concepts, limit)
        self.test = load_split(data, "test", self.concepts, limit) if log_test else None
        self.targets = word_targets(self.train.records, self.words)  # (N, W)
        self.device, self.batch_size, self.limit = device, cfg.batch_size, limit
        self.init = init  # a checkpoint folder whose feature model the training starts from (None: from scratch)
        self.outlier_batch = cfg.outlier_batch if cfg.outliers > 0 and ood is not None else 0
        size = self.train.images.shape[-1]
        self.outliers = outlier_images(ood, "train", size, limit) if self.outlier_batch else None  # (M, 3, S, S)
        self.ood_val = outlier_images(ood, "val", size, limit) if self.outlier_batch else None

    def new_model(self) -> ImageFeatures:
        model = ImageFeatures(FeatureConfig(num_classes=len(self.concepts), num_words=len(self.words)))
        return start_from(model, self.init, self.concepts, self.words) if self.init else model

    def steps(self) -> int:
        return (len(self.train) + self.batch_size - 1) // self.batch_size

    def batches(self, epoch: int, g: torch.Generator) -> Iterator[FeatureBatch]:
        perm = torch.randperm(len(self.train), generator=g)
        for i in range(0, len(perm), self.batch_size):
            idx = perm[i:i + self.batch_size]
            x, labels = self.train.batch(idx, self.device), self.train.labels[idx]
            words = self.targets[idx] if self.words else None
            if self.outlier_batch:  # outliers at the end of the batch: label -1, no name word
                pick = torch.randint(len(self.outliers), (self.outlier_batch,), generator=g)
                x = torch.cat([x, self.outliers[pick].to(self.device).float().div_(255)])
                labels = torch.cat([labels, labels.new_full((self.outlier_batch,), -1)])
                words = None if words is None else torch.cat([words, words.new_zeros(self.outlier_batch, words.shape[1])])
            yield FeatureBatch(x, labels.to(self.device), None if words is None else words.to(self.device))

    def evaluate(self, model: ImageFeatures, prec: Precision) -> dict:
        v = evaluate(model, self.val, self.device)
        row = {"val_loss": v["loss"], "val_top1": v["top1"], "val_top5": v["top5"]}
        if self.ood_val is not None:
            inside, outside = (max_probability(model, images, self.device) for images in (self.val.images, self.ood_val))
            row["val_ood_auroc"] = auroc(inside.numpy(), outside.numpy())
        if self.test is not None:
            t = evaluate(model, self.test, self.device)
            row.update(test_top1=t["top1"], test_top5=t["top5"])
        return row

    def meta(self, row: dict, cfg: FeatureTrainConfig) -> dict:
        return {"concepts": list(self.concepts), "words": list(self.words),
                "train": {"epoch": row["epoch"], "val_top1": row["val_top1"], "config": asdict(cfg),
                          "images": len(self.train), "limit": self.limit,
                          "outliers": 0 if self.outliers is None else len(self.outliers),
                          "artists": sorted({r["style"] for r in self.train.records}),
                          **({"init": str(self.init)} if self.init else {})}}


def outlier_images(ood: str | Path, split: str, size: int, limit: int | None = None) -> torch.Tensor:
    """(M, 3, size, size) uint8: one part of the out-of-domain set (built into `ood` when absent), read and
    preprocessed as the Pipeline reads an upload."""
    _, images = load_ood(ensure_ood(ood), split)
    images = images[:limit or None]
    return torch.from_numpy(np.stack([resize(load_image(im), size) for im in images])).permute(0, 3, 1, 2).contiguous()


@torch.inference_mode()
def max_probability(model: ImageFeatures, images: torch.Tensor, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """(N,) the largest concept probability of each uint8 image (N, 3, S, S)."""
    return torch.cat([model(images[i:i + batch_size].to(device).float().div_(255)).class_logits.float().softmax(1)
                      .amax(1).cpu() for i in range(0, len(images), batch_size)])


def start_from(model: ImageFeatures, directory: str | Path, concepts: dict[str, int], words: dict[str, int]) -> ImageFeatures:
    """`model` with the backbone of the feature model saved in `directory`, and the rows of its concept and word
    heads for the concepts and words both models have (the others keep their fresh initialisation)."""
    old, meta = load_model(directory, "features", ImageFeatures, FeatureConfig)
    model.backbone.load_state_dict(old.backbone.state_dict())
    for new_head, old_head, new_index, old_names in ((model.head[1] if model.head is not None else None,
                                                      old.head[1] if old.head is not None else None, concepts,
                                                      meta.get("concepts", [])),
                                                     (model.word_head, old.word_head, words, meta.get("words", []))):
        if new_head is None or old_head is None:
            continue
        pairs = [(new_index[name], i) for i, name in enumerate(old_names) if name in new_index]
        if pairs:
            to, frm = (torch.tensor(idx) for idx in zip(*pairs))
            with torch.no_grad():
                new_head.weight[to] = old_head.weight[frm].float()
                new_head.bias[to] = old_head.bias[frm].float()
    return model


# --------------------------------------------------------------------------- external sets, streamed

def pretrained_features(config: FeatureConfig, weights: str) -> ImageFeatures:
    """ImageFeatures, its backbone loaded from a local ImageNet state dict when `weights` is set.
    The saved config keeps imagenet_weights=False: the checkpoint itself holds the weights."""
    model = ImageFeatures(config)
    if weights:
        state = {k: v for k, v in load_imagenet_state(weights).items() if not k.startswith("fc.")}
        model.backbone.load_state_dict(state)
    return model


class StreamedFeatureData:
    """An external set's images decoded on the fly, sharded over ranks; the targets are which of the most
    frequent caption words (data.max_words) an image's captions use. Scored by the validation BCE per word
    and p5, the share of the top-5 predicted words that are right."""

    def __init__(self, records: dict[str, list[dict]], d: Dist, cfg: FeatureTrainConfig, data: DataConfig):
        train, val = records["train"], records["val"]
        self.concepts, self.words = {}, top_words(train, data.max_words)
        self.sets_train, self.sets_val = word_sets(train, self.words), word_sets(val, self.words)
        self.size, self.d, self.data, self.images = data.feature_size(), d, data, len(train)
        self.train_dl = loader(train, self.size, cfg.batch_size, d, data.num_workers, True, cfg.seed)
        self.val_dl = loader(val, self.size, cfg.batch_size, d, data.num_workers, False, cfg.seed)

    def new_model(self) -> ImageFeatures:
        return pretrained_features(FeatureConfig(image_size=self.size, num_words=len(self.words)),
                                   self.data.resnet_weights)

    def steps(self) -> int:
        return len(self.train_dl)

    def batches(self, epoch: int, g: torch.Generator) -> Iterator[FeatureBatch]:
        self.train_dl.sampler.set_epoch(epoch)
        for x, idx, _ in self.train_dl:
            y = multi_hot(self.sets_train, idx, len(self.words)).to(self.d.device)  # (B, W)
            yield FeatureBatch(to_float(x, self.d.device), None, y)

    @torch.inference_mode()
    def evaluate(self, model: ImageFeatures, prec: Precision) -> dict:
        loss = hits = n = 0.0
        for x, idx, _ in self.val_dl:
            with prec.autocast():
                logits = model(to_float(x, self.d.device)).word_logits.float()  # (B, W)
            y = multi_hot(self.sets_val, idx, len(self.words)).to(self.d.device)
            loss += F.binary_cross_entropy_with_logits(logits, y, reduction="sum").item() / len(self.words)
            hits += y.gather(1, logits.topk(min(5, len(self.words)), dim=1).indices).mean(1).sum().item()
            n += len(idx)
        loss, hits, n = all_sum([loss, hits, n], self.d)
        return {"val_loss": loss / max(n, 1), "val_p5": hits / max(n, 1)}

    def meta(self, row: dict, cfg: FeatureTrainConfig) -> dict:
        return {"concepts": [], "words": list(self.words),
                "train": {"epoch": row["epoch"], "val_loss": row["val_loss"], "config": asdict(cfg),
                          "data": asdict(self.data), "images": self.images, "ranks": self.d.world}}
