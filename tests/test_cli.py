"""The `python -m crossgen.…` commands answer a user mistake as the app does: one line, `error: <message>` on
stderr, exit status 2, no traceback (crossgen.cli.run); a bug still raises. A small folder set still trains."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crossgen import bench, cli, evaluate
from crossgen.data import __main__ as data_cli
from crossgen.data.source_records import hashed_split
from crossgen.train import __main__ as train_cli
from external_sets import draw
from helpers import FIXTURE, ROOT

# tiny models for a training run of a few seconds (as in test_ddp.py)
TINY = ["--device", "cpu", "--num-workers", "0", "--batch-size", "8", "--epochs", "1", "--no-wordnet", "--vector-size",
        "16", "--image-size", "32", "--embed-dim", "16", "--hidden-dim", "32", "--latent-dim", "4", "--max-words", "20",
        "--vocab-min-count", "1"]


def photo_folder(root: Path, n: int) -> Path:
    """n captioned photos (photo.png + photo.txt) in one subfolder, so the hashed split chooses their splits."""
    (root / "photos").mkdir(parents=True)
    for i in range(n):
        img, caps = draw(i)
        img.save(root / "photos" / f"img{i:03d}.png")
        (root / "photos" / f"img{i:03d}.txt").write_text("\n".join(caps) + "\n")
    return root


def user_mistake(main, argv: list[str], capsys, *expected: str) -> str:
    """Run a command that should refuse: status 2, one `error:` line naming `expected`, nothing else on stderr."""
    assert cli.run(main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for text in expected:
        assert text in err, err
    return err


# ------------------------------------------------------------------------------------------- the helper


def test_run_returns_status_and_lets_bugs_and_argparse_through(capsys):
    assert cli.run(lambda argv: None, []) == 0
    assert cli.run(lambda argv: 3, []) == 3
    assert cli.run(lambda argv: {"a": 1}, []) == 0  # evaluate and bench return their report

    def bug(argv):
        raise KeyError("not a user mistake")

    with pytest.raises(KeyError):
        cli.run(bug, [])
    with pytest.raises(SystemExit) as info:  # argparse's own answer to a bad flag: usage and status 2
        cli.run(evaluate.main, ["--no-such-flag"])
    assert info.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- crossgen.train


def test_train_folder_too_small_to_split_names_the_subfolders(tmp_path, capsys):
    root = photo_folder(tmp_path / "one", 1)
    user_mistake(train_cli.main, ["all", "--data", "folder", "--root", str(root), "--out", str(tmp_path / "out"), *TINY],
                 capsys, "1 captioned image", "train/", "val/")
    assert not (tmp_path / "out" / "word2vec.bin").exists()


def test_train_word2vec_without_wordnet_stops_unless_told(tmp_path, capsys, monkeypatch):
    """The shipped vocabulary needs the WordNet glosses: where wordnet-base is not installed the word2vec stage stops
    with a line naming the package and --no-wordnet, writes nothing; with --no-wordnet it trains on the captions and
    the manifest records that no glosses were read."""
    from crossgen.train import word2vec
    monkeypatch.setattr(word2vec, "WORDNET", tmp_path / "no-wordnet")
    monkeypatch.setattr(word2vec.wordnet_sentences, "__defaults__", (tmp_path / "no-wordnet",))
    args = ["word2vec", "--data", str(FIXTURE), "--out", str(tmp_path / "out"), "--vector-size", "16"]
    user_mistake(train_cli.main, args, capsys, "wordnet-base", "--no-wordnet")
    assert not (tmp_path / "out" / "word2vec.bin").exists()
    assert cli.run(train_cli.main, [*args, "--no-wordnet"]) == 0
    result = json.loads((tmp_path / "out" / "manifest.json").read_text())["training"]["word2vec"]["result"]
    assert result["wordnet"] is None and result["wordnet_sentences"] == 0 and result["vocab"] > 100


def test_train_wrong_or_missing_root(tmp_path, capsys):
    user_mistake(train_cli.main, ["all", "--data", "folder", "--root", str(tmp_path / "nowhere")], capsys,
                 "--root", "is not a directory")
    user_mistake(train_cli.main, ["features", "--data", "coco", "--out", str(tmp_path / "out")], capsys, "needs --root")
    (tmp_path / "empty").mkdir()
    user_mistake(train_cli.main, ["all", "--data", "flickr8k", "--root", str(tmp_path / "empty")], capsys,
                 "No flickr8k captions")


def test_train_missing_data_checkpoints_or_device(tmp_path, capsys):
    user_mistake(train_cli.main, ["all", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"), *TINY],
                 capsys, "No dataset at", "python -m crossgen.data emoji")
    # a stage whose input checkpoints were never trained
    user_mistake(train_cli.main, ["vae", "--data", str(FIXTURE), "--out", str(tmp_path / "empty"), *TINY], capsys,
                 "word2vec")
    user_mistake(train_cli.main, ["exemplars", "--data", "folder", "--root", str(tmp_path)], capsys, "exemplar table")
    user_mistake(train_cli.main, ["word2vec", "--device", "gpu0"], capsys, "Unknown device 'gpu0'")


@pytest.mark.slow
def test_train_all_on_twelve_photos_takes_a_validation_image(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    root = photo_folder(tmp_path / "twelve", 12)
    assert "val" not in {hashed_split(f"photos/img{i:03d}") for i in range(12)}  # the hash gives no validation image
    out = tmp_path / "out"
    assert cli.run(train_cli.main, ["all", "--data", "folder", "--root", str(root), "--out", str(out),
                                    "--work", str(tmp_path / "work"), *TINY]) == 0
    assert "is used for validation" in capsys.readouterr().out
    images = json.loads((out / "manifest.json").read_text())["data"]["images"]
    assert images["val"] == 1 and images["train"] + images["test"] == 11
    for name in ("word2vec.bin", "features.safetensors", "vae.safetensors", "captioner.safetensors"):
        assert (out / name).is_file(), name


# ------------------------------------------------------------------------------------------- the other commands


def test_evaluate_without_checkpoints_or_evaluator(tmp_path, capsys, tiny_checkpoints):
    user_mistake(evaluate.main, ["--checkpoints", str(tmp_path / "nowhere"), "--data", str(FIXTURE)], capsys,
                 "No evaluator classifier", "--train-evaluator")
    user_mistake(evaluate.main, ["--checkpoints", str(tiny_checkpoints), "--data", str(FIXTURE)], capsys,
                 "No evaluator classifier")


@pytest.mark.slow
def test_evaluate_missing_data(tmp_path, capsys):
    user_mistake(evaluate.main, ["--checkpoints", str(ROOT / "checkpoints"), "--data", str(tmp_path / "nowhere"),
                                 "--device", "cpu", "--grid", "", "--out", str(tmp_path / "m.json")],
                 capsys, "No dataset at", "python -m crossgen.data emoji")
    assert not (tmp_path / "m.json").exists()


def test_data_and_bench_refuse_with_one_line(tmp_path, capsys):
    user_mistake(data_cli.main, ["fixture", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "fx")], capsys,
                 "No dataset at")
    user_mistake(data_cli.main, ["emoji", "--from", str(tmp_path), "--out", str(tmp_path / "emoji")], capsys,
                 "neither", "exists")
    user_mistake(bench.main, ["--checkpoints", str(tmp_path / "nowhere"), "--no-server", "--quick",
                              "--out", str(tmp_path / "bench.json")], capsys, "No checkpoints installed")


@pytest.mark.slow
@pytest.mark.parametrize("command", [
    ["crossgen.train", "all", "--data", "folder", "--root", "{tmp}/nowhere"],
    ["crossgen.evaluate", "--checkpoints", "{tmp}/nowhere"],
    ["crossgen.data", "fixture", "--data", "{tmp}/nowhere", "--out", "{tmp}/fx"],
    ["crossgen.bench", "--checkpoints", "{tmp}/nowhere", "--no-server", "--out", "{tmp}/b.json"],
], ids=lambda c: c[0])
def test_python_m_prints_one_line_and_exits_2(command, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    p = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-2000:]
    assert p.stderr.startswith("error: ") and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "Traceback" not in p.stdout + p.stderr
