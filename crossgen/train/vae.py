"""Stage `vae`: train the conditional VAE on (image, Word2Vec caption vector) pairs."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..checkpoint import WORD_VECTORS, load_model, save_model
from ..preprocess import to_pil
from ..text_encoder import TextEncoder
from ..vae import CVAE, CVAEConfig
from .dataset import Split, load_split
from .loop import run_epochs, seed_everything


@dataclass
class VAETrainConfig:
    epochs: int = 14
    batch_size: int = 64
    lr: float = 1e-3
    latent_dim: int = 128  # with the exemplar prior, a larger latent gives sharper drawings (16 was blurred)
    beta: float = 0.25
    prior: str = "standard"  # sampling uses the exemplar prior (add_exemplars); "learned" = p(z | text)
    prior_recon: float = 0.0  # learned prior only: weight of the image decoded from the prior mean
    kl_warmup: int = 3  # epochs over which beta ramps up from 0
    seed: int = 0
    # exemplar latents: Adam steps on each training image's reconstruction from its posterior mean (0: the means)
    refine_steps: int = 30
    refine_lr: float = 0.1


class CaptionVectors:
    """Every caption of every record as a Word2Vec sentence vector; draws one caption per record."""

    def __init__(self, records: list[dict], encoder: TextEncoder):
        caps = [r["captions"] or [r["name"]] for r in records]
        self.offsets = torch.tensor(np.cumsum([0] + [len(c) for c in caps]))  # (N+1,)
        self.vectors = torch.from_numpy(encoder.encode_batch([c for cs in caps for c in cs]))  # (sum, D)

    def names(self, idx: torch.Tensor) -> torch.Tensor:
        return self.vectors[self.offsets[idx]]  # the first caption is the name

    def draw(self, idx: torch.Tensor, g: torch.Generator, p_name: float = 0.5) -> torch.Tensor:
        lo, hi = self.offsets[idx], self.offsets[idx + 1]
        pick = lo + (torch.rand(len(idx), generator=g) * (hi - lo)).long()
        use_name = torch.rand(len(idx), generator=g) < p_name
        return self.vectors[torch.where(use_name, lo, pick)]


@torch.inference_mode()
def evaluate(model: CVAE, split: Split, vecs: CaptionVectors, device: torch.device, batch_size: int = 256) -> dict:
    recon = kl = prior_recon = 0.0
    g = torch.Generator(device.type).manual_seed(0)
    for i in range(0, len(split), batch_size):
        idx = torch.arange(i, min(i + batch_size, len(split)))
        x = split.batch(idx, device)
        out = model(x, vecs.names(idx).to(device), generator=g)
        l = model.loss(out, x)
        recon, kl = recon + l.recon.item() * len(idx), kl + l.kl.item() * len(idx)
        prior_recon += 0.0 if l.prior_recon is None else l.prior_recon.item() * len(idx)
    n = max(len(split), 1)
    return {"val_loss": (recon + kl) / n, "val_recon": recon / n, "val_kl": kl / n, "val_prior_recon": prior_recon / n}


def preview(model: CVAE, encoder: TextEncoder, logs: Path, prompts: tuple[str, ...] = ("red apple", "dog")) -> None:
    """A quick look at what the model draws: 8 samples per prompt as `<logs>/vae_<prompt>.png`."""
    for prompt in prompts:
        try:
            v = torch.from_numpy(encoder.encode(prompt).vector)
        except ValueError:  # a word the (tiny) vocabulary lacks
            continue
        ims = to_pil(model.sample(v, n=8, generator=torch.Generator().manual_seed(0)))
        sheet = ims[0].resize((64 * 8, 64))
        for j, im in enumerate(ims):
            sheet.paste(im, (64 * j, 0))
        sheet.save(logs / f"vae_{prompt.replace(' ', '_')}.png")


def reconstruction_bce(model: CVAE, z: torch.Tensor, cond: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Summed BCE of image (B, 3, H, W) decoded from latents z (B, Z) under the condition cond (B, C)."""
    return F.binary_cross_entropy_with_logits(model.decode(z, cond), image, reduction="sum")


def refine_latents(model: CVAE, image: torch.Tensor, cond: torch.Tensor, z: torch.Tensor, steps: int,
                   lr: float) -> torch.Tensor:
    """Latents (B, Z) that the frozen decoder turns into image (B, 3, H, W) better than z does: `steps` of Adam
    on the reconstruction BCE, starting from z. The encoder's posterior mean is an amortised guess; fitting
    each image's latent closes part of that amortisation gap, and the exemplar prior draws sharper images."""
    z, cond = z.detach().clone().requires_grad_(True), cond.detach()
    opt = torch.optim.Adam([z], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):  # gradients for z only: the model's weights get none
            z.grad, = torch.autograd.grad(reconstruction_bce(model, z, cond, image), [z])
            opt.step()
    return z.detach()


