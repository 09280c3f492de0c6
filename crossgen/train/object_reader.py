"""python -m crossgen.train.object_reader --data data/emoji10 --out checkpoints [--tuned layer3 | --tuned ""]

Train the object reader (`crossgen.models.object_reader`) on the real drawings of the training split, every concept
(held-out ones included, as the evaluator), labelled with their object. Colour is destroyed before the geometric
augmentation: each copy gets one of a random hue rotation, greyscale, or `colour.recolour` to a random colour.

The evaluator's backbone is frozen up to layer2, so a few augmented copies of the training set are run through it
once and its layer2 outputs cached (fp16); the trained parts (layer3 or layer4, if tuned, and the linear object
head) then train on the cache for a few epochs, and a head-only reader on the pooled features computed once from
it, which is what makes both variants fit in minutes on a CPU. Validation: top-1/top-5 of the object on the val
split's drawings recoloured to a random colour (the figure that picks the best epoch), greyscale, and as drawn.
`--compare` trains both variants (frozen backbone + head, and own layer3 + head) and saves the one that reads
recoloured val drawings better.
"""
from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..checkpoint import refresh_manifest, save_model, sha256
from ..cli import run
from ..data.holdout import object_of
from ..imaging.augment import augment
from ..imaging.colour import COLOURS, hsv_to_rgb, recolour, rgb_to_hsv
from ..models.evaluator import load_evaluator
from ..models.object_reader import NAME, ObjectParts, ObjectReaderConfig, run_backbone
from .dataset import load_split


@dataclass
class ObjectTrainConfig:
    tuned: str = "layer3"  # "" : frozen backbone + head only
    copies: int = 2  # augmented copies of the training set in the cache (the variants share the largest)
    epochs: int = 8  # the shipped reader's recipe
    batch_size: int = 256
    lr: float = 2e-3  # head; the tuned stage gets lr * stage_lr
    stage_lr: float = 0.25
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    seed: int = 0


