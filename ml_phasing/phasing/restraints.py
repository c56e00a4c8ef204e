"""Geometry restraints for molecules the engine builds (``cctbx.geometry_restraints``).

At 1.5 A bonded atoms are not resolved, and free atoms refined against |Fobs| drift
into merged or stretched pairs. For molecules the engine restrains what every organic
molecule obeys, whatever its residues, from the current model's own connectivity:

- **bonds** (1-2 pairs, within ``max_bond``): flat-bottomed distance restraints
  (``bond_params`` with ``slack``) that hold C/N/O bonds between 1.15 and 1.65 A
  (carbonyl to single bonds, Allen et al. 1987); bonds to heavier elements between the
  sum of their covalent radii (``cctbx.eltbx.covalent_radii``) minus 0.15 and plus 0.10 A;
- **angles** as 1-3 distances (SHELXL's DANG): the two bonded neighbours of an atom
  are held at a distance that corresponds to an angle between 100 and 125 degrees,
  which covers sp3 and sp2 centres;
- **non-bonded repulsion** (prolsq function) between atoms that are neither 1-2 nor
  1-3 neighbours, below ``min_nonbonded`` (2.5 A), so that two atoms cannot collapse
  onto one peak;
- **planes and chirality** typed from the connectivity, since anonymous peaks carry no
  residue names: an atom with three bonded neighbours whose three bond angles sum to at
  least ``PLANAR_ANGLE_SUM`` (an sp2 centre: a peptide's carbonyl C, an aromatic C) keeps
  the four atoms in a plane (``planarity_proxy``); one whose angles sum to at most
  ``CHIRAL_ANGLE_SUM`` (an sp3 centre: a CA) keeps the sign of its chiral volume
  (``chirality_proxy``, ``both_signs=False``), so refinement cannot invert the hand of a
  centre. Centres bonded across a symmetry operator are left out.

Elements at 1.5 A are uncertain (a peak's height does not tell C from N), so the
bond ranges do not depend on which light element an atom is.

The pair tables are built with cctbx's space-group aware asu mappings
(``crystal.pair_asu_table``, ``coordination_sequences.shell_sym_tables``), as in
``cctbx.geometry_restraints.distance_least_squares``, so bonds across symmetry
operators are restrained too. Refinement adds the restraint energy to the
least-squares target of ``cctbx.xray.minimization.lbfgs`` (:class:`RestrainedLbfgs`).
"""

from __future__ import annotations

import math

import numpy as np
from cctbx import crystal, geometry_restraints, xray
from cctbx.array_family import flex
from cctbx.eltbx import covalent_radii

import cctbx.crystal.coordination_sequences  # noqa: F401  (registers crystal.coordination_sequences)
import cctbx.geometry_restraints.flags  # noqa: F401
import cctbx.geometry_restraints.manager  # noqa: F401

LIGHT = {"C", "N", "O", "H", "D"}
LIGHT_BOND = (1.15, 1.65)  # C=O 1.21 ... C-C 1.54 (Allen et al. 1987), with room for the errors of real models
ANGLE_RANGE = (100.0, 125.0)  # degrees: sp3 109.5, sp2 120, with room for ring strain
BOND_SIGMA = 0.02  # A, outside the flat bottom
ANGLE_SIGMA = 0.04  # A on the 1-3 distance
MIN_NONBONDED = 2.5  # A, between atoms that are not 1-2 or 1-3 neighbours
PLANAR_ANGLE_SUM = 350.0  # degrees: 360 for a flat sp2 centre
CHIRAL_ANGLE_SUM = 340.0  # degrees: 328.5 for an ideal tetrahedral centre
PLANE_SIGMA = 0.02  # A, out of the plane (phenix's peptide-plane esd)
CHIRAL_SIGMA = 0.2  # A^3 (phenix's chirality esd)


def _radius(element: str) -> float:
    try:
        return covalent_radii.table(element).radius()
    except RuntimeError:
        return 0.77


def bond_range(a: str, b: str) -> tuple:
    """Plausible (shortest, longest) bond between elements ``a`` and ``b`` in A."""
    if a in LIGHT and b in LIGHT:
        return LIGHT_BOND
    total = _radius(a) + _radius(b)
    return total - 0.15, total + 0.10


def max_bond_for(elements) -> float:
    """The pair-search cut-off: the longest plausible bond among these elements, plus 0.25 A."""
    elements = sorted(set(elements))
    return max(bond_range(a, b)[1] for a in elements for b in elements) + 0.25


def _third_side(a: float, b: float, angle: float) -> float:
    return math.sqrt(a * a + b * b - 2 * a * b * math.cos(math.radians(angle)))


def _flat(lo: float, hi: float, sigma: float):
    return geometry_restraints.bond_params(distance_ideal=(lo + hi) / 2, weight=1.0 / sigma**2, slack=(hi - lo) / 2)


