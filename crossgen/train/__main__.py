"""python -m crossgen.train {word2vec,features,vae,captioner,all} --data data/emoji --out checkpoints
(`exemplars` rebuilds only the trained VAE's exemplar table; the vae stage ends with it.)

External sets: --data {coco,flickr30k,flickr8k,folder} --root PATH, also under
torchrun --nproc_per_node=N -m crossgen.train ... (DistributedDataParallel)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

from ..checkpoint import load_json, write_manifest
from ..cli import run
from ..data.holdout import held_out_ids
from ..data.sources import SOURCES
from ..device import get_device
from ..errors import UsageError
from ..models.text_encoder import Word2VecConfig
from .captioner import CaptionerTrainConfig, EmojiCaptionerData, train_captioner
from .confidence import fit_confidence
from .distributed import Dist
from .external_cli import train_external
from .features import EmojiFeatureData, FeatureTrainConfig, train_features
from .loop import hardware, stage_record, with_flags
from .postprocess import fit_postprocessing
from .streaming import DataConfig
from .vae import EmojiVAEData, VAETrainConfig, add_exemplars, finish_emoji_vae, train_vae
from .word2vec import CAPTION_REPEAT, caption_sentences, train_word2vec

STAGES = ["word2vec", "features", "vae", "captioner"]
IMAGE_TO_TEXT = ("features", "captioner")  # the stages whose data the manifest's data record describes
CONFIGS = {"word2vec": Word2VecConfig, "features": FeatureTrainConfig, "vae": VAETrainConfig,
           "captioner": CaptionerTrainConfig, "exemplars": VAETrainConfig, "postprocess": CaptionerTrainConfig,
           "confidence": CaptionerTrainConfig}
# Emoji-set recipes: per-stage changes to the dataclass defaults (flags given still win). Both train the same
# generator (VAETrainConfig's defaults); "full" is the shipped image -> text set: 7.6 min on one H100, hours on 2 CPU
# cores. "quick" fits the features and the captioner in under an hour on a 2-core CPU: fewer feature epochs, and the
# captioner stops where its validation loss bottomed out.
RECIPES = {
    "full": {"features": {"epochs": 114}, "captioner": {"views": 6, "epochs": 16}},
    "quick": {"features": {"epochs": 20}, "captioner": {"views": 2, "epochs": 6}},
}


def recipe_for(name: str, device: torch.device) -> str:
    """Resolve --recipe auto: the full recipe on CUDA, the quick one on CPU."""
    return ("full" if device.type == "cuda" else "quick") if name == "auto" else name


def config_for(stage: str, args: argparse.Namespace, recipe: str | None = None):
    """The stage's dataclass defaults, changed by the recipe, overridden by the flags that were given."""
    cfg = CONFIGS[stage]()
    for k, v in RECIPES.get(recipe, {}).get(stage, {}).items():
        setattr(cfg, k, v)
    return with_flags(cfg, args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m crossgen.train", description=__doc__)
    p.add_argument("stage", choices=STAGES + ["exemplars", "postprocess", "confidence", "all"])
    p.add_argument("--data", default="data/emoji", help="built dataset (python -m crossgen.data emoji)")
    p.add_argument("--out", default="checkpoints", help="where checkpoints, logs and manifest.json go")
    p.add_argument("--work", default="runs", help="resumable training state (git-ignored)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-resume", dest="resume", action="store_false", help="start over instead of resuming")
    p.add_argument("--no-wordnet", dest="wordnet", action="store_false", help="train Word2Vec on captions only")
    p.add_argument("--limit", type=int, help="use only the first N records of each split (smoke tests)")
    p.add_argument("--recipe", choices=["auto", *RECIPES], default="auto",
                   help="emoji set: full (shipped; for a GPU) or quick (all stages in ~1 h on 2 CPU cores); "
                        "auto = full on CUDA, else quick")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--views", type=int, help="captioner: augmented views per image")
    p.add_argument("--vector-size", type=int, help="word2vec: vector size")
    p.add_argument("--augment", type=float, help="features: augmentation strength (0 = none)")
    p.add_argument("--outliers", type=float, help="features: weight of the outlier-exposure term (0: no outliers)")
    p.add_argument("--init", help="features: start from the feature model in this checkpoint folder (fine-tuning)")
    p.add_argument("--embed-dim", type=int, help="captioner: word embedding size")
    p.add_argument("--hidden-dim", type=int, help="captioner: LSTM size")
    p.add_argument("--latent-dim", type=int, help="vae: latent size")
    p.add_argument("--beta", type=float, help="vae: weight of the KL term")
    p.add_argument("--refine-steps", type=int, help="vae, exemplars: Adam steps fitting each exemplar's latent (0: means)")
    x = p.add_argument_group("external sets (--data coco|flickr30k|flickr8k|folder)")
    dc = DataConfig()
    x.add_argument("--root", help="where the set is on disk")
    x.add_argument("--resnet-weights", help="local ImageNet ResNet18 weights (.pth); switches to 224 px")
    x.add_argument("--image-size", type=int, help=f"feature extractor input side (default {dc.feature_size()}, "
                   f"224 with --resnet-weights)")
    x.add_argument("--num-workers", type=int, help=f"DataLoader workers per process (default {dc.num_workers})")
    x.add_argument("--max-words", type=int, help=f"features: caption words predicted (default {dc.max_words})")
    x.add_argument("--vocab-min-count", type=int, help=f"captioner: min word count (default {dc.vocab_min_count})")
    x.add_argument("--max-len", type=int, help=f"captioner: longest caption (default {dc.max_len})")
    x.add_argument("--no-amp", dest="amp", action="store_const", const=False, help="no mixed precision on CUDA")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    stages = STAGES if args.stage == "all" else [args.stage]
    if args.data in SOURCES and not (Path(args.data) / "records.jsonl").is_file():
        if args.stage in ("postprocess", "confidence"):
            raise UsageError(f"the {args.stage} stage fits the emoji captioner's caption steps; "
                             "an external set's captioner has none")
        if args.stage == "exemplars":
            raise UsageError("the exemplars stage rebuilds the emoji VAE's exemplar table; "
                             "a VAE trained on an external set has none (it samples from its prior)")
        return train_external(args, stages, config_for)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UsageError("torchrun is for the external sets (--data coco|flickr30k|flickr8k|folder --root PATH); "
                         "train the emoji set with one process")
    train_emoji(args, stages)


def train_emoji(args: argparse.Namespace, stages: list[str]) -> None:
    """Run `stages` on the built emoji set `args.data` in one process; each finished stage is recorded in
    `<out>/manifest.json` (config, recipe, result, time, hardware). The manifest's data record is the dataset the
    image -> text models were trained on (the calibration reads its artists): the features and captioner stages set
    it; any other stage (word2vec and the VAE, the fits on top of them) on another dataset version keeps it and
    records its own data in its entry."""
    device = get_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = load_json(manifest_path) if manifest_path.is_file() else {}
    training, data_record = manifest.get("training", {}), manifest.get("data") or {}
    recipe = recipe_for(args.recipe, device)
    build = Path(args.data) / "build.json"
    built = json.loads(build.read_text()) if build.is_file() else {}
    print(f"training {stages} on {hardware(device)}, {recipe} recipe")
    for stage in stages:
        t0 = time.time()
        cfg = config_for(stage, args, recipe)
        result = run_emoji_stage(stage, args, out, device, cfg)
        flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(cfg) if getattr(args, f.name, None) is not None}
        extra = {"init": args.init} if stage == "features" and args.init else {}
        if stage in IMAGE_TO_TEXT or not data_record:
            data_record = built
        elif built.get("split_version") != data_record.get("split_version"):
            extra["data"] = {"split_version": built.get("split_version"), "styles": sorted(built.get("packages", {}))}
        training[stage] = stage_record(cfg, result, t0, device, recipe=recipe, flags=flags, **extra)
        if stage == "vae":  # it rebuilt the exemplar table: an earlier exemplars stage describes one that is gone
            training.pop("exemplars", None)
        write_manifest(out, training=training, data=data_record, torch=torch.__version__)
        print(f"[{stage}] done in {training[stage]['minutes']} min")


