"""Stage `vae`: train the conditional VAE on (image, Word2Vec caption vector) pairs, then (emoji set) store the
training images' latents as its exemplar prior.

A reader decides what is read (`EmojiVAEData`: the built set in memory; `StreamedVAEData`: an external set
decoded on the fly); `train_vae` is the one loop for both."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..checkpoint import WORD_VECTORS, load_model, save_model
from ..data.holdout import (TONE_PHRASE, UNDRAWN, VALIDATION_UNDRAWN, held_out_ids, load_holdout, object_of,
                             parse_colour)
from ..imaging.colour import COLOURS, recolour
from ..models.name_keys import ATTRIBUTE_WORDS
from ..models.text_encoder import MAX_WORDS, TextEncoder
from ..models.vae import CVAE, CVAEConfig
from ..preprocess import to_pil
from .dataset import load_split, without
from .distributed import Dist, Precision, all_sum, wrap
from .loop import run_epochs, seed_everything
from .streaming import DataConfig, loader, to_float


@dataclass
class VAETrainConfig:
    """The composing generator (design 6 of docs/experiments.md): the prompt's words read apart, colour captions and
    swaps, exemplars found by object; the compositional hold-out left out."""
    epochs: int = 24
    batch_size: int = 64
    lr: float = 2e-3
    latent_dim: int = 128  # with the exemplar prior, a larger latent gives sharper drawings (16 was blurred)
    beta: float = 0.25
    kl_warmup: int = 3  # epochs over which beta ramps up from 0
    seed: int = 0
    # exemplar latents: Adam steps on each training image's reconstruction from its posterior mean (0: the means)
    refine_steps: int = 10
    refine_lr: float = 0.1
    colour_aug: float = 0.3  # emoji set: share of the drawings repainted in another colour, named so
    holdout: bool = True  # emoji set: leave the compositional hold-out (crossgen/data/holdout.json) out
    # emoji set, swaps: z is read from a repainted drawing's original (under its own caption) and, for this share of
    # the drawings named with a colour or a skin tone, from a sibling in another colour or tone by the same artist
    swap: float = 0.5


class CaptionVectors:
    """Every caption of every record as the VAE's text input, its word vectors (MAX_WORDS * D,), kept as word
    indices and looked up per batch. Draws one caption per record."""

    def __init__(self, records: list[dict], encoder: TextEncoder):
        caps = [r["captions"] or [r["name"]] for r in records]
        self.offsets = torch.tensor(np.cumsum([0] + [len(c) for c in caps]))  # (N+1,)
        self.encoder = encoder
        self.ids = torch.stack([self.word_ids(t) for cs in caps for t in cs])  # (sum, T), -1 = no word
        self.table = F.normalize(torch.from_numpy(encoder.wv.vectors.astype(np.float32)), dim=1)  # (V, D)

    def word_ids(self, text: str) -> torch.Tensor:
        """(MAX_WORDS,) indices of a caption's content words in the word vectors, -1 padded."""
        ids = [self.encoder.wv.key_to_index[w] for w in self.encoder.content_words(text)][:MAX_WORDS]
        return torch.tensor(ids + [-1] * (MAX_WORDS - len(ids)), dtype=torch.long)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) word indices -> (B, T * D) word vectors, zeros where there is no word."""
        vecs = self.table[ids.clamp(min=0)] * (ids >= 0)[..., None]  # (B, T, D)
        return vecs.flatten(1)

    def rows(self, rows: torch.Tensor) -> torch.Tensor:
        return self.lookup(self.ids[rows])

    def names(self, idx: torch.Tensor) -> torch.Tensor:
        return self.rows(self.offsets[idx])  # the first caption is the name

    def draw(self, idx: torch.Tensor, g: torch.Generator, p_name: float = 0.5) -> torch.Tensor:
        lo, hi = self.offsets[idx], self.offsets[idx + 1]
        pick = lo + (torch.rand(len(idx), generator=g) * (hi - lo)).long()
        use_name = torch.rand(len(idx), generator=g) < p_name
        return self.rows(torch.where(use_name, lo, pick))


def preview(model: CVAE, encoder: TextEncoder, logs: Path,
            prompts: tuple[str, ...] = ("red apple", "dog", "blue apple")) -> None:
    """A quick look at what the model draws: 8 samples per prompt as `<logs>/vae_<prompt>.png`."""
    for prompt in prompts:
        try:
            v = torch.from_numpy(encoder.encode(prompt).words.reshape(-1))
        except ValueError:  # a word the (tiny) vocabulary lacks
            continue
        ims = to_pil(model.sample(v, n=8, generator=torch.Generator().manual_seed(0)))
        side = ims[0].width
        sheet = ims[0].resize((side * len(ims), side))
        for j, im in enumerate(ims):
            sheet.paste(im, (side * j, 0))
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
                  refine_steps: int = 0, refine_lr: float = 0.1, batch_size: int = 512, holdout: bool = False) -> dict:
    """Store the training images' name vectors and latents in `<out>/vae.safetensors` as the sampling prior
    (see `CVAE.set_exemplars`): their posterior means, refined by `refine_latents` when refine_steps > 0.
    Returns how many, and the mean reconstruction BCE per image at the means and at the stored latents."""
    model, meta = load_model(out, "vae", CVAE, CVAEConfig, device)
    split = load_split(data, "train", limit=limit)
    split = without(split, held_out_ids()) if holdout else split
    encoder = TextEncoder.load(Path(out) / WORD_VECTORS)
    vecs = CaptionVectors(split.records, encoder)
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
    attributes = [encoder.wv[w] for w in ATTRIBUTE_WORDS if w in encoder]
    sources = exemplar_sources([split.records[int(i)] for i in keep])
    model.set_exemplars(torch.cat(texts), torch.cat(zs), torch.from_numpy(np.stack(attributes)) if attributes else None,
                        torch.tensor(sources["artist"]))
    # draw about as far from an exemplar as its own posterior spreads: further gives blurred, off-model images
    model.config.exemplar_sd = round(torch.cat(sds).mean().item(), 4)
    n = max(len(keep), 1)
    summary = {"count": len(keep), "refine_steps": refine_steps, "refine_lr": refine_lr,
               "bce_posterior_mean": round(bce[0].item() / n, 1), "bce_stored": round(bce[1].item() / n, 1)}
    save_model(out, "vae", model, **{k: v for k, v in meta.items() if k not in ("config", "exemplars", "sources")},
               exemplars=summary, sources=sources)
    return summary


def exemplar_sources(records: list[dict]) -> dict:
    """Which training drawing each exemplar row is, for credits and hints: {"artists": [style, ...], "name": [name
    of each row], "artist": [index into artists of each row]}."""
    artists = sorted({r["style"] for r in records})
    index = {a: i for i, a in enumerate(artists)}
    return {"artists": artists, "name": [r["name"] for r in records], "artist": [index[r["style"]] for r in records]}


def train_vae(source: VAEData, out: str | Path, d: Dist, cfg: VAETrainConfig, work: str | Path,
              resume: bool = True, amp: bool = False) -> dict:
    """Train the conditional VAE on `source`'s (image, caption vector) batches (AdamW, one-cycle LR, the KL
    weight ramped up over cfg.kl_warmup epochs, gradients clipped at 5, mixed precision on CUDA when `amp`, DDP
    when `d` is distributed); the best validation epoch is saved as `<out>/vae.safetensors` with a preview
    sheet in `<out>/logs`. Returns the best epoch's row."""
    g = seed_everything(cfg.seed)
    model = CVAE(CVAEConfig(image_size=source.image_size, text_dim=source.encoder.dim, latent_dim=cfg.latent_dim,
                            beta=cfg.beta, max_words=MAX_WORDS)).to(d.device)
    net = wrap(model, d)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(cfg.epochs * source.steps(), 1),
                                                pct_start=0.1)
    noise = torch.Generator(d.device.type).manual_seed(cfg.seed + d.rank)  # the posterior samples of each rank
    prec = Precision(d.device, amp)

    def train_epoch(epoch: int) -> dict:
        model.config.beta = cfg.beta * min(1.0, epoch / max(cfg.kl_warmup, 1))
        tot = rec = kl = n = 0.0
        for x, text, extra in tqdm(source.batches(epoch, g), total=source.steps(), desc=f"vae {epoch}/{cfg.epochs}",
                                   leave=False, disable=not d.main):
            with prec.autocast():  # x (B, 3, H, W), text (B, text_in); extra: the model's other inputs (swaps)
                o = net(x, text, generator=noise, **extra)
            losses = model.loss(o._replace(logits=o.logits.float()), x)
            prec.step(losses.loss, opt, model.parameters(), clip=5.0)
            sched.step()
            b = len(x)
            tot, rec, kl, n = tot + losses.loss.item() * b, rec + losses.recon.item() * b, kl + losses.kl.item() * b, n + b
        model.config.beta = cfg.beta
        tot, rec, kl, n = all_sum([tot, rec, kl, n], d)
        return {"train_loss": tot / n, "train_recon": rec / n, "train_kl": kl / n}

    def save(row: dict) -> None:
        save_model(out, "vae", model, train=source.meta(row, cfg))
        preview(model, source.encoder, Path(out) / "logs")

    return run_epochs("vae", model, opt, sched, cfg.epochs, train_epoch,
                      lambda: evaluate(model, source.val_batches(), d), save, work, Path(out) / "logs", resume,
                      main=d.main)



