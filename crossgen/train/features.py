"""Stage `features`: train ResNet18 from scratch to name emoji concepts (class + name words)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..augment import augment
from ..checkpoint import save_model
from ..data import load_records
from ..image_features import FeatureConfig, ImageFeatures
from .dataset import Split, concept_index, load_split, word_index, word_targets
from .loop import run_epochs, seed_everything


@dataclass
class FeatureTrainConfig:
    epochs: int = 40  # still improving at 14 (36.6 % top-1 on Twemoji); 40: 49.5 %
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    word_loss: float = 0.5
    augment: float = 1.0
    seed: int = 0


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


def train_features(data: str | Path, out: str | Path, device: torch.device, cfg: FeatureTrainConfig,
                   work: str | Path, resume: bool = True, limit: int | None = None, name: str = "features",
                   log_test: bool = True) -> dict:
    """Train a ResNet18 concept classifier (plus a name-word head when cfg.word_loss > 0) on the train
    split; the best validation epoch is saved as `<out>/<name>.safetensors`. With `log_test`, accuracy
    on the held-out artist is logged each epoch (never used to choose)."""
    g = seed_everything(cfg.seed)
    train_records = load_records(data, split="train")[:limit or None]  # the records alone: no images decoded
    concepts = concept_index(train_records)
    words = word_index(train_records) if cfg.word_loss > 0 else {}
    train = load_split(data, "train", concepts, limit)
    val = load_split(data, "val", concepts, limit)
    test = load_split(data, "test", concepts, limit) if log_test else None
    targets = word_targets(train.records, words)
    model = ImageFeatures(FeatureConfig(num_classes=len(concepts), num_words=len(words))).to(device)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * ((len(train) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(steps, 1), pct_start=0.15)

    def train_epoch(epoch: int) -> dict:
        perm = torch.randperm(len(train), generator=g)
        total = n = 0
        for i in tqdm(range(0, len(perm), cfg.batch_size), desc=f"features {epoch}/{cfg.epochs}", leave=False):
            idx = perm[i:i + cfg.batch_size]
            x = augment(train.batch(idx, device), g if device.type == "cpu" else None, cfg.augment)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                o = model(x.contiguous(memory_format=torch.channels_last))
                loss = F.cross_entropy(o.class_logits.float(), train.labels[idx].to(device), label_smoothing=cfg.label_smoothing)
                if words:
                    loss = loss + cfg.word_loss * F.binary_cross_entropy_with_logits(o.word_logits.float(), targets[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, n = total + loss.item() * len(idx), n + len(idx)
        return {"train_loss": total / n}

    def evaluate_all() -> dict:
        v = evaluate(model, val, device)
        row = {"val_loss": v["loss"], "val_top1": v["top1"], "val_top5": v["top5"]}
        if test is not None:
            t = evaluate(model, test, device)
            row.update(test_top1=t["top1"], test_top5=t["top5"])
        return row

    def save(row: dict) -> None:
        save_model(out, name, model, half=True, concepts=list(concepts), words=list(words),
                   train={"epoch": row["epoch"], "val_top1": row["val_top1"], "config": asdict(cfg),
                          "images": len(train), "limit": limit})

    return run_epochs(name, model, opt, sched, cfg.epochs, train_epoch, evaluate_all, save, work,
                      Path(out) / "logs", resume)
