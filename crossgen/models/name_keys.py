"""Finding training drawings by what a prompt names: its object (the colour and skin-tone words left out) first,
the whole text breaking ties, so that "blue apple" finds the apples and "red heart" the red heart itself.

Both keys are unit means of the prompt's word vectors; a score against a table of names is the object cosine plus
a hundredth of the whole-text cosine."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..imaging.colour import COLOURS

ATTRIBUTE_WORDS = (*COLOURS, "grey", "gray", "light", "medium", "dark", "skin", "tone")
TIE_BREAK = 0.01  # weight of the whole-text cosine


def name_keys(words: torch.Tensor, attribute_words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Word vectors (B, T, D) (rows of zeros: no word) and attribute word vectors (A, D) -> unit (object,
    whole-text) keys (B, D) each: the mean of the words that are not attributes (all of them when nothing else
    is left), and of all of them."""
    present = words.abs().sum(-1) > 0  # (B, T)
    if len(attribute_words):
        attribute = (F.normalize(words, dim=-1) @ F.normalize(attribute_words, dim=-1).T > 0.999).any(-1)  # (B, T)
    else:
        attribute = torch.zeros_like(present)
    obj = present & ~attribute
    obj = torch.where(obj.any(1, keepdim=True), obj, present)
    pool = lambda m: F.normalize((words * m[..., None]).sum(1), dim=-1)  # noqa: E731
    return pool(obj), pool(present)


def name_scores(keys: tuple[torch.Tensor, torch.Tensor], table: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Prompt keys (B, D) x 2 against name keys (U, D) x 2 -> (B, U) scores, higher = nearer."""
    return keys[0] @ table[0].T + TIE_BREAK * (keys[1] @ table[1].T)