def finish_emoji_vae(data: str | Path, out: str | Path, device: torch.device, cfg: VAETrainConfig,
                     limit: int | None = None) -> dict:
    """What follows `train_vae` on the emoji set: the exemplar table (`add_exemplars`) and a preview of the VAE
    as shipped. Returns the exemplar summary."""
    exemplars = add_exemplars(data, out, device, limit, cfg.refine_steps, cfg.refine_lr, holdout=cfg.holdout)
    encoder = TextEncoder.load(Path(out) / WORD_VECTORS)
    preview(load_model(out, "vae", CVAE, CVAEConfig, device)[0], encoder, Path(out) / "logs")
    return exemplars


@torch.inference_mode()
def evaluate(model: CVAE, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], d: Dist) -> dict:
    """Validation losses per image over (image (B, 3, H, W), text input (B, text_in), the model's other inputs)
    batches, with a fixed noise seed; summed over ranks."""
    recon = kl = n = 0.0
    g = torch.Generator(d.device.type).manual_seed(0)
    for x, text, extra in batches:
        losses = model.loss(model(x, text, generator=g, **extra), x)
        b = len(x)
        recon, kl, n = recon + losses.recon.item() * b, kl + losses.kl.item() * b, n + b
    recon, kl, n = all_sum([recon, kl, n], d)
    n = max(n, 1)
    return {"val_loss": (recon + kl) / n, "val_recon": recon / n, "val_kl": kl / n}


