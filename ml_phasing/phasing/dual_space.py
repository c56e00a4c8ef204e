"""One dual-space trajectory: phases -> map -> atoms -> refinement -> phases (SHELXD/SHELXT style).

Each cycle:

1. a map from the observed normalised amplitudes |E| (sharp peaks; ``|F|`` for the
   final map) with the current phases, weighted by the current figures of merit;
2. cctbx peak search (``maptbx`` with space-group symmetry) picks the highest
   maxima as atoms, no closer than ``min_distance``; elements go to peaks in order
   of height (heaviest element to the highest peak);
3. a random part of the atoms is omitted (``omit_fraction``) and the rest give new
   phases (random omission lets a trajectory leave a wrong local solution);
4. every ``refine_every`` cycles, and at the end, sites and isotropic B of all
   atoms are refined against |Fobs| with ``cctbx.xray.minimization.lbfgs``
   (least squares on F).

Then completion cycles (no omission, refinement each cycle, molecular repair or
weak-atom replacement, elements by refined B; optional geometry restraints from
:mod:`ml_phasing.phasing.restraints`, ``restraints_weight``) and a polish
(:func:`polish`: single atoms moved from difference-map holes to peaks while R1 falls;
on 10 held-out 1.5 A dipeptides it took the solved count from 2 to 9), after light atoms
are moved onto their images through heavy atoms where R1 falls
(:mod:`ml_phasing.phasing.heavy_atom_mirrors`: the heavy-atom pseudo-inversion).

Unmeasured reflections to ``d_min_extend`` ("free lunch") take amplitudes and
phases from the current model in each completion cycle (expanded set, as SHELXE/SHELXT),
weighted by the mean figure of merit; not in the recycling cycles, where a wrong model
would reinforce itself (measured: with them there, 0 of 30 random starts solved on five
P21 crystals at 1.2 A that 5 solved without).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from cctbx import maptbx, xray
from cctbx.array_family import flex

from ml_phasing.phasing import figures_of_merit, heavy_atom_mirrors
from ml_phasing.phasing.composition import element_list


@dataclass
class Trajectory:
    """What one start ended with."""

    structure: object  # refined cctbx.xray.structure
    f_calc: object  # its structure factors (and so the phases) on the observed indices
    fom: np.ndarray  # calibrated figures of merit per reflection
    figures: dict = field(default_factory=dict)  # R1, CC, Patterson CC (no truth needed)
    history: list = field(default_factory=list)  # (cycle, R1, CC) per refinement


def e_values(f_obs):
    """|E| of the observed amplitudes (cctbx quasi-normalisation, as in charge flipping)."""
    from ml_phasing.examples.observables import _quasi_e

    return f_obs.customized_copy(data=_quasi_e(f_obs), sigmas=None)


def gridding_for(f_obs, resolution_factor: float = 1.0 / 3):
    return maptbx.crystal_gridding(
        unit_cell=f_obs.unit_cell(),
        space_group_info=f_obs.space_group_info(),
        d_min=f_obs.d_min(),
        resolution_factor=resolution_factor,
        symmetry_flags=maptbx.use_space_group_symmetry,
    )


def peaks(coefficients, gridding, n_peaks: int, min_distance: float):
    """Fractional sites and heights of the ``n_peaks`` highest maxima of a map (cctbx peak search)."""
    fft_map = coefficients.fft_map(crystal_gridding=gridding, symmetry_flags=maptbx.use_space_group_symmetry)
    fft_map.apply_sigma_scaling()
    params = maptbx.peak_search_parameters(
        peak_search_level=1,
        max_peaks=n_peaks * 4,
        interpolate=True,
        min_distance_sym_equiv=0.5,
        min_cross_distance=min_distance,
        max_clusters=n_peaks,
    )
    clusters = _tags(gridding).peak_search(parameters=params, map=fft_map.real_map(direct_access=False))
    clusters = clusters.all(max_clusters=n_peaks)
    return list(clusters.sites()), list(clusters.heights())


def _tags(gridding):
    """The gridding's symmetry tags, built once per gridding (building them took a third of the
    time of a peak search on a 30-atom P212121 cell; fft_map.peak_search builds them every call)."""
    tags = getattr(gridding, "_ml_phasing_tags", None)
    if tags is None:
        tags = gridding.tags()
        gridding._ml_phasing_tags = tags
    return tags


def structure_from_peaks(crystal_symmetry, sites, elements, b_iso: float):
    """An xray.structure with ``elements[i]`` on ``sites[i]`` (special positions handled by cctbx)."""
    scatterers = flex.xray_scatterer()
    for i, (site, element) in enumerate(zip(sites, elements)):
        scatterers.append(
            xray.scatterer(
                label=f"{element}{i + 1}", site=tuple(site), u=b_iso / (8 * np.pi**2), scattering_type=element
            )
        )
    sps = crystal_symmetry.special_position_settings(min_distance_sym_equiv=0.5)
    return xray.structure(special_position_settings=sps, scatterers=scatterers)


def refine(xs, f_obs, iterations: int = 25, refine_b: bool = True, restraints_weight: float = 0.0):
    """Sites and isotropic B against |Fobs| (cctbx.xray.minimization, LS on F).

    With ``restraints_weight`` > 0 the molecule's geometry restraints
    (:mod:`ml_phasing.phasing.restraints`, from the model's own connectivity) are added,
    weighted by that factor times the ratio of the X-ray and restraint gradient norms."""
    import scitbx.lbfgs

    from ml_phasing.phasing import restraints

    start = xs
    xs = xs.deep_copy_scatterers()
    if xs.scatterers().size() == 0:
        return xs
    xs.scatterers().flags_set_grads(state=False)
    for sc in xs.scatterers():
        sc.flags.set_use_u_iso(True)
        sc.flags.set_grad_site(True)
        sc.flags.set_grad_u_iso(refine_b)
    functor = xray.target_functors.least_squares_residual(f_obs)
    kwargs = dict(
        target_functor=functor,
        xray_structure=xs,
        lbfgs_termination_params=scitbx.lbfgs.termination_parameters(max_iterations=iterations),
        structure_factor_algorithm=sf_algorithm(f_obs, xs),
    )
    manager = restraints.manager_for(xs) if restraints_weight > 0 else None
    try:
        if manager is None:
            xray.minimization.lbfgs(**kwargs)
        else:
            weight = restraints.weight_for(xs, f_obs, manager, scale=restraints_weight)
            restraints.RestrainedLbfgs(manager, weight, **kwargs)
    except RuntimeError:  # an LBFGS line search that cannot proceed keeps the last good point
        pass
    sites = np.asarray(xs.sites_frac()).ravel()
    u = np.asarray(xs.scatterers().extract_u_iso())
    if not (np.isfinite(u).all() and np.isfinite(sites).all() and np.abs(sites).max() < 10):
        # a diverged minimisation (seen on 0.3 A data of a 4-atom cell: sites at 1e7 cells): no step
        return start.deep_copy_scatterers()
    clamp_b(xs)
    return xs


def clamp_b(xs, b_min: float = 1.0, b_max: float = 80.0):
    u = xs.scatterers().extract_u_iso()
    lo, hi = b_min / (8 * np.pi**2), b_max / (8 * np.pi**2)
    xs.set_u_iso(values=flex.double([min(max(x, lo), hi) for x in u]))


def sf_algorithm(miller_set, xs) -> str:
    """Direct summation where it is cheap: fewer than 3000 reflections, or reflections times
    atoms in P1 below 50 000 (a few atoms with data to 0.3 A); else FFT. With few atoms and
    very fine data, cctbx's FFT sampling also met an atom whose B a line search had sent
    far out and spent minutes sampling it (a 6-atom cell, 5 656 reflections: one start ran
    over 8 minutes with FFT, 6 s with direct summation)."""
    n = miller_set.size()
    n_p1 = xs.scatterers().size() * xs.space_group().order_z()
    return "direct" if n < 3000 or n * n_p1 < 50_000 else "fft"


def f_calc_of(xs, miller_set):
    return miller_set.structure_factors_from_scatterers(xs, algorithm=sf_algorithm(miller_set, xs)).f_calc()


def run(
    f_obs,
    start_phases,
    composition: dict,
    *,
    rng: np.random.Generator,
    cycles: int = 30,
    omit_fraction: float = 0.3,
    refine_every: int = 5,
    min_distance: float = 1.0,
    b_iso: float = 3.0,
    d_min_extend: float | None = None,
    e_obs=None,
    gridding=None,
    completion_cycles: int = 8,
    connected: bool = False,
    reassign_elements: bool = True,
    replace_weak: bool = True,
    restraints_weight: float = 0.0,
    polish_rounds: int = 12,
    polish_min_cc: float = 85.0,
    mirror_rounds: int = 4,
) -> Trajectory:
    """One trajectory from ``start_phases`` (phases in radians on f_obs's indices).

    ``composition`` is per asymmetric unit ({'C': 10, 'N': 2}).
    """
    elements = element_list(composition)
    n_atoms = len(elements)
    e_obs = e_obs if e_obs is not None else e_values(f_obs)
    gridding = gridding or gridding_for(f_obs)
    cs = f_obs.crystal_symmetry()
    target_set = f_obs
    extra = None
    if d_min_extend is not None and d_min_extend < f_obs.d_min() - 1e-3:
        full = f_obs.complete_set(d_min=d_min_extend)
        extra = full.lone_set(f_obs)
    phases = flex.double(np.asarray(start_phases, dtype=float))
    weights = np.ones(f_obs.size())
    xs = None
    history = []
    for cycle in range(cycles):
        coeffs = e_obs.customized_copy(data=flex.polar(e_obs.data() * flex.double(weights), phases))
        sites, heights = peaks(coeffs, gridding, n_atoms, min_distance)
        if not sites:
            break
        xs = structure_from_peaks(cs, sites, elements[: len(sites)] + ["C"] * max(0, len(sites) - n_atoms), b_iso)
        last = cycle == cycles - 1
        if (cycle + 1) % refine_every == 0 or last:
            xs = refine(xs, target_set)
            fc = f_calc_of(xs, f_obs)
            figs = figures_of_merit.figures(f_obs, fc, e_obs=e_obs)
            history.append((cycle + 1, figs["r1"], figs["cc"]))
            if last:
                break
        keep = xs
        if omit_fraction > 0 and keep.scatterers().size() > 3:
            sel = flex.bool(rng.random(keep.scatterers().size()) >= omit_fraction)
            if sel.count(True) < 2:
                sel = flex.bool(keep.scatterers().size(), True)
            keep = keep.select(sel)
        fc = f_calc_of(keep, f_obs)
        phases = flex.arg(fc.data())
        weights = figures_of_merit.sim_weights(f_obs, fc)
    # completion: no omission, every cycle refined, the best model by CC kept
    fc = f_calc_of(xs, f_obs)
    figs = figures_of_merit.figures(f_obs, fc, e_obs=e_obs)
    for cycle in range(completion_cycles):
        weights = figures_of_merit.sim_weights(f_obs, fc)
        coeffs = e_obs.customized_copy(data=flex.polar(e_obs.data() * weights, flex.arg(fc.data())))
        if extra is not None:  # only once the model is near right: early on it would reinforce errors
            coeffs = _with_free_lunch(coeffs, xs, extra, e_obs, float(flex.mean(weights)))
        sites, _ = peaks(coeffs, gridding, n_atoms, min_distance)
        if not sites:
            break
        trial = structure_from_peaks(cs, sites, elements[: len(sites)], b_iso)
        trial = refine(trial, target_set, restraints_weight=restraints_weight)
        if connected:
            trial = repair_connectivity(trial, f_obs, gridding, elements, min_distance)
            trial = refine(trial, target_set, restraints_weight=restraints_weight)
        elif replace_weak:
            trial = replace_weak_atoms(trial, f_obs, gridding, elements, min_distance)
            trial = refine(trial, target_set)
        if reassign_elements and len(set(elements)) > 1:
            # elements by refined B, kept only where that lowers R1 (hydrogens and real B can mislead it)
            swapped = refine(elements_by_b(trial, elements), target_set, restraints_weight=restraints_weight)
            if (
                figures_of_merit.figures(f_obs, f_calc_of(swapped, f_obs))["r1"]
                < figures_of_merit.figures(f_obs, f_calc_of(trial, f_obs))["r1"]
            ):
                trial = swapped
        fc_trial = f_calc_of(trial, f_obs)
        figs_trial = figures_of_merit.figures(f_obs, fc_trial, e_obs=e_obs)
        history.append((cycles + cycle + 1, figs_trial["r1"], figs_trial["cc"]))
        if figs_trial["cc"] <= figs["cc"] + 0.05:
            if figs_trial["cc"] < figs["cc"]:
                break
        xs, fc, figs = trial, fc_trial, figs_trial
    # finishing moves on near solutions, each kept only where R1 falls: light atoms onto their
    # images through heavy atoms (the heavy-atom pseudo-inversion), then the difference-map polish
    finishing = []
    if mirror_rounds:
        finishing.append(
            lambda m: heavy_atom_mirrors.unmirror(
                m,
                target_set,
                refine=lambda t: refine(t, target_set, restraints_weight=restraints_weight),
                r1_of=lambda t: figures_of_merit.figures(f_obs, f_calc_of(t, f_obs))["r1"],
                rounds=mirror_rounds,
            )
        )
    if polish_rounds:
        finishing.append(
            lambda m: polish(
                m,
                target_set,
                gridding,
                elements,
                rounds=polish_rounds,
                restraints_weight=restraints_weight,
                reassign_elements=reassign_elements,
            )
        )
    for step in finishing:
        if figs.get("cc", 0.0) < polish_min_cc:
            break
        finished = step(xs)
        if finished is not xs:
            xs = finished
            fc = f_calc_of(xs, f_obs)
            figs = figures_of_merit.figures(f_obs, fc, e_obs=e_obs)
            history.append((cycles + completion_cycles + 1, figs["r1"], figs["cc"]))
    figs["diff_peak"] = figures_of_merit.difference_peak_ratio(f_obs, xs, gridding)
    fom = figures_of_merit.calibrated_fom(f_obs, fc, figs.get("cc", 0.0))
    return Trajectory(structure=xs, f_calc=fc, fom=fom, figures=figs, history=history)


def polish(
    xs,
    f_obs,
    gridding,
    elements,
    rounds: int = 12,
    min_distance: float = 1.0,
    candidates: int = 3,
    restraints_weight: float = 0.0,
    reassign_elements: bool = True,
    min_gain: float = 0.002,
):
    """Move single atoms from where the difference map says they are wrong to where it says
    one is missing, while R1 falls.

    Each round: the atoms with the lowest Fo-kFc density at their sites (and the one with
    the highest B) are tried, in turn, on the ``candidates`` highest Fo-kFc peaks at least
    ``min_distance`` from the model; after each move the model is refined against |Fo|, and
    the first move that lowers R1 by ``min_gain`` is kept. A dual-space trajectory often
    ends with all but one to three atoms right (CC 88-97 on 1.5 A dipeptides); those
    atoms sit in density that one peak search cannot free them from. Returns ``xs`` itself
    when nothing improved."""

    def r1_of(model):
        return figures_of_merit.figures(f_obs, f_calc_of(model, f_obs))["r1"]

    start, start_r1 = xs, r1_of(xs)
    best_r1 = start_r1
    for _ in range(rounds):
        diff = difference_coefficients(xs, f_obs)
        d_map = diff.fft_map(crystal_gridding=gridding).real_map_unpadded()
        at_atoms = np.array([maptbx.eight_point_interpolation(d_map, site) for site in xs.sites_frac()])
        u = np.array(xs.scatterers().extract_u_iso())
        sites, _ = peaks(diff, gridding, 2 * candidates, min_distance)
        free = []
        for site in sites:
            d = xs.closest_distances(flex.vec3_double([site]), 3.0).smallest_distances[0]
            if d < 0 or d >= min_distance:
                free.append(site)
        movers = list(dict.fromkeys([int(i) for i in np.argsort(at_atoms)[:2]] + [int(np.argmax(u))]))
        improved = False
        for atom in movers:
            for site in free[:candidates]:
                trial = moved(xs, atom, site)
                trial = refine(trial, f_obs, restraints_weight=restraints_weight)
                r1 = r1_of(trial)
                if r1 < best_r1 - min_gain:
                    xs, best_r1, improved = trial, r1, True
                    break
            if improved:
                break
        if not improved:
            break
    if reassign_elements and len(set(elements)) > 1:
        swapped = refine(elements_by_b(xs, elements), f_obs, restraints_weight=restraints_weight)
        swapped_r1 = r1_of(swapped)
        if swapped_r1 < best_r1:
            xs, best_r1 = swapped, swapped_r1
    return xs if best_r1 < start_r1 else start


def moved(xs, atom: int, site):
    """``xs`` with atom ``atom`` on ``site`` (its element and B kept). The atom is taken out
    and put back through the structure's special-position handling: setting the site in
    place would keep the old site's symmetry, and cctbx then refuses the structure
    ("Excessive special position correction") when the new site is general."""
    sc = xs.scatterers()[atom]
    keep = flex.bool(xs.scatterers().size(), True)
    keep[atom] = False
    atom_xs = structure_from_peaks(xs.crystal_symmetry(), [site], [sc.scattering_type], sc.u_iso * 8 * np.pi**2)
    return relabel(xs.select(keep).concatenate(atom_xs))


def signed_polar(amplitudes, phases):
    """Complex coefficients from amplitudes that may be negative: a negative one points the other
    way (phase + pi), since flex.polar needs moduli >= 0."""
    phases = phases.deep_copy()
    negative = amplitudes < 0
    phases.set_selected(negative, phases.select(negative) + np.pi)
    return flex.polar(flex.abs(amplitudes), phases)


def difference_coefficients(xs, f_obs, with_model: bool = False):
    """Fo - kFc map coefficients with the model's phases (k: least-squares scale); where the
    difference is negative the coefficient points the other way (flex.polar needs moduli >= 0).
    With ``with_model``, also the model's own kFc coefficients on the same scale."""
    fc = f_calc_of(xs, f_obs)
    fo = f_obs.data()
    afc = flex.abs(fc.data())
    k = flex.sum(fo * afc) / max(flex.sum(afc * afc), 1e-30)
    phases = flex.arg(fc.data())
    diff = f_obs.customized_copy(data=signed_polar(fo - k * afc, phases), sigmas=None)
    if not with_model:
        return diff
    return diff, f_obs.customized_copy(data=flex.polar(k * afc, phases), sigmas=None)


def repair_connectivity(xs, f_obs, gridding, elements, min_bond: float = 1.1, max_bond: float = 1.85, rounds: int = 2):
    """For molecules (every atom bonded to another): drop atoms with no neighbour within ``max_bond``
    and put atoms on the highest Fo-Fc difference peaks that lie at a bonding distance
    (``min_bond``..``max_bond``) from the model, up to the composition's count."""
    n_atoms = len(elements)
    for _ in range(rounds):
        counts = np.array(xs.pair_asu_table(distance_cutoff=max_bond).pair_counts())
        kept = xs.select(flex.bool((counts > 0).tolist())) if (counts == 0).any() else xs
        need = n_atoms - kept.scatterers().size()
        if need <= 0 or kept.scatterers().size() == 0:
            return xs
        sites, _ = peaks(difference_coefficients(kept, f_obs), gridding, max(4 * need, 8), min_bond)
        new = kept
        for site in sites:
            if need == 0:
                break
            d = new.closest_distances(flex.vec3_double([site]), max_bond).smallest_distances[0]
            if d >= min_bond:
                element = elements[min(new.scatterers().size(), n_atoms - 1)]
                new = new.concatenate(structure_from_peaks(xs.crystal_symmetry(), [site], [element], 10.0))
                need -= 1
        relabel(new)
        if new.scatterers().size() == xs.scatterers().size() and (counts > 0).all():
            return new
        xs = new
    return xs


def replace_weak_atoms(xs, f_obs, gridding, elements, min_distance: float, b_factor: float = 2.5):
    """For any structure: atoms whose refined B is far above the rest (wrong atoms spread out) are
    dropped and the highest Fo-Fc peaks at least ``min_distance`` from the model take their place."""
    n_atoms = len(elements)
    b = np.array(xs.scatterers().extract_u_iso()) * 8 * np.pi**2
    weak = b > max(b_factor * np.median(b), 15.0)
    if not weak.any():
        return xs
    kept = xs.select(flex.bool((~weak).tolist()))
    need = n_atoms - kept.scatterers().size()
    sites, _ = peaks(difference_coefficients(kept, f_obs), gridding, max(4 * need, 8), min_distance)
    new = kept
    for site in sites:
        if need == 0:
            break
        d = new.closest_distances(flex.vec3_double([site]), 3.0).smallest_distances[0]
        if d < 0 or d >= min_distance:
            element = elements[min(new.scatterers().size(), n_atoms - 1)]
            new = new.concatenate(structure_from_peaks(xs.crystal_symmetry(), [site], [element], 5.0))
            need -= 1
    return relabel(new)


def elements_by_b(xs, elements):
    """Elements reassigned by refined B: the heaviest element to the sharpest atoms (lowest B), as
    heavier atoms refined with a lighter scattering factor take a lower B to make up the electrons."""
    u = np.array(xs.scatterers().extract_u_iso())
    order = np.argsort(u, kind="stable")
    xs = xs.deep_copy_scatterers()
    scatterers = xs.scatterers()
    for rank, i in enumerate(order):
        scatterers[int(i)].scattering_type = elements[min(rank, len(elements) - 1)]
    xs.discard_scattering_type_registry()
    return relabel(xs)


def relabel(xs):
    """Unique labels element + serial (SHELX and CIF need unique atom names)."""
    for i, sc in enumerate(xs.scatterers()):
        sc.label = f"{sc.scattering_type}{i + 1}"
    return xs


def _with_free_lunch(coeffs, xs, extra, e_obs, weight: float = 0.7):
    """Unmeasured reflections of ``extra`` with |Fc| and phases of the current model, on the |E| scale,
    weighted by ``weight`` (the mean figure of merit of the measured reflections)."""
    fc = f_calc_of(xs, extra)
    e_c = fc.customized_copy(data=flex.polar(_quasi_on_scale(fc) * weight, flex.arg(fc.data())))
    return coeffs.concatenate(e_c.customized_copy(crystal_symmetry=coeffs.crystal_symmetry()))


def _quasi_on_scale(fc):
    from ml_phasing.examples.observables import _quasi_e

    amp = abs(fc).set_observation_type_xray_amplitude()
    try:
        return _quasi_e(amp)
    except AssertionError:
        return flex.double(fc.size(), 0.0)


def screen(
    f_obs,
    start_phases,
    composition: dict,
    *,
    rng: np.random.Generator,
    e_obs=None,
    gridding=None,
    cycles: int = 60,
    e_min: float = 1.2,
    omit_fraction: float = 0.3,
    min_distance: float = 1.0,
    check_every: int = 10,
    stop_cc: float = 85.0,
):
    """Fast recycling for screening starts (SHELXD's inner loop): E-maps from the strong
    reflections only (|E| > ``e_min``, about a quarter of them), peak search, random omission,
    phases from the remaining atoms on those reflections; no refinement. Every ``check_every``
    cycles the peak model's CC on all data is computed; the best model is kept and the loop stops
    once CC reaches ``stop_cc``. Returns (best CC, the best model's phases on f_obs's indices).

    100 cycles took 1.2 s for a 30-atom P212121 crystal at 1.0 A (profiled, one core), where one
    trajectory of :func:`run` (all-reflection maps, refinement every 5 cycles) took 5-7 s."""
    elements = element_list(composition)
    n_atoms = len(elements)
    e_obs = e_obs if e_obs is not None else e_values(f_obs)
    gridding = gridding or gridding_for(f_obs)
    cs = f_obs.crystal_symmetry()
    strong = e_obs.data() > e_min
    if strong.count(True) < 2 * n_atoms:  # too few strong reflections: the strongest 2N
        order = flex.sort_permutation(e_obs.data(), reverse=True)
        strong = flex.bool(e_obs.size(), False).set_selected(order[: min(e_obs.size(), 4 * n_atoms)], True)
    e_strong, f_strong = e_obs.select(strong), f_obs.select(strong)
    phases = flex.double(np.asarray(start_phases, dtype=float)).select(strong)
    weights = flex.double(e_strong.size(), 1.0)
    best_cc, best_xs = -1.0, None
    for cycle in range(cycles):
        coeffs = e_strong.customized_copy(data=flex.polar(e_strong.data() * weights, phases))
        sites, _ = peaks(coeffs, gridding, n_atoms, min_distance)
        if not sites:
            break
        xs = structure_from_peaks(cs, sites, elements[: len(sites)], 3.0)
        if (cycle + 1) % check_every == 0 or cycle == cycles - 1:
            cc = figures_of_merit.figures(f_obs, f_calc_of(xs, f_obs), e_obs=e_obs)["cc"]
            if cc > best_cc:
                best_cc, best_xs = cc, xs
            if cc >= stop_cc:
                break
        keep = xs
        if xs.scatterers().size() > 3:
            sel = flex.bool(rng.random(xs.scatterers().size()) >= omit_fraction)
            if sel.count(True) >= 2:
                keep = xs.select(sel)
        fc = f_strong.structure_factors_from_scatterers(keep, algorithm="direct").f_calc()
        phases = flex.arg(fc.data())
        weights = figures_of_merit.sim_weights(f_strong, fc)
    if best_xs is None:
        return -1.0, np.asarray(start_phases, dtype=float)
    return best_cc, flex.arg(f_calc_of(best_xs, f_obs).data()).as_numpy_array()
