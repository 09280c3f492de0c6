"""Readers of external sets (COCO, Flickr30k/8k in every caption format, a folder) and the streaming loader."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from crossgen.data.sources import SOURCES, hashed_split, load_source
from crossgen.errors import UsageError
from crossgen.train.distributed import Dist
from crossgen.train.streaming import DataConfig, load_splits, loader, multi_hot, top_words, word_sets
from external_sets import (draw, make_coco, make_folder_csv, make_folder_txt, make_karpathy, make_results_csv,
                           make_token_txt, split_of)

FORMATS = {
    "coco": ("coco", make_coco),
    "flickr30k-karpathy": ("flickr30k", lambda r: make_karpathy(r, "flickr30k")),
    "flickr8k-karpathy": ("flickr8k", lambda r: make_karpathy(r, "flickr8k")),
    "flickr30k-results-csv": ("flickr30k", make_results_csv),
    "flickr8k-token-txt": ("flickr8k", make_token_txt),
    "folder-txt": ("folder", make_folder_txt),
    "folder-csv": ("folder", make_folder_csv),
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_reader_yields_records(fmt: str, tmp_path: Path):
    source, make = FORMATS[fmt]
    records = load_source(source, make(tmp_path))
    assert len(records) == 12 and len({r["id"] for r in records}) == 12
    for r in records:
        assert set(r) >= {"id", "style", "split", "image", "name", "captions"}
        assert r["style"] == source and r["split"] in ("train", "val", "test")
        assert Path(r["image"]).is_file() and len(r["captions"]) == 3 and r["name"] == r["captions"][0]
    by_caption = {r["name"]: r for r in records}
    assert "a red square" in by_caption and "a blue circle" in by_caption
    assert {r["split"] for r in records} >= {"train", "val"}
    if fmt in ("flickr8k-token-txt", "folder-csv"):  # the set's own split lists are used
        assert sorted(r["split"] for r in records) == sorted(split_of(i, 12) for i in range(12))
    if "karpathy" in fmt:  # restval counts as training data
        assert sum(r["split"] == "train" for r in records) == sum(i % 4 == 0 or split_of(i, 12) == "train" for i in range(12))


def test_missing_images_and_bad_roots(tmp_path: Path):
    root = make_coco(tmp_path / "coco")
    next((root / "train2017").iterdir()).unlink()
    assert len(load_source("coco", root)) == 11  # an image that is not there is left out
    with pytest.raises(FileNotFoundError):
        load_source("coco", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError):
        load_source("flickr30k", tmp_path / "empty")
    with pytest.raises(ValueError):
        load_source("imagenet", root)
    assert set(SOURCES) == {"coco", "flickr30k", "flickr8k", "folder"}


def test_hashed_split_is_stable_and_roughly_sized():
    splits = [hashed_split(f"img{i}") for i in range(2000)]
    assert splits == [hashed_split(f"img{i}") for i in range(2000)]
    assert 0.85 < splits.count("train") / 2000 < 0.95 and splits.count("val") > 50 and splits.count("test") > 50


def test_streaming_loader_shards_and_decodes(tmp_path: Path):
    records = load_splits("folder", make_folder_txt(tmp_path, 16))
    train = records["train"]
    seen = []
    for rank in range(2):
        dl = loader(train, 32, 4, Dist(rank, 2), 0, True, 0, caption="random")
        dl.sampler.set_epoch(1)
        batches = list(dl)
        assert len(batches) == (len(train) + 7) // 8  # the same count on every rank
        x, idx, caps = batches[0]
        assert x.shape[1:] == (3, 32, 32) and x.dtype == torch.uint8 and isinstance(caps[0], str)
        assert all(c in train[i]["captions"] for c, i in zip(caps, idx.tolist()))
        seen += [i for b in batches for i in b[1].tolist()]
    assert set(seen) == set(range(len(train)))  # the two shards cover the split
    assert DataConfig().feature_size() == 64 and DataConfig(resnet_weights="w.pth").feature_size() == 224


def test_word_targets(tmp_path: Path):
    records = [{"captions": ["a red square", "red box"]}, {"captions": ["a blue circle"]}, {"captions": ["a red circle"]}]
    words = top_words(records, 3)
    assert list(words) == ["a", "circle", "red"]  # in most images first, ties alphabetical
    t = multi_hot(word_sets(records, words), torch.tensor([1, 0]), len(words))
    assert t.tolist() == [[1, 1, 0], [1, 0, 1]]
    assert draw(0)[1][0] == "a red square"


def test_loader_workers_decode_on_the_fly(tmp_path: Path):
    train = load_splits("coco", make_coco(tmp_path))["train"]
    x, idx, caps = next(iter(loader(train, 24, 4, Dist(), 1, False, 0, caption="first")))
    assert x.shape == (4, 3, 24, 24) and [train[i]["name"] for i in idx.tolist()] == list(caps)


def test_local_imagenet_weights_seed_the_backbone(tmp_path: Path):
    from torchvision.models import resnet18

    from crossgen.train.features import pretrained_features
    from crossgen.models.image_features import FeatureConfig

    torch.manual_seed(1)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(resnet18(weights=None).state_dict(), path)  # stands in for the real file: same keys and shapes
    size = DataConfig(resnet_weights=str(path)).feature_size()
    model = pretrained_features(FeatureConfig(image_size=size, num_words=5), str(path))
    ref = torch.load(path, weights_only=True)
    assert size == 224 and not model.config.imagenet_weights  # the checkpoint holds the weights, not a pointer
    assert torch.equal(model.backbone.conv1.weight, ref["conv1.weight"])
    assert model(torch.rand(1, 3, size, size)).word_logits.shape == (1, 5)


@pytest.mark.slow
def test_cli_single_process_features_stage(tmp_path: Path, monkeypatch):
    from crossgen.train.__main__ import main

    monkeypatch.setenv("TQDM_DISABLE", "1")
    root = make_token_txt(tmp_path / "flickr8k")
    args = ["features", "--data", "flickr8k", "--root", str(root), "--out", str(tmp_path / "out"), "--work",
            str(tmp_path / "work"), "--device", "cpu", "--num-workers", "0", "--epochs", "1", "--batch-size", "4",
            "--image-size", "32", "--max-words", "8", "--augment", "0"]
    main(args)
    meta = json.loads((tmp_path / "out" / "features.json").read_text())
    assert len(meta["words"]) == 8 and meta["train"]["ranks"] == 1
    with pytest.raises(UsageError, match="needs --root"):
        main(["features", "--data", "coco", "--out", str(tmp_path / "out2")])  # --root is required
