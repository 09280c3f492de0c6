"""python -m crossgen.train {word2vec,features,vae,captioner,all} --data data/emoji --out checkpoints"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import time
from pathlib import Path

import torch

from ..checkpoint import load_json, write_manifest
from ..device import get_device
from ..text_encoder import Word2VecConfig
from . import (CaptionerTrainConfig, FeatureTrainConfig, VAETrainConfig, train_captioner, train_features, train_vae,
               train_word2vec)
from .loop import hardware

STAGES = ["word2vec", "features", "vae", "captioner"]
CONFIGS = {"word2vec": Word2VecConfig, "features": FeatureTrainConfig, "vae": VAETrainConfig,
           "captioner": CaptionerTrainConfig}


def config_for(stage: str, args: argparse.Namespace):
    """The stage's dataclass defaults, overridden by the flags that were given."""
    cfg = CONFIGS[stage]()
    for f in dataclasses.fields(cfg):
        value = getattr(args, f.name, None)
        if value is not None:
            setattr(cfg, f.name, value)
    return cfg


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m crossgen.train", description=__doc__)
    p.add_argument("stage", choices=STAGES + ["all"])
    p.add_argument("--data", default="data/emoji", help="built dataset (python -m crossgen.data emoji)")
    p.add_argument("--out", default="checkpoints", help="where checkpoints, logs and manifest.json go")
    p.add_argument("--work", default="runs", help="resumable training state (git-ignored)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-resume", dest="resume", action="store_false", help="start over instead of resuming")
    p.add_argument("--no-wordnet", dest="wordnet", action="store_false", help="train Word2Vec on captions only")
    p.add_argument("--limit", type=int, help="use only the first N records of each split (smoke tests)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--views", type=int, help="captioner: augmented views per image")
    p.add_argument("--vector-size", type=int, help="word2vec: vector size")
    args = p.parse_args(argv)
    device = get_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stages = STAGES if args.stage == "all" else [args.stage]
    manifest_path = out / "manifest.json"
    manifest = load_json(manifest_path) if manifest_path.is_file() else {}
    training = manifest.get("training", {})
    print(f"training {stages} on {hardware(device)}")
    for stage in stages:
        t0 = time.time()
        cfg = config_for(stage, args)
        common = dict(work=args.work, resume=args.resume, limit=args.limit)
        if stage == "word2vec":
            result = train_word2vec(args.data, out, cfg, args.wordnet)
        elif stage == "features":
            result = train_features(args.data, out, device, cfg, **common)
        elif stage == "vae":
            result = train_vae(args.data, out, device, cfg, **common)
        else:
            result = train_captioner(args.data, out, device, cfg, **common)
        training[stage] = {"config": dataclasses.asdict(cfg), "result": result, "minutes": round((time.time() - t0) / 60, 2),
                           "hardware": hardware(device), "date": datetime.date.today().isoformat()}
        build = Path(args.data) / "build.json"
        write_manifest(out, training=training, data=json.loads(build.read_text()) if build.is_file() else {},
                       torch=torch.__version__)
        print(f"[{stage}] done in {training[stage]['minutes']} min")


if __name__ == "__main__":
    main()
