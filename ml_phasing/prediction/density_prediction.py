"""From observed amplitudes to a predicted density and phases with a Patterson-to-density model.

1. The model's Task (restored from the model file) checks that it serves the data,
   expands the amplitudes to P1 and computes their Patterson map on the model's grid
   spacing, exactly as in training (cctbx, no F000, scaled to [-1, 1]).
2. The network predicts the density in P1 (optionally averaged over proper
   rotations of the grid: test-time augmentation, each back-rotated prediction
   put on the hand of the first before averaging). A model with recycling runs its
   passes (more than in training for the shipped models) with the observed amplitudes
   imposed between them; the rotations are averaged after every pass, the next pass
   starting from the mean, or at the end (``ensemble.every_pass``, a choice per model).
3. For other space groups, the origin that makes the predicted density most
   symmetric is found with cctbx's fast translation function and the density's
   structure factors are symmetrised (smtbx ``f_calc_symmetrisations``, the step
   charge flipping uses after its P1 search).
4. Phases come from the predicted density; figures of merit from Sim weighting
   of the agreement between the observed and the predicted amplitudes.
5. Optionally, charge-flipping cycles (smtbx) start from the network's phases and
   impose the observed amplitudes.
"""

from __future__ import annotations

import numpy as np
from cctbx import maptbx
from cctbx.array_family import flex
from libtbx.utils import Sorry

from ml_phasing.examples import observables


def grid_rotations(shape) -> list:
    """Proper rotations (determinant +1) of a periodic grid about its origin that map
    the grid onto itself: (axis permutation, flipped axes). 24 for a cubic grid,
    4 (the 2-folds about the axes, and the identity) when all edges differ. The
    identity comes first."""
    from itertools import permutations, product

    out = []
    for perm in permutations(range(3)):
        if tuple(shape[i] for i in perm) != tuple(shape):
            continue
        parity = sum(1 for i in range(3) for j in range(i + 1, 3) if perm[i] > perm[j]) % 2
        for flips in product((0, 1), repeat=3):
            if (parity + sum(flips)) % 2 == 0:
                out.append((perm, tuple(ax for ax in range(3) if flips[ax])))
    return sorted(out, key=lambda r: (r[0] != (0, 1, 2), len(r[1]), r))


def _flip_periodic(a: np.ndarray, axes) -> np.ndarray:
    for ax in axes:  # i -> -i mod n: the reflection through the grid origin
        a = np.roll(np.flip(a, ax), 1, ax)
    return a


def rotate_grid(a: np.ndarray, rotation) -> np.ndarray:
    perm, flips = rotation
    return _flip_periodic(np.transpose(a, perm), flips)


def unrotate_grid(a: np.ndarray, rotation) -> np.ndarray:
    perm, flips = rotation
    return np.transpose(_flip_periodic(a, flips), np.argsort(perm))


def _hand_aligned_mean(maps, reference: np.ndarray | None = None) -> np.ndarray:
    """The mean of back-rotated predictions, each on the hand (itself or its inverse through
    the grid origin) that correlates better with ``reference``: a hand-blind model may pick
    either. Without a reference, with the first prediction, and the mean then takes the hand
    that most predictions came with, so that the choice does not depend on which rotation
    comes first."""
    ref = maps[0] if reference is None else reference
    total, flipped = np.zeros_like(maps[0]), 0
    for m in maps:
        inv = _flip_periodic(m, (0, 1, 2))
        keep = np.corrcoef(m.ravel(), ref.ravel())[0, 1] >= np.corrcoef(inv.ravel(), ref.ravel())[0, 1]
        total += m if keep else inv
        flipped += not keep
    mean = total / len(maps)
    return _flip_periodic(mean, (0, 1, 2)) if reference is None and 2 * flipped > len(maps) else mean


def recycling_passes(bundle, passes=None) -> int:
    """Recycling passes at inference: ``passes`` when given, else the shipped model's
    benchmarked choice (``model_file.inference_passes``), else as many as in training."""
    if passes:
        return int(passes)
    from ml_phasing.models import model_file

    return model_file.inference_passes(bundle.info) or getattr(bundle.task, "passes", 1)


def every_pass_default(bundle, every_pass=None) -> bool:
    """Whether rotations are averaged after every recycling pass: ``every_pass`` when given,
    else the shipped model's benchmarked choice (``model_file.rotations_every_pass``)."""
    if every_pass is not None:
        return bool(every_pass)
    from ml_phasing.models import model_file

    return model_file.rotations_every_pass(bundle.info)


