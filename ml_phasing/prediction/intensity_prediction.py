"""From observed amplitudes to a predicted density and phases with an intensity-to-density
model (Scripps: |F|^2 on the integer hkl cube in, atoms as Gaussian voxels of the unit cell out).

1. The model's Task checks that it serves the data (its voxels are fractional voxels of the
   unit cell, the cell is like the training cells, the data reach the finest d of its hkl cube
   in this cell).
2. The network's input is |F|^2 on the cube divided by its maximum, F000^2, as in training. The
   amplitudes must therefore be on the absolute scale of the model's form factors and F000 is
   needed; both come from the unit-cell contents (``composition``, per asymmetric unit):
   ``form_factor=xray``: cctbx's Wilson plot of <|F|^2> against sum f_j(s)^2 exp(-2B s^2) gives the scale
   (the data keep their own fall-off, as training kept the atoms' B), F000 = sum Z;
   ``form_factor=atomic_number`` (point atoms of weight Z, no B): |F| = |E| sqrt(eps sum Z^2)
   with the locally normalised |E| of training (``observables._quasi_e``), F000 = sum Z.
   Both are estimates where the training inputs were exact.
3. The network's voxel map is the density on the unit cell's grid; its structure factors,
   symmetrised, scaled and weighted, give the phases as for a Patterson model
   (:func:`ml_phasing.prediction.density_prediction.phases_from_density`). Phases are given
   for the reflections of the hkl cube that the voxel grid holds (|h|, |k|, |l| < n/2).
"""

from __future__ import annotations

import numpy as np
from cctbx.array_family import flex
from cctbx.eltbx import tiny_pse

from ml_phasing.examples import observables
from ml_phasing.prediction import density_prediction


def cell_contents(f_obs, composition: dict) -> dict:
    """Element counts in the unit cell from a composition per asymmetric unit."""
    z = f_obs.space_group().order_z()
    return {e: float(n) * z for e, n in composition.items()}


def f000(contents: dict) -> float:
    return float(sum(tiny_pse.table(e).atomic_number() * n for e, n in contents.items()))


def wilson_scale(f_obs, composition: dict, n_bins: int = 10) -> tuple[float, float]:
    """(k, B) of the Wilson plot <|F|^2>_shell = k Z sum_j f_j(s)^2 exp(-2 B s^2), s = sin(theta)/
    lambda, fitted by cctbx (``cctbx.statistics.wilson_plot``, WK1995 form factors) over up to
    ``n_bins`` resolution shells of at least 20 reflections; ``composition`` per asymmetric unit."""
    from cctbx import statistics

    f = f_obs.select(f_obs.data() > 0)
    f.setup_binner(n_bins=max(2, min(n_bins, f.size() // 20)))
    plot = statistics.wilson_plot(f, composition, scattering_table="wk1995")
    return float(plot.wilson_intensity_scale_factor), float(plot.wilson_b)


def absolute_amplitudes(f_obs, composition: dict, form_factor: str):
    """(amplitudes on the scale of the model's training inputs, F000, note for the log)."""
    contents = cell_contents(f_obs, composition)
    if form_factor == "atomic_number":
        e = observables._quasi_e(f_obs)
        eps = f_obs.epsilons().data().as_double()
        sum_z2 = sum(tiny_pse.table(el).atomic_number() ** 2 * n for el, n in contents.items())
        data = e * flex.sqrt(eps * sum_z2)
        note = "point atoms of weight Z: |F| = |E| sqrt(eps sum Z^2)"
    else:
        k, b = wilson_scale(f_obs, composition)
        data = f_obs.data() / np.sqrt(k)
        note = f"Wilson scale k = {k:.4g}, B = {b:.2f} A^2"
    f_abs = f_obs.customized_copy(data=data, sigmas=None).set_observation_type_xray_amplitude()
    return f_abs, f000(contents), note


def scale_summary(composition: dict, given: bool, f_000: float, note: str) -> str:
    """The log's account of the network input's absolute scale: the composition (and whether
    the user gave it), F000 and the scale note of :func:`absolute_amplitudes`."""
    comp = " ".join(f"{e}{n:g}" for e, n in composition.items())
    return (
        f"composition {comp} per asymmetric unit"
        + ("" if given else " (estimated; give composition= for a better absolute scale)")
        + f": F000 = {f_000:.1f}, {note}"
    )


def network_input(bundle, f_obs, composition: dict) -> dict:
    """The network's input for these data, as :func:`predict` and the Grad-CAM of
    ``ml_phasing.interpret`` make it: the Task's checks, the amplitudes on the model's absolute
    scale (:func:`absolute_amplitudes`) and the |F|^2 cube. Keys: ``x`` (the cube), ``d_cube``,
    ``sim``, ``f000``, ``scale_note``."""
    task = bundle.task
    d_cube, sim = task.check_supported(f_obs)
    f_abs, f_000, note = absolute_amplitudes(f_obs, composition, sim.form_factor)
    return {"x": task.network_input(f_abs, f_000), "d_cube": d_cube, "sim": sim, "f000": f_000, "scale_note": note}


def phase_set(task, f_obs):
    """(the data whose symmetry mates all lie in the hkl cube and in the voxel grid's index
    range, their P1 expansion): the reflections whose phases the model predicts."""
    from cctbx import crystal, miller, sgtbx

    h_lim = min(task.h_max, (int(task.config["output_shape"][0]) - 1) // 2)
    group = f_obs.space_group()
    keep = flex.bool(
        [
            max(abs(i) for m in miller.sym_equiv_indices(group, h).indices() for i in m.h()) <= h_lim
            for h in f_obs.indices()
        ]
    )
    f_cut = f_obs.select(keep)
    p1 = crystal.symmetry(f_obs.unit_cell(), space_group_info=sgtbx.space_group_info("P1"))
    return f_cut, f_cut.expand_to_p1().customized_copy(crystal_symmetry=p1)


def predict(bundle, f_obs, composition: dict, device: str = "cpu", refinement_cycles: int = 0) -> dict:
    """The whole prediction for one data set (module docstring); the keys of
    :func:`ml_phasing.prediction.density_prediction.predict`, plus ``scale_note`` and ``f000``."""
    task = bundle.task
    inputs = network_input(bundle, f_obs, composition)
    sim = inputs["sim"]
    density = task.predict_maps(bundle.network, inputs["x"][None], device)[0].astype(np.float64)
    if sim.voxel[0] == "cartesian":  # the cube, as trained, back onto the unit cell's grid
        density = observables.cartesian_cube_to_cell(density, f_obs.unit_cell(), sim.voxel[4]).astype(np.float64)
    f_cut, f_p1 = phase_set(task, f_obs)
    result = density_prediction.phases_from_density(bundle, f_cut, f_p1, density, refinement_cycles, calibrate=False)
    result.update(
        {
            "rotations": 1,
            "grid": density.shape,
            "d_min": float(f_cut.d_min()),
            "cube_d_min": inputs["d_cube"],
            "f000": inputs["f000"],
            "scale_note": inputs["scale_note"],
            "form_factor": sim.form_factor,
        }
    )
    return result
