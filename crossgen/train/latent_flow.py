"""Fitting the VAE's flow-matching prior (`crossgen.latent_flow`) on the latents of the training drawings.

The trained VAE's encoder gives every training drawing's latent (its posterior mean) and the latents of
`copies` repainted copies of each drawing that may be repainted (`ColourCaptions`: "<colour> <object>", never a
held-out or undrawn pair). The flow learns p(z | words, artist) from (latent, caption, artist) triples, a caption
drawn anew each step (the name half of the time, as the VAE stage does); the validation drawings' latents with
their names give its validation loss. The VAE's weights are not changed; the flow is saved inside
`<out>/vae.safetensors` with the VAE's config set to prior="flow".
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..checkpoint import WORD_VECTORS, load_model, save_model
from ..colour import recolour
from ..data.holdout import held_out_ids
from ..latent_flow import LatentFlow
from ..text_encoder import TextEncoder
from ..vae import CVAE, CVAEConfig
from .dataset import Split, load_split, without
from .loop import seed_everything
from .vae import CaptionVectors, ColourCaptions


@dataclass
class FlowTrainConfig:
    steps: int = 4000
    batch_size: int = 256
    lr: float = 1e-3
    copies: int = 2  # repainted copies of each drawing that may be repainted
    width: int = 384
    depth: int = 4
    guidance: float = 2.0
    seed: int = 0


@torch.no_grad()
def latents(model: CVAE, images: torch.Tensor, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """uint8 or float (N, 3, H, W) -> posterior means (N, Z) under the null condition (the decoder's)."""
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(device)
        x = x.float() / 255 if x.dtype == torch.uint8 else x
        mu, _ = model.encode(x, model.null.expand(len(x), -1))
        out.append(mu.cpu())
    return torch.cat(out) if out else torch.zeros(0, model.config.latent_dim)


def repainted(split: Split, colour: ColourCaptions, copies: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """`copies` repainted copies of each drawing that may be repainted: images (M, 3, H, W) in [0, 1], their
    caption word indices (M, T) and the record each came from."""
    images, ids, rows = [], [], []
    for _ in range(copies):
        for i in range(len(split)):
            chosen = colour.pick(i, g)
            if chosen is not None:
                images.append(recolour(split.images[i].float() / 255, chosen[0]))
                ids.append(chosen[1])
                rows.append(i)
    if not images:
        return torch.zeros(0, *split.images.shape[1:]), torch.zeros(0, 1, dtype=torch.long), []
    return torch.stack(images), torch.stack(ids), rows


def fit_flow(data: str | Path, out: str | Path, device: torch.device, cfg: FlowTrainConfig, holdout: bool = True,
             limit: int | None = None) -> dict:
    """Fit the flow prior of `<out>/vae.safetensors` and save it there (prior="flow"). Returns a summary."""
    t0 = time.time()
    g = seed_everything(cfg.seed)
    model, meta = load_model(out, "vae", CVAE, CVAEConfig, device)
    if model.config.text != "words" or model.null is None:
        raise ValueError("the flow prior reads the words apart: train the VAE with --words --cond-drop 1")
    train, val = load_split(data, "train", limit=limit), load_split(data, "val", limit=limit)
    if holdout:
        train, val = without(train, held_out_ids()), without(val, held_out_ids())
    encoder = TextEncoder.load(Path(out) / WORD_VECTORS)
    vecs, val_vecs = CaptionVectors(train.records, encoder, True), CaptionVectors(val.records, encoder, True)
    styles = sorted({r["style"] for r in train.records})
    index = {s: i for i, s in enumerate(styles)}
    style_of = lambda split, rows: torch.tensor([index.get(split.records[i]["style"], len(styles)) for i in rows])  # noqa: E731
    z_real = latents(model, train.images, device)  # (N, Z)
    paint_x, paint_ids, paint_rows = repainted(train, ColourCaptions(train.records, vecs, 1.0), cfg.copies, g)
    z_paint = latents(model, paint_x, device)  # (M, Z)
    z_all = torch.cat([z_real, z_paint])
    style_all = torch.cat([style_of(train, range(len(train))), style_of(train, paint_rows)]).to(device)
    n_real = len(z_real)

    model.config.prior, model.config.flow_styles = "flow", len(styles)
    model.config.flow_width, model.config.flow_depth, model.config.flow_guidance = cfg.width, cfg.depth, cfg.guidance
    flow = LatentFlow(model.config.flow_config()).to(device)
    flow.z_mean.copy_(z_real.mean(0).to(device))
    flow.z_std.copy_(z_real.std(0).clamp(min=1e-3).to(device))
    opt = torch.optim.AdamW(flow.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.05)
    noise = torch.Generator(device.type).manual_seed(cfg.seed)
    flow.train()
    running = 0.0
    for step in tqdm(range(cfg.steps), desc="flow", leave=False):
        idx = torch.randint(len(z_all), (cfg.batch_size,), generator=g)
        real = idx < n_real
        text = torch.zeros(len(idx), vecs.lookup(paint_ids[:1] if len(paint_ids) else vecs.ids[:1]).shape[1])
        if real.any():
            text[real] = vecs.draw(idx[real], g)
        if (~real).any():
            text[~real] = vecs.lookup(paint_ids[idx[~real] - n_real])
        loss = flow(z_all[idx].to(device), text.to(device), style_all[idx.to(device)], generator=noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(flow.parameters(), 1.0)
        opt.step()
        sched.step()
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
    flow.eval()
    with torch.no_grad():
        z_val = latents(model, val.images, device)
        vg = torch.Generator(device.type).manual_seed(0)
        val_loss = flow(z_val.to(device), val_vecs.names(torch.arange(len(val))).to(device),
                        style_of(val, range(len(val))).to(device), generator=vg).item() if len(val) else float("nan")
    model.flow = flow
    summary = {"latents": n_real, "repainted": len(z_paint), "styles": styles, "steps": cfg.steps,
               "train_loss": round(running, 4), "val_loss": round(val_loss, 4), "seconds": round(time.time() - t0, 1),
               "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}}
    save_model(out, "vae", model, **{k: v for k, v in meta.items() if k not in ("config", "flow")}, flow=summary)
    print(f"[flow] {summary}")
    return summary
