"""Word2Vec, feature and VAE stages on an external set (COCO, Flickr, a folder), streamed and DDP-ready.

The feature extractor learns to name the words of an image's captions (a multi-label head over the
most frequent caption words), optionally starting from local ImageNet weights at 224 px; the CVAE
learns 64 px images from the Word2Vec vector of one of their captions, drawn anew each epoch.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..augment import augment
from ..checkpoint import WORD_VECTORS, save_json, save_model
from ..image_features import FeatureConfig, ImageFeatures, load_imagenet_state
from ..preprocess import tokenize
from ..text_encoder import TextEncoder, Word2VecConfig
from ..vae import CVAE, CVAEConfig
from .distributed import Dist, Precision, all_sum, wrap
from .features import FeatureTrainConfig
from .loop import run_epochs, seed_everything
from .streaming import DataConfig, loader, multi_hot, to_float, top_words, word_sets
from .vae import VAETrainConfig
from .word2vec import MAX_WORDS, wordnet_sentences


def train_word2vec_external(records: dict[str, list[dict]], out: str | Path, cfg: Word2VecConfig,
                            wordnet: bool = True) -> dict:
    """Word2Vec on every train/val caption (plus WordNet glosses when installed); run on one rank."""
    t0 = time.time()
    captions = [s for split in ("train", "val") for r in records[split] for c in r["captions"] if (s := tokenize(c))]
    glosses = wordnet_sentences() if wordnet else []
    encoder = TextEncoder.train(captions + glosses, cfg).prune((w for s in captions for w in s), MAX_WORDS)
    Path(out).mkdir(parents=True, exist_ok=True)
    encoder.save(Path(out) / WORD_VECTORS)
    info = {"vocab": len(encoder.wv), "caption_sentences": len(captions), "wordnet_sentences": len(glosses),
            "seconds": round(time.time() - t0, 1), "config": asdict(cfg)}
    save_json(Path(out) / "word2vec.json", info)
    print(f"[word2vec] {info}")
    return info


def pretrained_features(config: FeatureConfig, weights: str) -> ImageFeatures:
    """ImageFeatures, its backbone loaded from a local ImageNet state dict when `weights` is set.
    The saved config keeps imagenet_weights=False: the checkpoint itself holds the weights."""
    model = ImageFeatures(config)
    if weights:
        state = {k: v for k, v in load_imagenet_state(weights).items() if not k.startswith("fc.")}
        model.backbone.load_state_dict(state)
    return model


def train_features_external(records: dict[str, list[dict]], out: str | Path, d: Dist, cfg: FeatureTrainConfig,
                            data: DataConfig, work: str | Path, resume: bool = True) -> dict:
    """ResNet18 trained to predict which frequent words an image's captions use (BCE over words)."""
    g = seed_everything(cfg.seed)
    train, val = records["train"], records["val"]
    words = top_words(train, data.max_words)
    sets_train, sets_val = word_sets(train, words), word_sets(val, words)
    size = data.feature_size()
    model = pretrained_features(FeatureConfig(image_size=size, num_words=len(words)), data.resnet_weights)
    model = model.to(d.device).to(memory_format=torch.channels_last)
    net = wrap(model, d)
    train_dl = loader(train, size, cfg.batch_size, d, data.num_workers, True, cfg.seed)
    val_dl = loader(val, size, cfg.batch_size, d, data.num_workers, False, cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(cfg.epochs * len(train_dl), 1),
                                                pct_start=0.15)
    prec = Precision(d.device, data.amp)

    def train_epoch(epoch: int) -> dict:
        train_dl.sampler.set_epoch(epoch)
        total = n = 0.0
        for x, idx, _ in tqdm(train_dl, desc=f"features {epoch}/{cfg.epochs}", leave=False, disable=not d.main):
            x = to_float(x, d.device)  # (B, 3, S, S)
            x = augment(x, g if d.device.type == "cpu" else None, cfg.augment) if cfg.augment else x
            y = multi_hot(sets_train, idx, len(words)).to(d.device)  # (B, W)
            with prec.autocast():
                logits = net(x.contiguous(memory_format=torch.channels_last)).word_logits
            loss = F.binary_cross_entropy_with_logits(logits.float(), y)
            prec.step(loss, opt, model.parameters())
            sched.step()
            total, n = total + loss.item() * len(idx), n + len(idx)
        total, n = all_sum([total, n], d)
        return {"train_loss": total / max(n, 1)}

    @torch.inference_mode()
    def evaluate() -> dict:
        loss = hits = n = 0.0
        for x, idx, _ in val_dl:
            with prec.autocast():
                logits = model(to_float(x, d.device)).word_logits.float()  # (B, W)
            y = multi_hot(sets_val, idx, len(words)).to(d.device)
            loss += F.binary_cross_entropy_with_logits(logits, y, reduction="sum").item() / len(words)
            hits += y.gather(1, logits.topk(min(5, len(words)), dim=1).indices).mean(1).sum().item()
            n += len(idx)
        loss, hits, n = all_sum([loss, hits, n], d)
        return {"val_loss": loss / max(n, 1), "val_p5": hits / max(n, 1)}  # p5: share of the top-5 words that are right

    def save(row: dict) -> None:
        save_model(out, "features", model, half=True, concepts=[], words=list(words),
                   train={"epoch": row["epoch"], "val_loss": row["val_loss"], "config": asdict(cfg),
                          "data": asdict(data), "images": len(train), "ranks": d.world})

    return run_epochs("features", model, opt, sched, cfg.epochs, train_epoch, evaluate, save, work,
                      Path(out) / "logs", resume, main=d.main)