class VAEData(Protocol):
    """What `train_vae` asks of a data source."""
    encoder: TextEncoder  # the trained word vectors: caption -> (T * D,) word vectors
    image_size: int  # side of the images the CVAE draws

    def steps(self) -> int: ...  # training batches per epoch (on this rank)
    # (images (B, 3, H, W), caption vectors (B, text_in), the model's other keyword inputs) batches
    def batches(self, epoch: int, g: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict]]: ...
    def val_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict]]: ...
    def meta(self, row: dict, cfg: VAETrainConfig) -> dict: ...  # the checkpoint's "train" field


class ColourCaptions:
    """Colour augmentation with captions that say it: a drawing repainted in another colour (`colour.recolour`)
    is captioned "<colour> <object>", so every colour word is seen on many objects, not only on the hearts,
    circles and books that emoji name by colour. People, flags and toned names are never repainted, and no
    pair of the compositional hold-out or of the prompts no emoji draws (`holdout.UNDRAWN`, and the validation
    ones) is ever made."""

    SKIP = ("People & Body", "Flags", "Component")

    def __init__(self, records: list[dict], vecs: CaptionVectors, share: float):
        banned = set(UNDRAWN) | set(VALIDATION_UNDRAWN) | {(h["colour"], h["object"]) for h in load_holdout()["colour_object"]["held_out"]}
        self.vecs, self.share = vecs, share
        self.objects = [None if r.get("category") in self.SKIP or TONE_PHRASE.search(r["name"])
                        else object_of(r["name"]) for r in records]
        self.colours = {o: [c for c in COLOURS if (c, o) not in banned] for o in set(self.objects) if o}
        self._ids: dict[str, torch.Tensor] = {}

    def pick(self, record: int, g: torch.Generator) -> tuple[str, torch.Tensor] | None:
        """A colour for a record's drawing and the word indices (MAX_WORDS,) of "<colour> <object>"; None for a
        record that is never repainted."""
        obj = self.objects[record]
        if not obj or not self.colours[obj]:
            return None
        colour = self.colours[obj][int(torch.randint(len(self.colours[obj]), (1,), generator=g))]
        caption = f"{colour} {obj}"
        if caption not in self._ids:
            self._ids[caption] = self.vecs.word_ids(caption)
        return colour, self._ids[caption]

    def __call__(self, x: torch.Tensor, text: torch.Tensor, idx: torch.Tensor, g: torch.Generator) -> None:
        """Repaint a share of the batch in place: x (B, 3, H, W) in [0, 1], text (B, text_in), idx (B,) records."""
        pick = (torch.rand(len(idx), generator=g) < self.share).nonzero()[:, 0].tolist()
        for i in pick:
            chosen = self.pick(int(idx[i]), g)
            if chosen is not None:
                x[i] = recolour(x[i], chosen[0])
                text[i] = self.vecs.lookup(chosen[1][None])[0].to(text.device)