def run_network(
    bundle, patterson: np.ndarray, device: str, rotations: int = 1, passes=None, every_pass=None
) -> tuple[np.ndarray, int]:
    """The network's density for a Patterson and the number of rotations averaged.

    With rotations > 1 the prediction is the mean over up to that many proper grid rotations
    (the Patterson rotates like the density), each back-rotated prediction on one hand
    (:func:`_hand_aligned_mean`). For a model with recycling and ``every_pass`` the mean is
    taken after every pass: each pass sees every rotation of the averaged estimate (with the
    observed amplitudes imposed), so the rotations agree on one estimate instead of running
    separate chains that are only averaged at the end. ``passes``: recycling passes (:func:`recycling_passes`);
    ``every_pass`` None: the model's default (:func:`every_pass_default`)."""
    import torch

    from ml_phasing.tasks.maps import impose_amplitudes

    task, model = bundle.task, bundle.network
    rots = grid_rotations(patterson.shape)[: max(1, rotations)]
    n_passes = recycling_passes(bundle, passes)
    if not (every_pass_default(bundle, every_pass) and task.passes > 1 and len(rots) > 1):
        y = task.predict_maps(model, np.stack([rotate_grid(patterson, r) for r in rots]), device, n_passes)
        return _hand_aligned_mean([unrotate_grid(m, r).astype(np.float64) for m, r in zip(y, rots)]), len(rots)

    def stack(grid):
        a = np.stack([rotate_grid(grid, r) for r in rots])[:, None]
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(device)

    x = stack(patterson)
    observed = torch.from_numpy(np.ascontiguousarray(patterson, dtype=np.float32))[None, None].to(device)
    estimate = np.zeros_like(patterson, dtype=np.float64)
    for index in range(n_passes):
        y = task.pass_output(model, x, stack(estimate), index)[:, 0].float().cpu().numpy()
        maps = [unrotate_grid(m, r).astype(np.float64) for m, r in zip(y, rots)]
        density = _hand_aligned_mean(maps, estimate if index else None)  # later passes keep the estimate's hand
        if index < n_passes - 1:
            mean = torch.from_numpy(density.astype(np.float32))[None, None].to(device)
            estimate = impose_amplitudes(mean, observed)[0, 0].float().cpu().numpy().astype(np.float64)
    return density, len(rots)


def symmetrise(f_obs, f_calc_p1):
    """(F in the space group's ASU, origin shift, symmetry CC) from a P1 prediction."""
    if f_obs.space_group().order_z() == 1:
        return f_calc_p1.common_set(f_obs), (0.0, 0.0, 0.0), 1.0
    from smtbx.ab_initio.charge_flipping import f_calc_symmetrisations

    best = None
    for f_sym, shift, cc in f_calc_symmetrisations(f_obs, f_calc_p1, min_cc_peak_height=-1.0):
        best = (f_sym, tuple(shift), float(cc))
        break
    if best is None:
        raise Sorry("Could not find an origin consistent with the space group in the predicted density.")
    f_sym, shift, cc = best
    f_sym = f_sym.customized_copy(crystal_symmetry=f_obs.crystal_symmetry()).map_to_asu()
    return f_sym.common_set(f_obs), shift, cc


def sim_fom(f_obs, f_calc, n_bins: int = 10) -> np.ndarray:
    """Sim (1959) figures of merit m = I1(X)/I0(X), X = 2|Fo||Fc| / <|Fo|^2 - |Fc|^2>_shell.

    |Fc| is first scaled to |Fo| per shell by least squares; acentric form.
    """
    from scitbx.math import bessel_i1_over_i0

    fo = f_obs.data().as_numpy_array()
    fc = np.abs(f_calc.data().as_numpy_array())
    d = f_obs.d_spacings().data().as_numpy_array()
    s3 = 1 / d**3
    edges = np.linspace(s3.min(), s3.max() + 1e-9, n_bins + 1)
    shell = np.clip(np.searchsorted(edges, s3, side="right") - 1, 0, n_bins - 1)
    m = np.zeros_like(fo)
    for b in range(n_bins):
        sel = shell == b
        if not sel.any():
            continue
        k = (fo[sel] * fc[sel]).sum() / max((fc[sel] ** 2).sum(), 1e-30)
        fcs = k * fc[sel]
        sigma = max(float(np.mean(np.abs(fo[sel] ** 2 - fcs**2))), 1e-12)
        x = 2 * fo[sel] * fcs / sigma
        m[sel] = [bessel_i1_over_i0(float(v)) for v in x]
    centric = f_obs.centric_flags().data().as_numpy_array()
    if centric.any():  # centric: m = tanh(X/2)
        k_all = (fo * fc).sum() / max((fc**2).sum(), 1e-30)
        sigma = max(float(np.mean(np.abs(fo**2 - (k_all * fc) ** 2))), 1e-12)
        m[centric] = np.tanh(fo[centric] * k_all * fc[centric] / sigma)
    return np.clip(m, 0.0, 1.0)