def manager_for(xs, max_bond: float | None = None, min_nonbonded: float = MIN_NONBONDED):
    """A ``geometry_restraints.manager`` for ``xs`` from its own connectivity; None without bonds."""
    scatterers = xs.scatterers()
    n = scatterers.size()
    if n < 2:
        return None
    types = [sc.scattering_type for sc in scatterers]
    max_bond = max_bond or max_bond_for(types)
    sst = xs.site_symmetry_table()
    asu = xs.asu_mappings(buffer_thickness=max(max_bond * 2, min_nonbonded) + 1.0)
    pairs = crystal.pair_asu_table(asu_mappings=asu)
    pairs.add_all_pairs(distance_cutoff=max_bond)
    bond_sym = _bonded(xs, pairs.extract_pair_sym_table(), types)
    if sum(len(d) for d in bond_sym) == 0:
        return None
    shells = crystal.coordination_sequences.shell_sym_tables(
        full_pair_sym_table=bond_sym.full_connectivity(site_symmetry_table=sst), site_symmetry_table=sst, max_shell=3
    )
    params = geometry_restraints.bond_params_table(n)
    for i, pair_dict in enumerate(shells[0]):
        for j in pair_dict.keys():
            lo, hi = bond_range(types[i], types[j])
            params.update(i_seq=i, j_seq=j, params=_flat(lo, hi, BOND_SIGMA))
    # angles as 1-3 distances; each arm from the bond ranges of the end atom to its neighbours
    # (the shortest for the lower limit, the longest for the upper: the centre is not named)
    arms = [
        [bond_range(types[i], types[j]) for j in pair_dict.keys()]
        for i, pair_dict in enumerate(bond_sym.full_connectivity(site_symmetry_table=sst))
    ]
    for i, pair_dict in enumerate(shells[1]):
        for j in pair_dict.keys():
            a, b = sorted((i, j))
            if b in params[a] or not arms[i] or not arms[j]:
                continue  # also a 1-2 pair (a small ring): the bond restraint wins
            lo = _third_side(min(r[0] for r in arms[i]), min(r[0] for r in arms[j]), ANGLE_RANGE[0])
            hi = _third_side(max(r[1] for r in arms[i]), max(r[1] for r in arms[j]), ANGLE_RANGE[1])
            params.update(i_seq=i, j_seq=j, params=_flat(lo, hi, ANGLE_SIGMA))
    planes, chirals = centre_proxies(xs, bond_sym.full_connectivity(site_symmetry_table=sst))
    shells[0].add_pair_sym_table_in_place(other=shells[1])
    shells = [table.tidy(site_symmetry_table=sst) for table in shells]
    nonbonded = geometry_restraints.nonbonded_params(default_distance=min_nonbonded, minimum_distance=min_nonbonded)
    return geometry_restraints.manager.manager(
        crystal_symmetry=xs.crystal_symmetry(),
        site_symmetry_table=sst,
        bond_params_table=params,
        shell_sym_tables=shells,
        nonbonded_params=nonbonded,
        nonbonded_types=flex.std_string(["X"] * n),
        nonbonded_function=geometry_restraints.prolsq_repulsion_function(),
        nonbonded_distance_cutoff=min_nonbonded + 1.0,
        nonbonded_buffer=1.0,
        planarity_proxies=planes,
        chirality_proxies=chirals,
        max_reasonable_bond_distance=1e6,
    )


def centre_proxies(xs, connectivity):
    """Planarity and chirality proxies for the three-neighbour centres of ``xs`` (see the module
    docstring), from its bonded ``connectivity`` (a full pair sym table)."""
    sites = xs.sites_cart()
    planes = geometry_restraints.shared_planarity_proxy()
    chirals = geometry_restraints.shared_chirality_proxy()
    for centre, neighbours in enumerate(connectivity):
        ops = list(neighbours.items())
        if len(ops) != 3 or any(len(o) != 1 or not o[0].is_unit_mx() for _, o in ops):
            continue  # not three neighbours, or one of them across a symmetry operator
        others = [j for j, _ in ops]
        c = np.array(sites[centre])
        arms = [np.array(sites[j]) - c for j in others]
        total = 0.0
        for a, b in ((0, 1), (0, 2), (1, 2)):
            cos = np.dot(arms[a], arms[b]) / max(np.linalg.norm(arms[a]) * np.linalg.norm(arms[b]), 1e-12)
            total += math.degrees(math.acos(max(-1.0, min(1.0, cos))))
        i_seqs = flex.size_t([centre] + others)
        if total >= PLANAR_ANGLE_SUM:
            weights = flex.double(4, 1 / PLANE_SIGMA**2)
            planes.append(geometry_restraints.planarity_proxy(i_seqs=i_seqs, weights=weights))
        elif total <= CHIRAL_ANGLE_SUM:
            volume = geometry_restraints.chirality(
                sites=[sites[k] for k in i_seqs], volume_ideal=0.0, both_signs=False, weight=1.0
            ).volume_model
            chirals.append(
                geometry_restraints.chirality_proxy(
                    i_seqs=tuple(int(k) for k in i_seqs),
                    volume_ideal=volume,
                    both_signs=False,
                    weight=1 / CHIRAL_SIGMA**2,
                )
            )
    return planes, chirals