def sibling_pairs(split) -> list[tuple[int, int]]:
    """(reference, target) record pairs: a drawing named with a colour or a skin tone, and another drawing of the
    same object by the same artist in another colour or tone ("red heart" -> "blue heart" by Noto)."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(split.records):
        groups.setdefault((r["style"], object_of(r["name"])), []).append(i)
    pairs = []
    for i, r in enumerate(split.records):
        if parse_colour(" ".join(r["name"].split())) or TONE_PHRASE.search(r["name"]):
            pairs += [(j, i) for j in groups[(r["style"], object_of(r["name"]))] if split.records[j]["id"] != r["id"]]
    return pairs


class EmojiVAEData:
    """The built emoji set in memory: each training image with one of its captions, drawn anew each epoch (the
    name half of the time); validation images with their names. With the compositional hold-out out
    (cfg.holdout), colour captions (cfg.colour_aug) and swaps (cfg.swap)."""
    image_size = CVAEConfig.image_size

    def __init__(self, data: str | Path, out: str | Path, device: torch.device, batch_size: int,
                 limit: int | None = None, cfg: VAETrainConfig | None = None):
        cfg = cfg or VAETrainConfig()
        self.encoder = TextEncoder.load(Path(out) / WORD_VECTORS)
        self.train, self.val = load_split(data, "train", limit=limit), load_split(data, "val", limit=limit)
        if cfg.holdout:
            self.train, self.val = without(self.train, held_out_ids()), without(self.val, held_out_ids())
        self.train_vecs = CaptionVectors(self.train.records, self.encoder)
        self.val_vecs = CaptionVectors(self.val.records, self.encoder)
        self.colour = ColourCaptions(self.train.records, self.train_vecs, cfg.colour_aug) if cfg.colour_aug else None
        self.device, self.batch_size, self.swap = device, batch_size, cfg.swap
        self.siblings: dict[int, list[int]] = {}  # target record -> its siblings' records
        for ref, target in (sibling_pairs(self.train) if cfg.swap else []):
            self.siblings.setdefault(target, []).append(ref)

    def steps(self) -> int:
        return (len(self.train) + self.batch_size - 1) // self.batch_size

    def _swap(self, x: torch.Tensor, text: torch.Tensor, idx: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The drawings the encoder reads and their captions, before any repainting: each drawing itself, or for a
        share cfg.swap of those with siblings a sibling under its name. (B, 3, H, W), (B, text_in)."""
        ref, ref_text = x.clone(), text.clone()
        rows, siblings = [], []  # the batch rows that read a sibling, and which
        for i, record in enumerate(idx.tolist()):
            pool = self.siblings.get(record)
            if pool and float(torch.rand(1, generator=g)) < self.swap:
                rows.append(i)
                siblings.append(pool[int(torch.randint(len(pool), (1,), generator=g))])
        if rows:  # one read of the sibling drawings and names
            ref[rows], ref_text[rows] = self.train.batch(torch.tensor(siblings), "cpu"), self.train_vecs.names(torch.tensor(siblings))
        return ref, ref_text

    def batches(self, epoch: int, g: torch.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        perm = torch.randperm(len(self.train), generator=g)
        for i in range(0, len(perm), self.batch_size):
            idx = perm[i:i + self.batch_size]
            x, text, extra = self.train.batch(idx, "cpu"), self.train_vecs.draw(idx, g), {}
            if self.swap:  # z from the drawing before it is repainted, or from a sibling
                ref, ref_text = self._swap(x, text, idx, g)
                extra.update(reference=ref.to(self.device), reference_text=ref_text.to(self.device))
            if self.colour is not None:
                self.colour(x, text, idx, g)
            yield x.to(self.device), text.to(self.device), extra

    def val_batches(self, batch_size: int = 256) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict]]:
        for i in range(0, len(self.val), batch_size):
            idx = torch.arange(i, min(i + batch_size, len(self.val)))
            yield self.val.batch(idx, self.device), self.val_vecs.names(idx).to(self.device), {}

    def meta(self, row: dict, cfg: VAETrainConfig) -> dict:
        return {"epoch": row["epoch"], "val_loss": row["val_loss"], "config": asdict(cfg)}


