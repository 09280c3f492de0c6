"""`python -m crossgen.train STAGE --data {coco,flickr30k,flickr8k,folder} --root PATH`, also under torchrun."""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from ..checkpoint import load_json, write_manifest
from ..errors import UsageError
from .distributed import Dist, barrier, setup, teardown
from .captioner import StreamedCaptionerData, train_captioner
from .features import StreamedFeatureData, train_features
from .loop import hardware, stage_record, with_flags
from .streaming import DataConfig, load_splits
from .vae import StreamedVAEData, train_vae
from .word2vec import external_sentences, train_word2vec

CAPTIONER_VIEWS = 0  # augmented feature passes: photos get none unless --views asks


def data_config(args: argparse.Namespace) -> DataConfig:
    """DataConfig defaults overridden by the flags that were given."""
    return with_flags(DataConfig(), args)


def run_stage(stage: str, records: dict, args: argparse.Namespace, cfg, data: DataConfig, d: Dist) -> dict:
    """One stage on the external set, through the same training functions as the emoji set."""
    out, common = Path(args.out), dict(work=Path(args.work) / args.data, resume=args.resume, amp=data.amp)  # apart from emoji state
    if stage == "word2vec":
        result = train_word2vec(external_sentences(records), out, cfg, args.wordnet) if d.main else {}
        barrier(d)  # the other ranks wait for the word vectors
        return result
    if stage == "features":
        return train_features(StreamedFeatureData(records, d, cfg, data), out, d, cfg, **common)
    if stage == "vae":
        return train_vae(StreamedVAEData(records, out, d, cfg, data), out, d, cfg, **common)
    if args.views is None:
        cfg.views = CAPTIONER_VIEWS
    return train_captioner(StreamedCaptionerData(records, d, cfg, data), out, d, cfg, **common)


def train_external(args: argparse.Namespace, stages: list[str], config_for) -> None:
    """Run `stages` on the external set `args.data` under `args.root`; rank 0 writes logs and checkpoints."""
    if not args.root:
        raise UsageError(f"--data {args.data} needs --root PATH (where the data set is on disk)")
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
            training[stage] = stage_record(cfg, result, t0, d.device, data=dataclasses.asdict(data), ranks=d.world)
            write_manifest(out, training=training, torch=torch.__version__,
                           data={"source": args.data, "root": str(Path(args.root).resolve()),
                                 "images": {s: len(r) for s, r in records.items()}})
            print(f"[{stage}] done in {training[stage]['minutes']} min")
    finally:
        teardown(d)