def train_vae_external(records: dict[str, list[dict]], out: str | Path, d: Dist, cfg: VAETrainConfig,
                       data: DataConfig, work: str | Path, resume: bool = True) -> dict:
    """The conditional VAE on (64 px image, Word2Vec vector of a random caption) pairs."""
    seed_everything(cfg.seed)
    encoder = TextEncoder.load(Path(out) / WORD_VECTORS)
    size = data.vae_image_size
    model = CVAE(CVAEConfig(image_size=size, text_dim=encoder.dim, latent_dim=cfg.latent_dim, beta=cfg.beta))
    model = model.to(d.device)
    net = wrap(model, d)
    train_dl = loader(records["train"], size, cfg.batch_size, d, data.num_workers, True, cfg.seed, caption="random")
    val_dl = loader(records["val"], size, cfg.batch_size, d, data.num_workers, False, cfg.seed, caption="first")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(cfg.epochs * len(train_dl), 1),
                                                pct_start=0.1)
    noise = torch.Generator(d.device.type).manual_seed(cfg.seed + d.rank)
    prec = Precision(d.device, data.amp)

    def text(caps: list[str]) -> torch.Tensor:
        return torch.from_numpy(encoder.encode_batch(list(caps))).to(d.device)  # (B, D)

    def train_epoch(epoch: int) -> dict:
        train_dl.sampler.set_epoch(epoch)
        model.config.beta = cfg.beta * min(1.0, epoch / max(cfg.kl_warmup, 1))
        tot = rec = kl = n = 0.0
        for x, idx, caps in tqdm(train_dl, desc=f"vae {epoch}/{cfg.epochs}", leave=False, disable=not d.main):
            x = to_float(x, d.device)  # (B, 3, 64, 64)
            with prec.autocast():
                o = net(x, text(caps), generator=noise)
            l = model.loss(o._replace(logits=o.logits.float()), x)
            prec.step(l.loss, opt, model.parameters(), clip=5.0)
            sched.step()
            b = len(idx)
            tot, rec, kl, n = tot + l.loss.item() * b, rec + l.recon.item() * b, kl + l.kl.item() * b, n + b
        model.config.beta = cfg.beta
        tot, rec, kl, n = all_sum([tot, rec, kl, n], d)
        return {"train_loss": tot / n, "train_recon": rec / n, "train_kl": kl / n}

    @torch.inference_mode()
    def evaluate() -> dict:
        g = torch.Generator(d.device.type).manual_seed(0)
        rec = kl = n = 0.0
        for x, idx, caps in val_dl:
            x = to_float(x, d.device)
            l = model.loss(model(x, text(caps), generator=g), x)
            rec, kl, n = rec + l.recon.item() * len(idx), kl + l.kl.item() * len(idx), n + len(idx)
        rec, kl, n = all_sum([rec, kl, n], d)
        return {"val_loss": (rec + kl) / n, "val_recon": rec / n, "val_kl": kl / n}

    def save(row: dict) -> None:
        save_model(out, "vae", model, train={"epoch": row["epoch"], "val_loss": row["val_loss"], "config": asdict(cfg),
                                             "ranks": d.world})

    return run_epochs("vae", model, opt, sched, cfg.epochs, train_epoch, evaluate, save, work,
                      Path(out) / "logs", resume, main=d.main)