def add_exemplars(data: str | Path, out: str | Path, device: torch.device, limit: int | None = None,
                  refine_steps: int = 0, refine_lr: float = 0.1, batch_size: int = 512) -> dict:
    """Store the training images' name vectors and latents in `<out>/vae.safetensors` as the sampling prior
    (see `CVAE.set_exemplars`): their posterior means, refined by `refine_latents` when refine_steps > 0.
    Returns how many, and the mean reconstruction BCE per image at the means and at the stored latents."""
    model, meta = load_model(out, "vae", CVAE, CVAEConfig, device)
    split = load_split(data, "train", limit=limit)
    vecs = CaptionVectors(split.records, TextEncoder.load(Path(out) / WORD_VECTORS))
    keep = (vecs.names(torch.arange(len(split))).norm(dim=1) > 0).nonzero()[:, 0]  # names with a known word
    texts, zs, sds, bce = [], [], [], torch.zeros(2)
    for i in tqdm(range(0, len(keep), batch_size), desc="exemplars", leave=False):
        idx = keep[i:i + batch_size]
        t, x = vecs.names(idx).to(device), split.batch(idx, device)
        with torch.no_grad():
            cond = model.condition(t)  # (B, C)
            mu, logvar = model.encode(x, cond)  # (B, Z) each
        z = refine_latents(model, x, cond, mu, refine_steps, refine_lr) if refine_steps else mu
        with torch.no_grad():  # at the means, and at the stored latents (the means themselves when not refined)
            at_mean = reconstruction_bce(model, mu, cond, x).item()
            bce += torch.tensor([at_mean, reconstruction_bce(model, z, cond, x).item() if refine_steps else at_mean])
        texts.append(t.cpu())
        zs.append(z.cpu())
        sds.append(torch.exp(0.5 * logvar).mean(1).cpu())  # (B,) a posterior's typical spread
    model.set_exemplars(torch.cat(texts), torch.cat(zs))
    # draw about as far from an exemplar as its own posterior spreads: further gives blurred, off-model images
    model.config.exemplar_sd = round(torch.cat(sds).mean().item(), 4)
    n = max(len(keep), 1)
    summary = {"count": len(keep), "refine_steps": refine_steps, "refine_lr": refine_lr,
               "bce_posterior_mean": round(bce[0].item() / n, 1), "bce_stored": round(bce[1].item() / n, 1)}
    save_model(out, "vae", model, **{k: v for k, v in meta.items() if k not in ("config", "exemplars")},
               exemplars=summary)
    return summary


def train_vae(data: str | Path, out: str | Path, device: torch.device, cfg: VAETrainConfig, work: str | Path,
              resume: bool = True, limit: int | None = None) -> dict:
    g = seed_everything(cfg.seed)
    encoder = TextEncoder.load(Path(out) / WORD_VECTORS)
    train, val = load_split(data, "train", limit=limit), load_split(data, "val", limit=limit)
    train_vecs, val_vecs = CaptionVectors(train.records, encoder), CaptionVectors(val.records, encoder)
    model = CVAE(CVAEConfig(text_dim=encoder.dim, latent_dim=cfg.latent_dim, beta=cfg.beta, prior=cfg.prior,
                            prior_recon=cfg.prior_recon)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    steps = cfg.epochs * ((len(train) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(steps, 1), pct_start=0.1)
    noise = torch.Generator(device.type).manual_seed(cfg.seed)

    def train_epoch(epoch: int) -> dict:
        model.config.beta = cfg.beta * min(1.0, epoch / max(cfg.kl_warmup, 1))
        perm = torch.randperm(len(train), generator=g)
        tot = rec = kl = 0.0
        for i in tqdm(range(0, len(perm), cfg.batch_size), desc=f"vae {epoch}/{cfg.epochs}", leave=False):
            idx = perm[i:i + cfg.batch_size]
            x = train.batch(idx, device)
            out = model(x, train_vecs.draw(idx, g).to(device), generator=noise)
            l = model.loss(out, x)
            opt.zero_grad(set_to_none=True)
            l.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            tot, rec, kl = tot + l.loss.item() * len(idx), rec + l.recon.item() * len(idx), kl + l.kl.item() * len(idx)
        model.config.beta = cfg.beta
        return {"train_loss": tot / len(perm), "train_recon": rec / len(perm), "train_kl": kl / len(perm)}

    def save(row: dict) -> None:
        save_model(out, "vae", model, train={"epoch": row["epoch"], "val_loss": row["val_loss"], "config": asdict(cfg)})
        preview(model, encoder, Path(out) / "logs")

    best = run_epochs("vae", model, opt, sched, cfg.epochs, train_epoch,
                      lambda: evaluate(model, val, val_vecs, device), save, work, Path(out) / "logs", resume)
    exemplars = add_exemplars(data, out, device, limit, cfg.refine_steps, cfg.refine_lr)
    preview(load_model(out, "vae", CVAE, CVAEConfig, device)[0], encoder, Path(out) / "logs")  # as shipped
    return {**best, "exemplars": exemplars}
