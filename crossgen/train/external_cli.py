"""`python -m crossgen.train STAGE --data {coco,flickr30k,flickr8k,folder} --root PATH`, also under torchrun."""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import time
from pathlib import Path

import torch

from ..checkpoint import load_json, write_manifest
from .distributed import Dist, barrier, setup, teardown
from .external import train_features_external, train_vae_external, train_word2vec_external
from .external_captioner import train_captioner_external
from .loop import hardware
from .streaming import DataConfig, load_splits

CAPTIONER_VIEWS = 0  # augmented feature passes: photos get none unless --views asks


def data_config(args: argparse.Namespace) -> DataConfig:
    """DataConfig defaults overridden by the flags that were given."""
    cfg = DataConfig()
    for f in dataclasses.fields(cfg):
        value = getattr(args, f.name, None)
        if value is not None:
            setattr(cfg, f.name, value)
    return cfg


def run_stage(stage: str, records: dict, args: argparse.Namespace, cfg, data: DataConfig, d: Dist) -> dict:
    out, common = Path(args.out), dict(work=Path(args.work) / args.data, resume=args.resume)  # apart from emoji state
    if stage == "word2vec":
        result = train_word2vec_external(records, out, cfg, args.wordnet) if d.main else {}
        barrier(d)  # the other ranks wait for the word vectors
        return result
    if stage == "features":
        return train_features_external(records, out, d, cfg, data, **common)
    if stage == "vae":
        return train_vae_external(records, out, d, cfg, data, **common)
    if args.views is None:
        cfg.views = CAPTIONER_VIEWS
    return train_captioner_external(records, out, d, cfg, data, **common)


def train_external(args: argparse.Namespace, stages: list[str], config_for) -> None:
    """Run `stages` on the external set `args.data` under `args.root`; rank 0 writes logs and checkpoints."""
    if not args.root:
        raise SystemExit(f"--data {args.data} needs --root PATH (where the data set is on disk)")
    d = setup(args.device)
    try:
        data = data_config(args)
        records = load_splits(args.data, args.root, args.limit)
        out = Path(args.out)
        if d.main:
            out.mkdir(parents=True, exist_ok=True)
            counts = {s: len(r) for s, r in records.items()}
            print(f"training {stages} on {args.data} {counts} with {d.world} rank(s); {hardware(d.device)}")
        print(f"rank {d.rank}/{d.world} on {d.device}: {len(records['train']) // d.world}+ training images")
        manifest_path = out / "manifest.json"
        training = load_json(manifest_path).get("training", {}) if d.main and manifest_path.is_file() else {}
        for stage in stages:
            t0 = time.time()
            cfg = config_for(stage, args)
            result = run_stage(stage, records, args, cfg, data, d)
            barrier(d)  # the next stage reads this one's checkpoint
            if not d.main:
                continue
            training[stage] = {"config": dataclasses.asdict(cfg), "data": dataclasses.asdict(data), "result": result,
                               "minutes": round((time.time() - t0) / 60, 2), "ranks": d.world,
                               "hardware": hardware(d.device), "date": datetime.date.today().isoformat()}
            write_manifest(out, training=training, torch=torch.__version__,
                           data={"source": args.data, "root": str(Path(args.root).resolve()),
                                 "images": {s: len(r) for s, r in records.items()}})
            print(f"[{stage}] done in {training[stage]['minutes']} min")
    finally:
        teardown(d)
