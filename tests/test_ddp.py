"""torchrun + DistributedDataParallel on CPU (gloo): two ranks train every stage on a tiny folder set."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crossgen.checkpoint import load_model
from crossgen.models.image_features import FeatureConfig, ImageFeatures
from crossgen.serving.pipeline import Pipeline
from external_sets import make_folder_csv

pytestmark = pytest.mark.slow  # torchrun, two ranks, every stage

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--device", "cpu", "--num-workers", "0", "--batch-size", "8", "--no-wordnet", "--vector-size", "16",
        "--image-size", "32", "--embed-dim", "16", "--hidden-dim", "32", "--latent-dim", "4", "--max-words", "20",
        "--vocab-min-count", "1"]


def torchrun(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "crossgen.train",
           *args, "--data", "folder", "--root", str(tmp / "set"), "--out", str(tmp / "out"), "--work", str(tmp / "work"),
           *TINY]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYTHONPATH": str(ROOT)}
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def losses(out: Path, stage: str) -> list[float]:
    return [row["train_loss"] for row in json.loads((out / "logs" / f"{stage}.json").read_text())]


def test_torchrun_two_ranks_train_save_once_and_resume(tmp_path: Path):
    make_folder_csv(tmp_path / "set", 24)  # 20 training images: 10 per rank
    p = torchrun(tmp_path, "all", "--epochs", "4")
    out = tmp_path / "out"
    assert "rank 0/2 on cpu" in p.stdout and "rank 1/2 on cpu" in p.stdout  # both ranks ran
    assert p.stdout.count("[features] epoch=4") == 1  # rank 0 logs, rank 1 does not
    for stage in ("features", "vae", "captioner"):
        curve = losses(out, stage)
        print(stage, [round(v, 4) for v in curve])
        assert len(curve) == 4 and curve[-1] < curve[0], (stage, curve)
    assert sorted(f.name for f in out.glob("*.safetensors")) == ["captioner.safetensors", "features.safetensors",
                                                                "vae.safetensors"]
    assert sorted(f.name for f in (tmp_path / "work" / "folder").iterdir()) == ["captioner_state.pt", "features_state.pt",
                                                                    "vae_state.pt"]
    model, meta = load_model(out, "features", ImageFeatures, FeatureConfig)
    assert meta["train"]["ranks"] == 2 and model.config.image_size == 32 and not model.config.imagenet_weights
    pipe = Pipeline.from_checkpoints(out, "cpu")  # manifest written once, by rank 0, and it verifies
    assert pipe.image_to_text(tmp_path / "set" / "pics" / "0.jpg")
    assert len(pipe.text_to_image("red square", n=2, seed=0)) == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["training"]["captioner"]["ranks"] == 2 and manifest["data"]["source"] == "folder"

    before = (out / "captioner.safetensors").read_bytes()
    p = torchrun(tmp_path, "captioner", "--epochs", "4")  # every rank loads the state; nothing left to train
    assert p.stdout.count("[captioner] resumed after epoch 4") == 1
    assert len(losses(out, "captioner")) == 4 and (out / "captioner.safetensors").read_bytes() == before
    Pipeline.from_checkpoints(out, "cpu")
