"""Captioner stage on an external set: features of this rank's shard of images are extracted once
(streamed), then the LSTM trains on every (image, caption) pair under DDP."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..augment import augment
from ..captioner import Captioner, CaptionerConfig, Vocab
from ..checkpoint import load_model, save_model
from ..image_features import FeatureConfig, ImageFeatures
from .captioner import CaptionerTrainConfig, pad
from .distributed import Dist, Precision, all_min, all_sum, wrap
from .loop import run_epochs, seed_everything
from .streaming import DataConfig, loader, to_float


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


def caption_pairs(rows: torch.Tensor, records: list[dict], vocab: Vocab, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every caption of every extracted row: (P,) feature row and (P, T) token ids."""
    feat_idx, seqs = [], []
    for j, i in enumerate(rows.tolist()):
        for c in records[i]["captions"]:
            feat_idx.append(j)
            seqs.append(vocab.encode(c, max_len))
    return torch.tensor(feat_idx, dtype=torch.long), pad(seqs)


def train_captioner_external(records: dict[str, list[dict]], out: str | Path, d: Dist, cfg: CaptionerTrainConfig,
                             data: DataConfig, work: str | Path, resume: bool = True) -> dict:
    seed_everything(cfg.seed)
    shuffle = torch.Generator().manual_seed(cfg.seed + 1000 * d.rank)  # each rank shuffles its own pairs
    features, _ = load_model(out, "features", ImageFeatures, FeatureConfig, d.device)
    train, val = records["train"], records["val"]
    vocab = Vocab.build((c for r in train for c in r["captions"]), min_count=data.vocab_min_count)
    x_train, rows = extract_shard(features, train, d, data, cfg.views)  # (M, 512)
    f_train, y_train = caption_pairs(rows, train, vocab, data.max_len)  # (P,), (P, T)
    x_val, rows = extract_shard(features, val, d, data)
    f_val, y_val = caption_pairs(rows, val, vocab, data.max_len)
    del features
    model = Captioner(CaptionerConfig(vocab_size=len(vocab), embed_dim=cfg.embed_dim, hidden_dim=cfg.hidden_dim,
                                      dropout=cfg.dropout, max_len=data.max_len)).to(d.device)
    net = wrap(model, d)
    steps = all_min((len(f_train) + cfg.batch_size - 1) // cfg.batch_size, d)  # the same number on every rank
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(cfg.epochs * steps, 1), pct_start=0.1)
    prec = Precision(d.device, data.amp)

    def loss_of(m: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        y = y.to(d.device)
        with prec.autocast():
            logits = m(x.to(d.device), y)  # (B, T-1, V)
        return F.cross_entropy(logits.float().transpose(1, 2), y[:, 1:], ignore_index=vocab.pad, reduction=reduction)

    def train_epoch(epoch: int) -> dict:
        perm = torch.randperm(len(f_train), generator=shuffle)
        tot = n = 0.0
        for s in tqdm(range(steps), desc=f"captioner {epoch}/{cfg.epochs}", leave=False, disable=not d.main):
            idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            loss = loss_of(net, x_train[f_train[idx]], y_train[idx])
            prec.step(loss, opt, model.parameters(), clip=5.0)
            sched.step()
            tot, n = tot + loss.item() * len(idx), n + len(idx)
        tot, n = all_sum([tot, n], d)
        return {"train_loss": tot / max(n, 1)}

    @torch.inference_mode()
    def evaluate() -> dict:
        tot = tokens = 0.0
        for i in range(0, len(f_val), 1024):
            x, y = x_val[f_val[i:i + 1024]], y_val[i:i + 1024]
            tot += loss_of(model, x, y, "sum").item()
            tokens += (y[:, 1:] != vocab.pad).sum().item()
        tot, tokens = all_sum([tot, tokens], d)
        return {"val_loss": tot / max(tokens, 1)}  # per token

    def save(row: dict) -> None:
        save_model(out, "captioner", model, half=True, vocab=vocab.to_json(),
                   train={"epoch": row["epoch"], "val_loss": row["val_loss"], "config": asdict(cfg),
                          "pairs": len(f_train), "ranks": d.world})

    return run_epochs("captioner", model, opt, sched, cfg.epochs, train_epoch, evaluate, save, work,
                      Path(out) / "logs", resume, main=d.main)
