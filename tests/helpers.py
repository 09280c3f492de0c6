"""Helpers shared by the tests: paths, tiny models and a tiny checkpoint folder (no training data needed).

The pytest fixtures built from them are in conftest.py; tests import plain helpers from here."""
from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from crossgen import (CVAE, Captioner, CaptionerConfig, CVAEConfig, FeatureConfig, ImageFeatures, TextEncoder, Vocab,
                      Word2VecConfig, save_model, write_manifest)
from crossgen.models.name_keys import ATTRIBUTE_WORDS
from crossgen.models.text_encoder import MAX_WORDS
from crossgen.serving.app_process import free_port  # noqa: F401  (re-exported: the one free-port helper)

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "emoji"
SENTENCES = [s.split() for s in [
    "red apple fruit", "green apple fruit", "dog face animal pet", "dog animal", "cat face animal pet",
    "thumbs up hand", "red heart love", "racing car vehicle", "pizza food", "full moon sky",
]] * 20


def tiny_encoder() -> TextEncoder:
    return TextEncoder.train(SENTENCES, Word2VecConfig(vector_size=16, epochs=5, workers=1, seed=0))


def tiny_vae(text_dim: int = 16, max_words: int = 3) -> CVAE:
    """A tiny composing VAE reading max_words word vectors of text_dim apart, without exemplars (samples N(0, I)).
    16 latent dimensions: torch draws fewer than 16 normal numbers another way, and an interpolation's first draw is
    (1, Z) where a request's is (n, Z)."""
    torch.manual_seed(0)
    return CVAE(CVAEConfig(text_dim=text_dim, cond_dim=16, latent_dim=16, channels=[8, 8, 16, 16], max_words=max_words)).eval()


def tiny_captioner(vocab_size: int) -> Captioner:
    torch.manual_seed(0)
    return Captioner(CaptionerConfig(vocab_size=vocab_size, embed_dim=16, hidden_dim=32, max_len=8)).eval()


def make_tiny_checkpoints(directory: Path) -> Path:
    """A complete checkpoint folder with random tiny models: enough to exercise load/app/API paths."""
    directory.mkdir(parents=True, exist_ok=True)
    encoder = tiny_encoder()
    encoder.save(directory / "word2vec.bin")
    vae = tiny_vae(encoder.dim, MAX_WORDS)
    # exemplars found by object, as in the shipped VAE: two red apples, a green one, ...
    names = ["red apple", "red apple", "green apple", "dog", "dog face", "cat face", "red heart", "racing car", "pizza",
             "full moon", "thumbs up hand"]
    attributes = torch.from_numpy(encoder.wv[[w for w in ATTRIBUTE_WORDS if w in encoder]])
    vae.set_exemplars(torch.from_numpy(encoder.encode_batch(names, words=True)), 2 * torch.randn(len(names), vae.config.latent_dim),
                      attributes)
    # which training drawing each exemplar row is (`train.vae.exemplar_sources`): the artists alternate
    sources = {"artists": ["noto", "openmoji"], "name": names, "artist": [i % 2 for i in range(len(names))]}
    save_model(directory, "vae", vae, sources=sources)
    torch.manual_seed(0)
    save_model(directory, "features", ImageFeatures(FeatureConfig()), half=True)
    vocab = Vocab.build(" ".join(s) for s in SENTENCES)
    save_model(directory, "captioner", tiny_captioner(len(vocab)), half=True, vocab=vocab.to_json())
    write_manifest(directory, training={"note": "tiny random models for tests"})
    return directory


@contextlib.contextmanager
def scratch(factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A fresh temp folder for a module-scoped fixture, removed when the fixture ends: pytest removes a passing
    test's tmp_path itself (tmp_path_retention_policy), but keeps mktemp folders to the end of the run, and an app
    server's folder collects every file it served."""
    path = factory.mktemp(name)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
