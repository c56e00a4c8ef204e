"""Light atoms mirrored through the heavy atoms: the heavy-atom pseudo-inversion.

Where heavy atoms dominate the scattering, |F| = |F_H + F_L| ~ |F_H| + Re(F_L F_H*)/|F_H| to
first order in F_L/F_H. A light atom at x and its image at 2c - x through a centre of
inversion c of the heavy-atom substructure (a lone heavy atom itself, or the midpoint of two)
give the same first-order term, so the amplitudes tell them apart only to second order: a
model with one light atom on the wrong side of a bromine reads CC 99.5 and R1 0.04 (benchmark
``heavy_1.0``, two such false "solved" flags in 12 crystals), and its difference map, Fo map
height and refined B look like those of a right atom. This is the ghost image of heavy-atom
Fourier syntheses (the Br-phased map shows the light atoms and their enantiomorphic images).

:func:`unmirror` tries every light atom on its image through every such centre and keeps the
move that lowers R1 most (then refines), round after round, while R1 falls. The trial R1s
need one single-atom structure-factor calculation each: F_model - F_atom(x) + F_atom(x').
"""

from __future__ import annotations

import numpy as np
from cctbx import xray
from cctbx.array_family import flex
from cctbx.eltbx import tiny_pse

HEAVY_Z = 11  # Na and beyond: S, P, Cl, Br, metals


def heavy_selection(xs, min_z: int = HEAVY_Z) -> flex.bool:
    """Atoms with atomic number >= ``min_z``."""
    return flex.bool([tiny_pse.table(sc.scattering_type).atomic_number() >= min_z for sc in xs.scatterers()])


def inversion_centres(xs, heavy: flex.bool, max_pair_distance: float = 8.0) -> list:
    """Fractional centres of (pseudo-)inversion of the heavy-atom substructure: each heavy
    atom, and the midpoint of each pair of heavy atoms (any symmetry copy of the second)
    closer than ``max_pair_distance``."""
    sites = [np.array(s) for s, h in zip(xs.sites_frac(), heavy) if h]
    uc = xs.unit_cell()
    centres = list(sites)
    for a in range(len(sites)):
        for b in range(a, len(sites)):
            for op in xs.space_group().all_ops():
                d = np.array(op * tuple(sites[b])) - sites[a]
                d -= np.round(d)
                length = uc.length(tuple(d))
                if 1e-3 < length < max_pair_distance:
                    centres.append(sites[a] + d / 2)
    return centres


def _single_atom_f(xs, index: int, site, miller_set) -> np.ndarray:
    sc = xs.scatterers()[index].customized_copy(site=tuple(site))
    one = xray.structure(special_position_settings=xs.special_position_settings(), scatterers=flex.xray_scatterer([sc]))
    return miller_set.structure_factors_from_scatterers(one, algorithm="direct").f_calc().data().as_numpy_array()


def _r1(fo: np.ndarray, fc: np.ndarray) -> float:
    a = np.abs(fc)
    k = float((fo * a).sum() / max((a * a).sum(), 1e-30))
    return float(np.abs(fo - k * a).sum() / max(fo.sum(), 1e-30))


def best_mirror(xs, f_obs):
    """(R1 after the best single mirror move, atom index, new site), or None when the model has
    no heavy or no light atom. R1 without refinement, on f_obs's reflections."""
    heavy = heavy_selection(xs)
    if heavy.count(True) in (0, heavy.size()):
        return None
    centres = inversion_centres(xs, heavy)
    fo = f_obs.data().as_numpy_array()
    f_model = f_obs.structure_factors_from_scatterers(xs, algorithm="direct").f_calc().data().as_numpy_array()
    best = (_r1(fo, f_model), None, None)
    for j, site in enumerate(xs.sites_frac()):
        if heavy[j]:
            continue
        f_old = _single_atom_f(xs, j, site, f_obs)
        for c in centres:
            image = 2 * c - np.array(site)
            r1 = _r1(fo, f_model - f_old + _single_atom_f(xs, j, image, f_obs))
            if r1 < best[0]:
                best = (r1, j, image)
    return best


def unmirror(xs, f_obs, refine, r1_of, rounds: int = 4, min_gain: float = 0.002):
    """Move light atoms onto their images through the heavy atoms while R1 falls by
    ``min_gain`` (the best move of each round, refined with ``refine(xs)``; ``r1_of(xs)`` is
    the R1 used to keep it). Returns ``xs`` itself when nothing improved, at once when the
    model has no heavy atom."""
    from ml_phasing.phasing.dual_space import moved

    best_r1 = None
    for _ in range(rounds):
        found = best_mirror(xs, f_obs)
        if found is None or found[1] is None:
            break
        best_r1 = r1_of(xs) if best_r1 is None else best_r1
        if found[0] > best_r1 - min_gain:
            break
        trial = refine(moved(xs, found[1], tuple(found[2])))
        r1 = r1_of(trial)
        if r1 >= best_r1 - min_gain:
            break
        xs, best_r1 = trial, r1
    return xs