def _bonded(xs, sym_table, types, margin: float = 0.25):
    """The pairs of ``sym_table`` no longer than their elements' longest plausible bond + ``margin``."""
    uc, frac = xs.unit_cell(), xs.sites_frac()
    out = crystal.pair_sym_table(sym_table.size())
    for i, pair_dict in enumerate(sym_table):
        for j, ops in pair_dict.items():
            limit = bond_range(types[i], types[j])[1] + margin
            for op in ops:
                if uc.distance(frac[i], op * frac[j]) <= limit:
                    out[i].setdefault(j).append(op)
    return out


def energies(manager, sites_cart, compute_gradients: bool = True):
    """Bond (1-2 and 1-3 distances), non-bonded, planarity and chirality energy (``.target``) and
    its Cartesian gradients (``.gradients``), from ``manager.energies_sites``."""
    flags = geometry_restraints.flags.flags(bond=True, nonbonded=True, planarity=True, chirality=True)
    return manager.energies_sites(sites_cart=sites_cart, flags=flags, compute_gradients=compute_gradients)


def deviations(xs, manager=None) -> dict:
    """Largest and rms deviation of the restrained distances outside their flat bottoms (A)."""
    manager = manager or manager_for(xs)
    if manager is None:
        return {"n_restraints": 0, "rms": 0.0, "max": 0.0}
    e = energies(manager, xs.sites_cart(), compute_gradients=False)
    proxies = manager.pair_proxies(sites_cart=xs.sites_cart()).bond_proxies
    deltas = np.abs(np.asarray(geometry_restraints.bond_deltas(sites_cart=xs.sites_cart(), sorted_asu_proxies=proxies)))
    slacks = np.array([p.slack for p in proxies.simple] + [p.slack for p in proxies.asu])
    outside = np.maximum(deltas - slacks, 0.0) if deltas.size else deltas
    return {
        "n_restraints": int(deltas.size),
        "rms": float(np.sqrt(np.mean(outside**2))) if deltas.size else 0.0,
        "max": float(outside.max()) if deltas.size else 0.0,
        "residual": float(e.target),
    }


class RestrainedLbfgs(xray.minimization.lbfgs):
    """``cctbx.xray.minimization.lbfgs`` with ``weight`` x the restraint energy added to the target.

    Restraint gradients (Cartesian) are converted to fractional coordinates,
    dE/dx_frac = O^T dE/dx_cart, and added with ``xray.minimization.add_gradients``.
    """

    def __init__(self, manager, weight: float, **kwargs):
        self.restraints_manager = manager
        self.restraints_weight = weight
        super().__init__(**kwargs)

    def compute_functional_and_gradients(self):
        f, g = super().compute_functional_and_gradients()
        e = energies(self.restraints_manager, self.xray_structure.sites_cart())
        frac = e.gradients * self.xray_structure.unit_cell().orthogonalization_matrix()
        self.f = f + self.restraints_weight * e.target
        xray.minimization.add_gradients(
            scatterers=self.xray_structure.scatterers(),
            xray_gradients=self.g,
            site_gradients=frac * self.restraints_weight,
        )
        return self.f, self.g


def weight_for(xs, f_obs, manager, scale: float = 1.0, shake: float = 0.1, seed: int = 0) -> float:
    """Relative weight of the restraints: ``scale`` x |grad X-ray| / |grad restraints|, the gradients
    taken at the model with its sites shaken by ``shake`` A (as phenix.refine weights geometry)."""
    from cctbx.xray.structure_factors import gradients as sf_gradients

    from ml_phasing.phasing.dual_space import sf_algorithm

    algorithm = sf_algorithm(f_obs, xs)
    functor = xray.target_functors.least_squares_residual(f_obs)
    fc = f_obs.structure_factors_from_scatterers(xs, algorithm=algorithm).f_calc()
    target = functor(fc, True)
    xs_flags = xs.deep_copy_scatterers()
    xs_flags.scatterers().flags_set_grads(state=False)
    xs_flags.scatterers().flags_set_grad_site(iselection=flex.size_t_range(xs.scatterers().size()))
    gx = sf_gradients(miller_set=f_obs)(
        xray_structure=xs_flags,
        u_iso_refinable_params=None,
        miller_set=f_obs,
        d_target_d_f_calc=target.derivatives(),
        n_parameters=xs_flags.n_parameters(),
        algorithm=algorithm,
    ).packed()
    rng = np.random.default_rng(seed)
    shaken = xs.sites_cart() + flex.vec3_double(rng.normal(0, shake / math.sqrt(3), (xs.scatterers().size(), 3)))
    e = energies(manager, shaken)
    gr = e.gradients * xs.unit_cell().orthogonalization_matrix()
    norm_x = math.sqrt(flex.sum_sq(gx))
    norm_r = math.sqrt(flex.sum_sq(gr.as_double()))
    return scale * norm_x / norm_r if norm_r > 0 else 0.0
