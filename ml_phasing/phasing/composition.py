"""The asymmetric unit's contents: parsing, checks against the cell, element order for peaks."""

from __future__ import annotations

from cctbx.eltbx import tiny_pse
from libtbx.utils import Sorry

from ml_phasing.io.shelx_io import VOLUME_PER_NON_H_ATOM, estimate_composition, parse_composition

__all__ = ["parse_composition", "estimate_composition", "check_fits", "for_cell", "element_list", "non_hydrogen"]


def non_hydrogen(composition: dict) -> dict:
    return {e: v for e, v in composition.items() if e not in ("H", "D")}


def check_fits(crystal_symmetry, composition: dict, min_volume: float = 8.0) -> None:
    """A Sorry when the composition (per asymmetric unit) cannot fit the cell; says what it can hold."""
    z = crystal_symmetry.space_group().order_z()
    n = sum(non_hydrogen(composition).values())
    volume = crystal_symmetry.unit_cell().volume()
    if n < 1:
        raise Sorry("The composition has no non-hydrogen atoms.")
    if volume / (n * z) < min_volume:
        most = int(volume / (min_volume * z))
        typical = int(round(volume / (VOLUME_PER_NON_H_ATOM * z)))
        raise Sorry(
            f"The composition ({int(n)} non-H atoms per asymmetric unit, Z = {z} in "
            f"{crystal_symmetry.space_group_info()}) cannot fit a {volume:.0f} A^3 cell: it holds at most "
            f"about {most} non-H atoms per asymmetric unit (typically {typical}, at "
            f"{VOLUME_PER_NON_H_ATOM:.0f} A^3 each)."
        )


def for_cell(crystal_symmetry, text: str | None = None, known: dict | None = None) -> dict:
    """The asymmetric unit's contents a program works with: ``composition=`` (``text``) where
    given, else ``known`` (e.g. the one molecule a model was trained on), else an estimate from
    the cell; a Sorry when it cannot fit the cell (:func:`check_fits`)."""
    if text:
        composition = parse_composition(text)
    elif known:
        composition = dict(known)
    else:
        composition = estimate_composition(crystal_symmetry)
    check_fits(crystal_symmetry, composition)
    return composition


def element_list(composition: dict) -> list:
    """Non-H atoms, heaviest first (the order in which they go to peaks of falling height)."""
    out = []
    for element, count in sorted(
        non_hydrogen(composition).items(), key=lambda kv: -tiny_pse.table(kv[0]).atomic_number()
    ):
        out += [element] * int(round(count))
    return out