class StreamedVAEData:
    """An external set's images decoded on the fly at data.vae_image_size, sharded over ranks, each with one
    of its captions drawn anew each epoch; validation images with their first caption."""

    def __init__(self, records: dict[str, list[dict]], out: str | Path, d: Dist, cfg: VAETrainConfig,
                 data: DataConfig):
        self.encoder = TextEncoder.load(Path(out) / WORD_VECTORS)
        self.image_size, self.d = data.vae_image_size, d
        self.train_dl = loader(records["train"], self.image_size, cfg.batch_size, d, data.num_workers, True, cfg.seed,
                               caption="random")
        self.val_dl = loader(records["val"], self.image_size, cfg.batch_size, d, data.num_workers, False, cfg.seed,
                             caption="first")

    def steps(self) -> int:
        return len(self.train_dl)

    def _pairs(self, dl) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict]]:
        for x, _, caps in dl:
            text = self.encoder.encode_batch(list(caps), words=True)  # (B, text_in)
            yield to_float(x, self.d.device), torch.from_numpy(text).to(self.d.device), {}

    def batches(self, epoch: int, g: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict]]:
        self.train_dl.sampler.set_epoch(epoch)
        return self._pairs(self.train_dl)

    def val_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict]]:
        return self._pairs(self.val_dl)

    def meta(self, row: dict, cfg: VAETrainConfig) -> dict:
        return {"epoch": row["epoch"], "val_loss": row["val_loss"], "config": asdict(cfg), "ranks": self.d.world}