def quasi_normalisations(f_p1):
    """smtbx's amplitude quasi-normalisations (200 reflections per bin); where cctbx finds an
    interpolated <F^2/eps> that is not positive (a 4-atom cell's data to 0.3 A, the whole hkl
    cube of a Scripps model: the outer shells are near 0), wider bins, down to one."""
    from smtbx.ab_initio import charge_flipping

    try:
        return charge_flipping.amplitude_quasi_normalisations(f_p1)
    except AssertionError:
        pass
    per_bin = 400
    while True:
        f_p1.setup_binner_counting_sorted(reflections_per_bin=per_bin)
        try:
            return f_p1.amplitude_quasi_normalisations()
        except AssertionError:
            if per_bin >= f_p1.size():
                raise
            per_bin *= 2


def refine_with_charge_flipping(f_obs, f_calc, cycles: int):
    """Charge flipping (smtbx) started from the given phases, imposing the observed amplitudes.

    Works in P1 on quasi-normalised amplitudes; returns F with refined phases on
    the indices of ``f_obs`` (space-group ASU), after re-symmetrisation.
    """
    from smtbx.ab_initio import charge_flipping

    f_p1 = f_obs.expand_to_p1()
    phases_p1 = f_calc.expand_to_p1().common_set(f_p1)
    f_p1 = f_p1.common_set(phases_p1)
    norm = quasi_normalisations(f_p1).common_set(f_p1)
    # smtbx's iterator.normalise() fails on its complex f_calc (cctbx 2025.11: complex /= real),
    # so the amplitudes are quasi-normalised before starting instead.
    e_p1 = f_p1.customized_copy(data=f_p1.data() / norm.data(), sigmas=None)
    it = charge_flipping.weak_reflection_improved_iterator(delta=None)
    it.start(e_p1, flex.arg(phases_p1.data()))
    it.delta = it.rho_map.flipped_fraction_as_delta(0.8)
    for _ in range(cycles):
        next(it)
    # The structure factors of the last flipped density (smtbx keeps them in _g), on the
    # amplitude scale of the data: their phases are the refined phases, their moduli
    # give the figures of merit.
    g = it._g.common_set(norm)
    g = g.customized_copy(data=g.data() * norm.common_set(g).data())
    return symmetrise(f_obs, g)


def density_on_grid(f_complex, n_real) -> np.ndarray:
    gridding = maptbx.crystal_gridding(
        unit_cell=f_complex.unit_cell(),
        space_group_info=f_complex.space_group_info(),
        pre_determined_n_real=n_real,
        symmetry_flags=maptbx.use_space_group_symmetry,
    )
    return observables.density_map(f_complex, gridding)


def model_composition(bundle) -> dict | None:
    """The cell's contents where the model's training data fix them: a model trained on
    dialanine alone (``peptides.kind=dialanine``, one fragment per P1 cell; the shipped
    dialanine model) has seen C6 N2 O2 (the generator's heavy atoms) in every cell. None for
    any other model (dipeptides of any two residues, random atoms, structure files)."""
    from ml_phasing.sources import residue_geometry

    sim = bundle.task.training_simulation()
    if sim is None or sim.source != "peptides" or sim.peptides.kind != "dialanine":
        return None
    composition = {}
    for atom in residue_geometry.build_dipeptide("ALA", "ALA", np.random.default_rng(0)):
        composition[atom[3]] = composition.get(atom[3], 0) + 1
    return dict(sorted(composition.items()))