def run_emoji_stage(stage: str, args: argparse.Namespace, out: Path, device: torch.device, cfg) -> dict:
    """One stage on the emoji set, through the same training functions as the external sets."""
    d, common, limit = Dist(device=device), dict(work=args.work, resume=args.resume), args.limit
    if stage == "word2vec":
        exclude = held_out_ids() if cfg.holdout else set()
        return train_word2vec(caption_sentences(args.data, exclude), out, cfg, args.wordnet, repeat=CAPTION_REPEAT)
    if stage == "features":
        source = EmojiFeatureData(args.data, device, cfg, limit, init=args.init, ood=Path(args.work) / "ood")
        return train_features(source, out, d, cfg, **common)
    if stage == "vae":
        best = train_vae(EmojiVAEData(args.data, out, device, cfg.batch_size, limit, cfg), out, d, cfg, **common)
        return {**best, "exemplars": finish_emoji_vae(args.data, out, device, cfg, limit)}
    if stage == "exemplars":
        return add_exemplars(args.data, out, device, limit, cfg.refine_steps, cfg.refine_lr, holdout=bool(cfg.holdout))
    if stage == "postprocess":
        return fit_postprocessing(args.data, out, device, args.work, limit)
    if stage == "confidence":  # the out-of-domain probe and the calibration alone; the captions stay as they are
        return fit_confidence(args.data, out, device, args.work, limit)
    best = train_captioner(EmojiCaptionerData(args.data, device, cfg.views, limit), out, d, cfg, **common)
    return {**best, **fit_postprocessing(args.data, out, device, args.work, limit)}


if __name__ == "__main__":
    sys.exit(run(main))