def destroy_colour(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> each drawing with a random hue rotation, in greyscale, or recoloured to a random
    colour of COLOURS (a third each)."""
    out = x.clone()
    kind = torch.randint(0, 3, (len(x),), generator=g)
    hues = torch.rand(len(x), generator=g) * 360
    picks = torch.randint(0, len(COLOURS), (len(x),), generator=g)
    for i in range(len(x)):
        if kind[i] == 0:
            hsv = rgb_to_hsv(x[i])
            hsv[0] = (hsv[0] + hues[i]) % 360
            out[i] = hsv_to_rgb(hsv).clamp(0, 1)
        elif kind[i] == 1:
            out[i] = (x[i] * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True).expand(3, -1, -1)
        else:
            out[i] = recolour(x[i], COLOURS[int(picks[i])])
    return out


def greyscale(x: torch.Tensor) -> torch.Tensor:
    return (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True).expand(-1, 3, -1, -1)


def recoloured(x: torch.Tensor, seed: int) -> torch.Tensor:
    """(B, 3, H, W) -> each drawing recoloured to a colour drawn with `seed` (the validation's fixed recolouring)."""
    g = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, len(COLOURS), (len(x),), generator=g)
    return torch.stack([recolour(im, COLOURS[int(c)]) for im, c in zip(x, picks)])


CACHED = "layer2"  # the cache holds this stage's output: the trained stage is layer3 or layer4


@torch.inference_mode()
def cache(backbone: torch.nn.Module, images: torch.Tensor, g: torch.Generator | None, batch: int = 256) -> torch.Tensor:
    """Run uint8 images (N, 3, H, W) (colour destroyed and augmented when g is given) through the frozen backbone
    up to CACHED: (N, 128, H/8, W/8) fp16."""
    out = []
    for i in range(0, len(images), batch):
        x = images[i:i + batch].float() / 255
        if g is not None:
            x = augment(destroy_colour(x, g), g)
        out.append(run_backbone(backbone, x, stop=CACHED).half())
        if g is not None and i // batch % 20 == 0:
            print(f"cached {i + len(x)}/{len(images)}", flush=True)
    return torch.cat(out)


def head_input(parts: ObjectParts, backbone: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Cached activations -> (B, 512) pooled features through the trained stage and the frozen ones around it;
    a head-only reader's cache already holds the pooled features."""
    if parts.stage is None:
        return z.float()
    return run_backbone(backbone, z.float(), start=CACHED, swap={parts.config.tuned: parts.stage})


@torch.inference_mode()
def pooled(backbone: torch.nn.Module, z: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Cached CACHED outputs -> (N, 512) pooled features of the frozen backbone, fp16."""
    return torch.cat([run_backbone(backbone, z[i:i + batch].float(), start=CACHED).half() for i in range(0, len(z), batch)])


@torch.no_grad()
def accuracy(parts: ObjectParts, backbone: torch.nn.Module, z: torch.Tensor, labels: torch.Tensor) -> dict:
    parts.eval()
    logits = torch.cat([parts.head(head_input(parts, backbone, z[i:i + 512])) for i in range(0, len(z), 512)])
    top = logits.topk(5, dim=1).indices
    return {"top1": float((top[:, 0] == labels).float().mean()), "top5": float((top == labels[:, None]).any(1).float().mean())}


def train_variant(cfg: ObjectTrainConfig, backbone: torch.nn.Module, z: torch.Tensor, y: torch.Tensor,
                  zval: dict[str, torch.Tensor], val_labels: torch.Tensor, num_objects: int) -> tuple[ObjectParts, dict]:
    """Train one variant on the cache z (CACHED outputs of the augmented copies) with labels y; returns the parts
    of its best epoch (recoloured val top-5) and its log."""
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    t0 = time.time()
    if not cfg.tuned:  # frozen backbone: the pooled features are computed once
        z, zval = pooled(backbone, z), {k: pooled(backbone, v) for k, v in zval.items()}
    cached = time.time() - t0
    parts = ObjectParts(ObjectReaderConfig(num_objects=num_objects, tuned=cfg.tuned))
    if parts.stage is not None:
        parts.stage.load_state_dict(getattr(backbone, cfg.tuned).state_dict())  # start from the evaluator's stage
    groups = [{"params": parts.head.parameters(), "lr": cfg.lr}]
    if parts.stage is not None:
        groups.append({"params": parts.stage.parameters(), "lr": cfg.lr * cfg.stage_lr})
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * math.ceil(len(z) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[gr["lr"] for gr in groups], total_steps=steps, pct_start=0.15)
    best, log = None, []
    for epoch in range(cfg.epochs):
        parts.train()
        order, total = torch.randperm(len(z), generator=g), 0.0
        for i in range(0, len(z), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            logits = parts.head(F.dropout(head_input(parts, backbone, z[idx]), 0.2, training=True))
            loss = F.cross_entropy(logits, y[idx], label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        row = {"epoch": epoch + 1, "loss": total / len(z), "seconds": round(time.time() - t0, 1),
               **{f"val_{k}": accuracy(parts, backbone, v, val_labels) for k, v in zval.items()}}
        log.append(row)
        print(f"[{cfg.tuned or 'head'}] {row}", flush=True)
        if best is None or row["val_recoloured"]["top5"] > best[0]["val_recoloured"]["top5"]:
            best = (row, copy.deepcopy(parts.state_dict()))
    parts.load_state_dict(best[1])
    return parts.eval(), {"config": asdict(cfg), "best": best[0], "log": log, "pool_seconds": round(cached, 1),
                          "seconds": round(time.time() - t0, 1), "cached_images": len(z)}


def train_object_reader(data: str | Path, out: str | Path, configs: list[ObjectTrainConfig], evaluator_dir: str | Path | None = None,
                        limit: int | None = None) -> dict:
    """Train each variant, save the best by recoloured-val top-5 as `<out>/object_reader.*`; returns the summary."""
    evaluator_dir = Path(evaluator_dir or out)
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    backbone = load_evaluator(evaluator_dir).model.backbone.eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    train, val = load_split(data, "train", limit=limit), load_split(data, "val", limit=limit)
    objects = sorted({object_of(r["name"]) for r in train.records})
    index = {o: i for i, o in enumerate(objects)}
    labels = torch.tensor([index[object_of(r["name"])] for r in train.records])
    keep = [i for i, r in enumerate(val.records) if object_of(r["name"]) in index]
    val_images, val_labels = val.images[keep], torch.tensor([index[object_of(val.records[i]["name"])] for i in keep])
    x = val_images.float() / 255
    views = {"recoloured": (recoloured(x, 0) * 255 + 0.5).to(torch.uint8), "greyscale": (greyscale(x) * 255 + 0.5).to(torch.uint8),
             "as_drawn": val_images}
    t0, copies = time.time(), max(cfg.copies for cfg in configs)
    g = torch.Generator().manual_seed(configs[0].seed)
    z = torch.cat([cache(backbone, train.images, g) for _ in range(copies)])  # (copies * N, 128, 8, 8): shared by the variants
    zval = {k: cache(backbone, v, None) for k, v in views.items()}
    cache_seconds = round(time.time() - t0, 1)
    results = [train_variant(cfg, backbone, z, labels.repeat(copies), zval, val_labels, len(objects)) for cfg in configs]
    best = max(range(len(results)), key=lambda i: results[i][1]["best"]["val_recoloured"]["top5"])
    parts, summary = results[best]
    variants = {(r[1]["config"]["tuned"] or "head_only"): {k: r[1][k] for k in ("best", "seconds", "config")} for r in results}
    info = {"objects": objects, "evaluator_sha256": sha256(evaluator_dir / "evaluator.safetensors"),
            "train": {**{k: v for k, v in summary.items() if k != "log"}, "train_images": len(train), "copies": copies,
                      "artists": sorted({r["style"] for r in train.records}),
                      "cache_seconds": cache_seconds, "val_images": len(keep), "log": summary["log"],
                      "variants": variants, "chosen": parts.config.tuned or "head_only",
                      "data": str(data), "rule": "object = crossgen.data.holdout.object_of(name): colour word and tone "
                                                 "phrase taken out; val_recoloured: val drawings recoloured to a random "
                                                 "colour (seed 0), val_greyscale: in greyscale"}}
    save_model(out, NAME, parts, half=True, **info)
    if (Path(out) / "manifest.json").is_file():
        refresh_manifest(out)
    return info


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m crossgen.train.object_reader", description=__doc__)
    p.add_argument("--data", default="data/emoji10")
    p.add_argument("--out", default="checkpoints", help="where object_reader.* go (and the evaluator is read)")
    p.add_argument("--tuned", default=ObjectTrainConfig.tuned, help="stage trained with the head ('' : head only)")
    p.add_argument("--compare", action="store_true", help="train head-only and --tuned; keep the better")
    p.add_argument("--epochs", type=int, default=ObjectTrainConfig.epochs)
    p.add_argument("--copies", type=int, default=ObjectTrainConfig.copies)
    p.add_argument("--limit", type=int, help="only the first N records of each split (smoke runs)")
    args = p.parse_args(argv)
    tuned = [""] + ([args.tuned] if args.tuned else []) if args.compare else [args.tuned]
    configs = [ObjectTrainConfig(tuned=t, epochs=args.epochs if t else max(args.epochs, 20), copies=args.copies) for t in tuned]
    info = train_object_reader(args.data, args.out, configs, limit=args.limit)
    print({k: v["best"] for k, v in info["train"]["variants"].items()}, "chosen:", info["train"]["chosen"])
    return info


if __name__ == "__main__":
    sys.exit(run(main))
