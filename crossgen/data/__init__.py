"""The embedded emoji dataset: builder (``python -m crossgen.data``), record format and readers, and the
out-of-domain set.

May import: the base modules only. `records.py`, the record format, is the one module of this folder that the
serving path may read; training and the evaluation import the rest.
"""
from .emoji import build_emoji, load_concepts, package_dir
from .records import (IMAGE_SIZE, SPLITS, STYLES, build_fixture, concept_id, load_images, load_records, split_config,
                      split_of)

__all__ = [
    "load_records", "load_images", "STYLES", "SPLITS", "IMAGE_SIZE", "build_emoji", "build_fixture",
    "load_concepts", "package_dir", "concept_id", "split_config", "split_of",
]
