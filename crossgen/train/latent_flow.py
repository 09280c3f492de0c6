"""Fitting the VAE's flow-matching prior (`crossgen.latent_flow`) on the latents of the training drawings.

The trained VAE's encoder gives every training drawing's latent (its posterior mean) and the latents of
`copies` repainted copies of each drawing that may be repainted (`ColourCaptions`: "<colour> <object>", never a
held-out or undrawn pair). The flow learns p(z | words, artist) from (latent, caption, artist) triples, a caption
drawn anew each step (the name half of the time, as the VAE stage does); the validation drawings' latents with
their names give its validation loss. The VAE's weights are not changed; the flow is saved inside
`<out>/vae.safetensors` (in float16) with the VAE's config set to prior="flow".
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..checkpoint import WORD_VECTORS, load_model, save_model
from ..colour import recolour
from ..data.holdout import held_out_ids
from ..latent_flow import LatentFlow
from ..name_keys import ATTRIBUTE_WORDS
from ..text_encoder import TextEncoder
from ..vae import CVAE, CVAEConfig
from .dataset import Split, load_split, without
from .loop import seed_everything
from .vae import CaptionVectors, ColourCaptions, sibling_pairs


@dataclass
class FlowTrainConfig:
    steps: int = 4000
    batch_size: int = 256
    lr: float = 1e-3
    copies: int = 2  # repainted copies of each drawing that may be repainted
    width: int = 384
    depth: int = 4
    guidance: float = 2.0
    kind: str = "flow"  # or "gaussian" (crossgen.latent_flow.FlowConfig.kind)
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


def optimise(flow: LatentFlow, cfg: FlowTrainConfig, loss: Callable[[], torch.Tensor], desc: str) -> float:
    """cfg.steps of AdamW on the prior, one-cycle learning rate, gradients clipped at 1; `loss` draws a batch and
    returns its loss. Returns the loss's running mean (the last steps weigh most); the prior is left in eval mode."""
    opt = torch.optim.AdamW(flow.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.05)
    flow.train()
    running = 0.0
    for step in tqdm(range(cfg.steps), desc=desc, leave=False):
        value = loss()
        opt.zero_grad(set_to_none=True)
        value.backward()
        torch.nn.utils.clip_grad_norm_(flow.parameters(), 1.0)
        opt.step()
        sched.step()
        running = 0.98 * running + 0.02 * value.item() if step else value.item()
    flow.eval()
    return running


