"""The epoch loop shared by every training stage: seed, resume, per-epoch log (CSV + JSON), curves PNG, and
the manifest record of a finished stage."""
from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import os
import platform
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator("cpu").manual_seed(seed)


def hardware(device: torch.device) -> str:
    cpu = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__}); host {cpu}"
    return f"CPU {cpu} (torch {torch.__version__}, {torch.get_num_threads()} threads)"



def stage_record(cfg, result: dict, t0: float, device: torch.device, **extra) -> dict:
    """A finished stage as manifest.json records it: its config dataclass, `extra` (recipe, data, ranks), its
    result, the minutes since t0, the hardware and the date."""
    return {"config": dataclasses.asdict(cfg), **extra, "result": result, "minutes": round((time.time() - t0) / 60, 2),
            "hardware": hardware(device), "date": datetime.date.today().isoformat()}



def with_flags(cfg, args):
    """The dataclass `cfg` with each field that a command-line flag of the same name was given for (not None in
    the argparse namespace `args`) set to that flag's value."""
    for f in dataclasses.fields(cfg):
        value = getattr(args, f.name, None)
        if value is not None:
            setattr(cfg, f.name, value)
    return cfg


class TrainLog:
    """Appends one row per epoch to `<dir>/<name>.csv` and `.json`, and redraws `<name>.png`."""

    def __init__(self, directory: str | Path, name: str, resume: bool):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.json_path = self.dir / f"{name}.json"
        self.rows: list[dict] = json.loads(self.json_path.read_text()) if resume and self.json_path.is_file() else []

    def append(self, row: dict) -> None:
        self.rows.append({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})
        self.json_path.write_text(json.dumps(self.rows, indent=1) + "\n")
        keys = list(dict.fromkeys(k for r in self.rows for k in r))
        with open(self.dir / f"{self.name}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, keys)
            w.writeheader()
            w.writerows(self.rows)
        self.plot()

    def plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        keys = [k for k in self.rows[0] if k not in ("epoch", "seconds", "lr")]
        fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.6), squeeze=False)
        epochs = [r["epoch"] for r in self.rows]
        for ax, k in zip(axes[0], keys):
            ax.plot(epochs, [r.get(k) for r in self.rows], marker=".")
            ax.set_title(k, fontsize=9)
            ax.set_xlabel("epoch", fontsize=8)
            ax.tick_params(labelsize=7)
        fig.suptitle(self.name, fontsize=10)
        fig.tight_layout()
        fig.savefig(self.dir / f"{self.name}.png", dpi=80)
        plt.close(fig)


def run_epochs(name: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler, epochs: int,
               train_epoch: Callable[[int], dict], evaluate: Callable[[], dict], save: Callable[[dict], None],
               work: str | Path, log_dir: str | Path, resume: bool = True, monitor: str = "val_loss",
               main: bool = True, maximise: bool = False) -> dict:
    """Train for `epochs`, resuming from `<work>/<name>_state.pt` when present. `save(row)` is called
    whenever `monitor` improves (lower is better, or higher with `maximise`; the first epoch wins a tie). Returns
    the best row. Under DDP every rank runs this with the unwrapped model and identical rows; only the `main` rank
    logs, saves and writes the state."""
    state_path = Path(work) / f"{name}_state.pt"
    resume = resume and state_path.is_file()  # a run that starts over also starts its log over
    log = TrainLog(log_dir, name, resume) if main else None
    start, best = 0, {monitor: -float("inf") if maximise else float("inf")}
    if resume:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        start, best = state["epoch"], state["best"]
        if main:
            print(f"[{name}] resumed after epoch {start} (best {monitor} {best[monitor]:.4f})")
    for epoch in range(start + 1, epochs + 1):
        t0 = time.time()
        model.train()
        row = {"epoch": epoch, **train_epoch(epoch)}
        model.eval()
        row.update(evaluate())
        row["lr"] = optimizer.param_groups[0]["lr"]
        row["seconds"] = round(time.time() - t0, 1)
        if main:
            log.append(row)
            print(f"[{name}] " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        if (row[monitor] > best[monitor]) if maximise else (row[monitor] < best[monitor]):
            best = row
            if main:
                save(row)
        if not main:
            continue
        state_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"epoch": epoch, "best": best, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else {}}, state_path)
    return best
