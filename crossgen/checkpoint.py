"""Checkpoint I/O: a dataclass config as JSON beside safetensors weights, and a sha256 manifest.

Nothing here unpickles: weights are safetensors, everything else is JSON.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load_file, save_file

from .errors import CheckpointError

T = TypeVar("T")
MANIFEST = "manifest.json"
UNLISTED = {MANIFEST, "metrics.json", "metrics_fixture.json", "README.md"}  # not model files (README.md: model card)
WORD_VECTORS = "word2vec.bin"  # the Word2Vec file in a checkpoint folder (written by training, read by serving)
EVALUATION_ONLY = {"evaluator.json", "evaluator.safetensors",  # used by `python -m crossgen.evaluate` only
                   "object_reader.json", "object_reader.safetensors"}
RESTORE_HINT = "restore it with `git checkout -- checkpoints/` or retrain with `python -m crossgen.train all`"


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_json(path: str | Path, obj: Any) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Missing checkpoint file {path}; {RESTORE_HINT}.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"Corrupt checkpoint file {path} ({e}); {RESTORE_HINT}.") from None


def save_model(directory: str | Path, name: str, model: torch.nn.Module, half: bool = False,
               keep_float32: tuple[str, ...] = (), **extra: Any) -> None:
    """Write `<name>.safetensors` (weights, optionally fp16 except the tensors named in keep_float32) and
    `<name>.json` ({"config": ..., **extra})."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in strip_compile_prefix(model.state_dict()).items()}
    if half:
        state = {k: v.half() if v.is_floating_point() and k not in keep_float32 else v for k, v in state.items()}
    save_file(state, str(directory / f"{name}.safetensors"))
    save_json(directory / f"{name}.json", {"config": dataclasses.asdict(model.config), **extra})


def load_model(directory: str | Path, name: str, model_cls: type[T], config_cls: type, device: str | torch.device = "cpu") -> tuple[T, dict]:
    """Rebuild `model_cls(config_cls(**config))` (or `config_cls.from_dict(config)`) and load its safetensors weights.
    Returns (model in eval mode, json)."""
    directory = Path(directory)
    meta = load_json(directory / f"{name}.json")
    path = directory / f"{name}.safetensors"
    if not path.is_file():
        raise CheckpointError(f"Missing checkpoint file {path}; {RESTORE_HINT}.")
    try:
        state = load_file(str(path), device="cpu")
        # a config that reads old checkpoints (`CVAEConfig.from_dict`: fields of deleted designs) says how
        config = config_cls.from_dict(meta["config"]) if hasattr(config_cls, "from_dict") else config_cls(**meta["config"])
        model = model_cls(config)
        ref = model.state_dict()
        state = {k: v.to(ref[k].dtype) if k in ref else v for k, v in state.items()}
        model.load_state_dict(state)
    except CheckpointError as e:  # a config of a deleted design (`CVAEConfig.from_dict`)
        raise CheckpointError(f"{directory / f'{name}.json'}: {e}") from None
    except Exception as e:  # safetensors header errors, shape mismatches, bad config keys
        raise CheckpointError(f"Corrupt or mismatched checkpoint {path} ({type(e).__name__}: {e}); {RESTORE_HINT}.") from None
    return model.to(device).eval(), meta


def strip_compile_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the `_orig_mod.` / `module.` prefixes torch.compile and DDP add to parameter names."""
    out = {}
    for k, v in state.items():
        for prefix in ("_orig_mod.", "module."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def write_manifest(directory: str | Path, **info: Any) -> dict:
    """Record sha256 of every checkpoint file in the directory, plus `info` (config, data, hardware)."""
    directory = Path(directory)
    files = {p.name: sha256(p) for p in sorted(directory.iterdir()) if p.is_file() and p.name not in UNLISTED}
    manifest = {"files": files, **info}
    save_json(directory / MANIFEST, manifest)
    return manifest


def refresh_manifest(directory: str | Path) -> dict:
    """Re-hash the folder's files, keeping the manifest's other entries (after adding or retraining a file)."""
    path = Path(directory) / MANIFEST
    info = load_json(path) if path.is_file() else {}
    info.pop("files", None)
    return write_manifest(directory, **info)


def verify_manifest(directory: str | Path) -> dict:
    """Check every file listed in manifest.json against its sha256. Raises CheckpointError naming the file.
    The evaluator's files may be left out (the app never loads them); when present they are checked too."""
    directory = Path(directory)
    manifest = load_json(directory / MANIFEST)
    for name, digest in manifest.get("files", {}).items():
        path = directory / name
        if not path.is_file() and name in EVALUATION_ONLY:
            continue
        if not path.is_file():
            raise CheckpointError(f"Missing checkpoint file {path}; {RESTORE_HINT}.")
        if sha256(path) != digest:
            raise CheckpointError(f"Checkpoint file {path} does not match its sha256 in {MANIFEST}; {RESTORE_HINT}.")
    return manifest
