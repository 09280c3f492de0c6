"""Shared fixtures: a tiny checkpoint folder built in a temp dir, and the pipeline loaded from it
(the helpers they are built from, and other shared helpers, are in helpers.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import make_tiny_checkpoints


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> Path:
    return make_tiny_checkpoints(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_checkpoints):
    from crossgen import load
    return load(tiny_checkpoints, device="cpu")