def fit_edit(data: str | Path, out: str | Path, device: torch.device, cfg: FlowTrainConfig, holdout: bool = True,
             limit: int | None = None) -> dict:
    """Fit the edit prior (FlowConfig.kind="edit") of `<out>/vae.safetensors`: the latents of the training
    drawings become its exemplars, and the network learns to move a drawing's latent to what the words say from
    (reference, target, words) triples: a drawing and itself under one of its captions; a drawing and its repainted
    copy under "<colour> <object>"; a drawing and a sibling of another colour or tone under the sibling's name."""
    t0 = time.time()
    g = seed_everything(cfg.seed)
    model, meta = load_model(out, "vae", CVAE, CVAEConfig, device)
    train = load_split(data, "train", limit=limit)
    train = without(train, held_out_ids()) if holdout else train
    encoder = TextEncoder.load(Path(out) / WORD_VECTORS)
    vecs = CaptionVectors(train.records, encoder, True)
    styles = sorted({r["style"] for r in train.records})
    index = {s: i for i, s in enumerate(styles)}
    z_real = latents(model, train.images, device)  # (N, Z)
    paint_x, paint_ids, paint_rows = repainted(train, ColourCaptions(train.records, vecs, 1.0), cfg.copies, g)
    z_paint = latents(model, paint_x, device)  # (M, Z)
    siblings = torch.tensor(sibling_pairs(train) or [(0, 0)])  # (P, 2)
    names = sorted({r["name"] for r in train.records})
    name_index = {n: i for i, n in enumerate(names)}
    attributes = [w for w in ATTRIBUTE_WORDS if w in encoder]

    c = model.config
    c.prior, c.flow_kind, c.flow_styles, c.flow_width, c.flow_depth = "flow", "edit", len(styles), cfg.width, cfg.depth
    c.flow_guidance, c.flow_exemplars, c.flow_names, c.flow_attributes = 1.0, len(train), len(names), len(attributes)
    flow = LatentFlow(c.flow_config()).to(device)
    flow.z_mean.copy_(z_real.mean(0).to(device))
    flow.z_std.copy_(z_real.std(0).clamp(min=1e-3).to(device))
    norm = lambda z: (z.to(device) - flow.z_mean) / flow.z_std  # noqa: E731
    flow.ex_z.copy_(norm(z_real))
    flow.ex_name.copy_(torch.tensor([name_index[r["name"]] for r in train.records]))
    flow.ex_style.copy_(torch.tensor([index[r["style"]] for r in train.records]))
    if attributes:
        flow.attribute_words.copy_(F.normalize(torch.from_numpy(np.stack([encoder.wv[w] for w in attributes])), dim=1))
    name_words = torch.from_numpy(np.stack([encoder.word_vectors(encoder.content_words(n)).reshape(-1) for n in names]))
    obj, full = flow.keys(name_words.to(device))
    flow.name_object.copy_(obj)
    flow.name_full.copy_(full)
    style_of = torch.tensor([index[r["style"]] for r in train.records], device=device)

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reference latents, target latents, word vectors, artists) of n triples, a third of each kind."""
        k = n // 3
        own = torch.randint(len(train), (n - 2 * k,), generator=g)
        paint = torch.randint(max(len(z_paint), 1), (k,), generator=g)
        sib = siblings[torch.randint(len(siblings), (k,), generator=g)]
        rows = torch.tensor(paint_rows, dtype=torch.long)[paint] if len(z_paint) else own[:k]
        ref = torch.cat([own, rows, sib[:, 0]])
        target = torch.cat([z_real[own], z_paint[paint] if len(z_paint) else z_real[own[:k]], z_real[sib[:, 1]]])
        text = torch.cat([vecs.draw(own, g), vecs.lookup(paint_ids[paint]) if len(z_paint) else vecs.draw(own[:k], g),
                          vecs.names(sib[:, 1])])
        return flow.ex_z[ref.to(device)], norm(target), text.to(device), style_of[ref.to(device)]

    def loss() -> torch.Tensor:
        ref, target, text, style = batch(cfg.batch_size)
        return F.mse_loss(flow.edit(ref, flow.words(text) + flow.artist(style, len(ref), device)), target)

    running = optimise(flow, cfg, loss, "edit")
    with torch.no_grad():  # the spread of a drawing's own latent around its edit under its name
        res = []
        for i in range(0, len(train), 1024):
            rows = torch.arange(i, min(i + 1024, len(train)))
            cond = flow.words(vecs.names(rows).to(device)) + flow.artist(style_of[rows.to(device)], len(rows), device)
            res.append(flow.ex_z[rows.to(device)] - flow.edit(flow.ex_z[rows.to(device)], cond))
        flow.res_std.copy_(torch.cat(res).std(0))
        ref, target, text, style = batch(3 * 1024)  # a fresh draw of triples: the loss per kind
        err = ((flow.edit(ref, flow.words(text) + flow.artist(style, len(ref), device)) - target) ** 2).mean(1)
    model.flow = flow
    k = len(err) // 3
    summary = {"exemplars": len(train), "names": len(names), "repainted": len(z_paint), "siblings": len(siblings),
               "styles": styles, "steps": cfg.steps, "train_loss": round(running, 4),
               "loss_by_kind": {"own": round(err[:len(err) - 2 * k].mean().item(), 4),
                                "repainted": round(err[len(err) - 2 * k:len(err) - k].mean().item(), 4),
                                "sibling": round(err[len(err) - k:].mean().item(), 4)},
               "seconds": round(time.time() - t0, 1), "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}}
    save_model(out, "vae", model, half=True, **{k: v for k, v in meta.items() if k not in ("config", "flow")}, flow=summary)
    print(f"[edit] {summary}")
    return summary


def fit_flow(data: str | Path, out: str | Path, device: torch.device, cfg: FlowTrainConfig, holdout: bool = True,
             limit: int | None = None) -> dict:
    """Fit the flow prior of `<out>/vae.safetensors` and save it there (prior="flow"). Returns a summary."""
    if cfg.kind == "edit":
        return fit_edit(data, out, device, cfg, holdout, limit)
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
    model.config.flow_kind = cfg.kind
    flow = LatentFlow(model.config.flow_config()).to(device)
    flow.z_mean.copy_(z_real.mean(0).to(device))
    flow.z_std.copy_(z_real.std(0).clamp(min=1e-3).to(device))
    noise = torch.Generator(device.type).manual_seed(cfg.seed)

    def loss() -> torch.Tensor:
        idx = torch.randint(len(z_all), (cfg.batch_size,), generator=g)
        real = idx < n_real
        text = torch.zeros(len(idx), vecs.lookup(paint_ids[:1] if len(paint_ids) else vecs.ids[:1]).shape[1])
        if real.any():
            text[real] = vecs.draw(idx[real], g)
        if (~real).any():
            text[~real] = vecs.lookup(paint_ids[idx[~real] - n_real])
        return flow(z_all[idx].to(device), text.to(device), style_all[idx.to(device)], generator=noise)

    running = optimise(flow, cfg, loss, "flow")
    if cfg.kind == "gaussian":  # the spread of the training latents around their predicted means
        with torch.no_grad():
            res = []
            for i in range(0, n_real, 1024):
                rows = torch.arange(i, min(i + 1024, n_real))
                cond = flow.words(vecs.names(rows).to(device)) + flow.artist(style_all[rows.to(device)], len(rows), device)
                res.append((z_all[rows].to(device) - flow.z_mean) / flow.z_std - flow.mean(cond))
            flow.res_std.copy_(torch.cat(res).std(0))
    with torch.no_grad():
        z_val = latents(model, val.images, device)
        vg = torch.Generator(device.type).manual_seed(0)
        val_loss = flow(z_val.to(device), val_vecs.names(torch.arange(len(val))).to(device),
                        style_of(val, range(len(val))).to(device), generator=vg).item() if len(val) else float("nan")
    model.flow = flow
    summary = {"latents": n_real, "repainted": len(z_paint), "styles": styles, "steps": cfg.steps,
               "train_loss": round(running, 4), "val_loss": round(val_loss, 4), "seconds": round(time.time() - t0, 1),
               "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}}
    # stored in float16 (half the size; what is evaluated is what ships)
    save_model(out, "vae", model, half=True, **{k: v for k, v in meta.items() if k not in ("config", "flow")}, flow=summary)
    print(f"[flow] {summary}")
    return summary