def default_refinement_cycles(bundle) -> int:
    """Charge-flipping cycles after the network when the user sets none (refinement.cycles=Auto):
    for a shipped model the better choice of its benchmark (none after the dialanine model, 20
    after the dipeptide model: ``model_file.SHIPPED_REFINEMENT_CYCLES``), 20 after any other."""
    from ml_phasing.models import model_file

    return model_file.refinement_cycles(bundle.info)


def predict(
    bundle,
    f_obs,
    device: str = "cpu",
    refinement_cycles: int = 0,
    rotations: int = 1,
    calibrate: bool = True,
    passes=None,
    every_pass=None,
) -> dict:
    """The whole prediction for one data set; see the module docstring.

    ``rotations``, ``passes`` and ``every_pass``: as :func:`run_network`. With ``calibrate``
    the Sim FOMs are mapped per resolution shell to the mean cos(dphi) measured on held-out
    data for the shipped models (``model_file.fom_calibration``; ``result['fom_calibrated']``
    says whether a table was found)."""
    task = bundle.task
    patt, f_obs, f_p1 = task.network_input(f_obs)
    density, n_rotations = run_network(bundle, patt, device, rotations, passes, every_pass)
    result = phases_from_density(bundle, f_obs, f_p1, density, refinement_cycles, calibrate)
    result.update(
        {
            "rotations": n_rotations,
            "passes": recycling_passes(bundle, passes) if task.passes > 1 else 1,
            "every_pass": every_pass_default(bundle, every_pass) and task.passes > 1 and n_rotations > 1,
            "grid": patt.shape,
            "d_min": task.config["map_d_min"],
        }
    )
    return result


def phases_from_density(bundle, f_obs, f_p1, density: np.ndarray, refinement_cycles: int = 0, calibrate: bool = True):
    """Steps 3-5 of the module docstring for a density predicted on the unit cell's grid
    (``density`` indexed [x, y, z] along a, b, c): its structure factors on the P1 set
    ``f_p1``, symmetrised onto ``f_obs``, scaled to it, with Sim FOMs (calibrated for
    shipped models) and optional charge-flipping cycles. Patterson-to-density and
    intensity-to-density models share it."""
    from ml_phasing.tasks.maps import PattersonToDensity

    f_pred_p1 = PattersonToDensity.structure_factors(density, f_p1)
    f_pred, shift, sym_cc = symmetrise(f_obs, f_pred_p1)
    f_obs_c = f_obs.common_set(f_pred)
    f_pred = f_pred.common_set(f_obs_c)
    scale = float(
        (f_obs_c.data().as_numpy_array() * np.abs(f_pred.data().as_numpy_array())).sum()
        / max((np.abs(f_pred.data().as_numpy_array()) ** 2).sum(), 1e-30)
    )
    f_pred = f_pred.customized_copy(data=f_pred.data() * scale)
    result = {
        "f_obs": f_obs_c,
        "f_pred": f_pred,
        "origin_shift": shift,
        "symmetry_cc": sym_cc,
        "network_density": density,
        "scale": scale,
    }
    fom = sim_fom(f_obs_c, f_pred)
    result["fom_network"] = fom
    result["phases"] = f_pred
    model_f = f_pred
    if refinement_cycles > 0:
        refined, _, cc = refine_with_charge_flipping(f_obs_c, f_pred, refinement_cycles)
        model_f = refined.common_set(f_obs_c)
        result["phases"] = model_f
        result["refinement_symmetry_cc"] = cc
    result["fom"] = sim_fom(f_obs_c.common_set(model_f), model_f)
    tables = bundle.fom_calibration() if calibrate else None
    result["fom_calibrated"] = tables is not None
    if tables is not None:
        from ml_phasing.phasing.figures_of_merit import calibrate as calibrated

        d_net = f_obs_c.d_spacings().data().as_numpy_array()
        d_ref = f_obs_c.common_set(model_f).d_spacings().data().as_numpy_array()
        result["fom_network"] = calibrated(np.asarray(result["fom_network"]), d_net, tables["network"])
        table = tables["refined"] if refinement_cycles > 0 else tables["network"]
        result["fom"] = calibrated(np.asarray(result["fom"]), d_ref, table)
    result["mean_fom"] = float(np.mean(result["fom"]))
    result["r_factor_network"] = float(
        np.sum(np.abs(f_obs_c.data().as_numpy_array() - np.abs(f_pred.data().as_numpy_array())))
        / np.sum(f_obs_c.data().as_numpy_array())
    )
    return result
