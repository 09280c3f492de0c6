"""The seed rule of the generation calls (text -> image, interpolation): given, absent or negative."""
from __future__ import annotations

import random

MAX_SEED = 2**31 - 1


def resolve_seed(seed: int | None) -> int:
    """The seed a call uses: a fresh random one when `seed` is None or negative, else `seed` folded into
    0..MAX_SEED (so any integer a user types gives a valid, reproducible seed)."""
    return random.randint(0, MAX_SEED) if seed is None or seed < 0 else int(seed) % (MAX_SEED + 1)
