"""Per-example seeds: example i always comes from the same seed.

The seed of example ``i`` is derived from ``(random_seed, i)`` with numpy's
SeedSequence, so any shard of a dataset can be generated on its own, in any
process, and gives the same bytes.
"""

from __future__ import annotations

import random

import numpy as np


def example_seed(random_seed: int, index: int) -> int:
    """A 31-bit seed for example ``index`` of a dataset seeded with ``random_seed``."""
    state = np.random.SeedSequence([int(random_seed), int(index)]).generate_state(1)[0]
    return int(state) & 0x7FFFFFFF


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's and scitbx's generators (used by cctbx) and return a numpy one."""
    from scitbx.array_family import flex

    random.seed(seed)
    flex.set_random_seed(seed)
    return np.random.default_rng(seed)
