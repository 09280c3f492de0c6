"""The embedded emoji dataset: builder (``python -m crossgen.data``), record format and readers."""
from .emoji import build_emoji, load_concepts, package_dir
from .records import (IMAGE_SIZE, SPLITS, STYLES, build_fixture, concept_id, load_images, load_records, split_config,
                      split_of)

__all__ = [
    "load_records", "load_images", "STYLES", "SPLITS", "IMAGE_SIZE", "build_emoji", "build_fixture",
    "load_concepts", "package_dir", "concept_id", "split_config", "split_of",
]
