"""Random small-molecule crystals (Khaibrakhmanov; blackwood168/xrd_simulator).

Atoms of chosen elements are scattered in a cell of a chosen space group by
:func:`cctbx.development.random_structure.xray_structure`, with a minimum
interatomic distance, a volume per atom and an isotropic B range.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cctbx import adptbx, sgtbx
from cctbx.development import random_structure
from libtbx.utils import Sorry


@dataclass(frozen=True)
class RandomAtomsConfig:
    space_groups: tuple
    elements: tuple
    element_weights: tuple
    n_atoms_min: int
    n_atoms_max: int
    volume_per_atom_min: float
    volume_per_atom_max: float
    min_distance: float
    b_iso_min: float
    b_iso_max: float

    @classmethod
    def from_phil(cls, p):
        weights = tuple(p.element_weights) if p.element_weights else (1.0,) * len(p.elements)
        return cls(
            space_groups=tuple(p.space_groups),
            elements=tuple(p.elements),
            element_weights=weights,
            n_atoms_min=p.n_atoms_min,
            n_atoms_max=p.n_atoms_max,
            volume_per_atom_min=p.volume_per_atom_min,
            volume_per_atom_max=p.volume_per_atom_max,
            min_distance=p.min_distance,
            b_iso_min=p.b_iso_min,
            b_iso_max=p.b_iso_max,
        )

    def validate(self):
        if not self.space_groups:
            raise Sorry("random_atoms.space_groups is empty.")
        for symbol in self.space_groups:
            space_group_info(symbol)
        if not self.elements:
            raise Sorry("random_atoms.elements is empty.")
        from cctbx.eltbx import tiny_pse

        for e in self.elements:
            if "," in e or ";" in e:
                raise Sorry(
                    f"random_atoms.elements={e!r}: separate the elements with spaces, e.g. "
                    f'random_atoms.elements="{" ".join(x for x in e.replace(";", ",").split(",") if x)}".'
                )
            try:
                tiny_pse.table(e)
            except RuntimeError:
                raise Sorry(f"random_atoms.elements: unknown element {e!r}.") from None
        if len(self.element_weights) != len(self.elements):
            raise Sorry(
                f"random_atoms.element_weights has {len(self.element_weights)} values "
                f"for {len(self.elements)} elements."
            )
        if min(self.element_weights) < 0 or sum(self.element_weights) <= 0:
            raise Sorry("random_atoms.element_weights must be non-negative and not all zero.")
        if self.n_atoms_min > self.n_atoms_max:
            raise Sorry("random_atoms.n_atoms_min is larger than n_atoms_max.")
        if self.volume_per_atom_min > self.volume_per_atom_max:
            raise Sorry("random_atoms.volume_per_atom_min is larger than volume_per_atom_max.")
        if self.b_iso_min > self.b_iso_max:
            raise Sorry("random_atoms.b_iso_min is larger than b_iso_max.")


@functools.lru_cache(maxsize=256)
def space_group_info(symbol: str) -> sgtbx.space_group_info:
    """Parse a space-group symbol, with a Sorry for an unknown one.

    Cached: building the space-group type costs ~0.1 ms, a tenth of a whole
    random structure.
    """
    try:
        return sgtbx.space_group_info(symbol=str(symbol))
    except RuntimeError:
        raise Sorry(f"Unknown space group symbol: {symbol!r}.") from None


def make_structure(config: RandomAtomsConfig, rng):
    """One random structure; python/scitbx generators must be seeded by the caller."""
    symbol = config.space_groups[rng.integers(len(config.space_groups))]
    n_atoms = int(rng.integers(config.n_atoms_min, config.n_atoms_max + 1))
    p = list(config.element_weights)
    total = sum(p)
    elements = [str(e) for e in rng.choice(config.elements, size=n_atoms, p=[w / total for w in p])]
    volume_per_atom = float(rng.uniform(config.volume_per_atom_min, config.volume_per_atom_max))
    try:
        xs = random_structure.xray_structure(
            space_group_info=space_group_info(symbol),
            elements=elements,
            volume_per_atom=volume_per_atom,
            min_distance=config.min_distance,
            general_positions_only=False,
        )
    except RuntimeError as e:
        raise Sorry(
            f"random_atoms: cannot place {n_atoms} atoms in {symbol} with min_distance="
            f"{config.min_distance} A and {volume_per_atom:.1f} A^3 per atom ({e}). "
            "Increase volume_per_atom or lower min_distance."
        ) from None
    b = rng.uniform(config.b_iso_min, config.b_iso_max, size=xs.scatterers().size())
    for sc, bi in zip(xs.scatterers(), b):
        sc.u_iso = adptbx.b_as_u(float(bi))
    return xs, {"source": "random_atoms", "volume_per_atom": volume_per_atom}
