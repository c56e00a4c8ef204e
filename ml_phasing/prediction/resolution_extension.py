"""Predict unmeasured high-resolution amplitudes with an extend_resolution model, and phase them.

The model file's task_config says how the data were laid out in training: the
measured resolution (d_min_low), the target (d_min_high), the hkl box of dense
models or the token representation, and the space groups seen. Measured
amplitudes pass through unchanged; systematic absences are never predicted.
"""

from __future__ import annotations

import numpy as np
from cctbx.array_family import flex


def _on_set(complete, array) -> tuple:
    """Where ``array`` has a reflection of the set ``complete``: (mask, values, sigmas), numpy,
    zero elsewhere (sigmas zero when the array has none)."""
    pairs = complete.match_indices(array).pairs()
    i, j = pairs.column(0).as_numpy_array(), pairs.column(1)
    mask = np.zeros(complete.size(), bool)
    values, sigmas = np.zeros(complete.size()), np.zeros(complete.size())
    mask[i] = True
    values[i] = array.data().select(j).as_numpy_array()
    if array.sigmas() is not None:
        sigmas[i] = array.sigmas().select(j).as_numpy_array()
    return mask, values, sigmas


def extend(bundle, f_obs, d_min_target: float | None = None, device: str = "cpu") -> dict:
    """F_EXT for every reflection of the asymmetric unit to the target resolution."""
    task = bundle.task
    # The network sees the data to d_min_low, as in training; every reflection the user
    # measured (check_supported made sure none is finer than the target) passes through.
    target, complete, f_input = task.inputs(f_obs, d_min_target)
    f_ext = task.predict_amplitudes(
        bundle.network, complete, target, f_input, getattr(bundle.network, "max_index", None), device
    )
    observed, obs_values, sig_obs = _on_set(complete, f_obs)
    f_ext = np.where(observed, obs_values, np.maximum(f_ext, 0.0))
    r_val = bundle.metrics.get("median_r_factor")
    rel_sigma = float(r_val) if r_val is not None and np.isfinite(r_val) else 0.5
    sigma = np.where(observed, sig_obs, rel_sigma * f_ext + 1e-3)
    extended = complete.array(
        data=flex.double(f_ext.astype(np.float64)), sigmas=flex.double(sigma.astype(np.float64))
    ).set_observation_type_xray_amplitude()
    predicted = complete.array(data=flex.int((~observed).astype(np.int32).tolist()))
    return {
        "extended": extended,
        "predicted": predicted,
        "measured_f": f_obs,
        "d_min_target": target,
        "n_predicted": int((~observed).sum()),
        "n_measured": int(observed.sum()),
        "relative_sigma": rel_sigma,
    }


def shell_mean_fill(f_amplitudes, d_min_measured: float, n_bins: int = 10):
    """The uninformative extension: every reflection finer than ``d_min_measured`` gets
    sqrt(<|F|^2>) of its resolution shell (the shells' mean intensities of ``f_amplitudes``).

    Benchmark baseline (d) of issue 6: the amplitudes carry the Wilson fall-off and
    nothing else. Measured reflections pass through.
    """
    d = f_amplitudes.d_spacings().data()
    outer = (d < d_min_measured * (1 - 1e-9)).iselection()
    data = f_amplitudes.data().deep_copy()
    if outer.size():
        shell = f_amplitudes.select(outer)
        shell.setup_binner(n_bins=max(1, min(n_bins, shell.size() // 20)))
        i_obs = flex.pow2(shell.data())
        fill = flex.double(shell.size(), 0.0)
        for i_bin in shell.binner().range_used():
            sel = shell.binner().selection(i_bin).iselection()
            if sel.size():
                fill.set_selected(sel, float(np.sqrt(flex.mean(i_obs.select(sel)))))
        data.set_selected(outer, fill)
    return f_amplitudes.customized_copy(data=data, sigmas=None)


def solution_map_and_peaks(f_solution, amplitudes, n_peaks: int):
    """Map coefficients (|F| of ``amplitudes``, phases of the charge-flipping solution),
    the map on the data's grid and its ``n_peaks`` highest maxima (fractional sites, heights)."""
    from cctbx import xray

    from ml_phasing.examples import observables
    from ml_phasing.metrics.atoms import peak_sites

    f_solution = f_solution.common_set(amplitudes)
    amps = amplitudes.common_set(f_solution)
    coeffs = amps.customized_copy(data=flex.polar(amps.data(), flex.arg(f_solution.data())), sigmas=None)
    xs_like = xray.structure(crystal_symmetry=amplitudes.crystal_symmetry())
    gridding = observables.crystal_gridding(xs_like, amplitudes.d_min(), None)
    rho = observables.density_map(coeffs, gridding)
    sites, heights = peak_sites(rho, amplitudes.crystal_symmetry(), max(n_peaks, 1))
    return coeffs, rho, sites, heights


def charge_flip(f_amplitudes, seed: int = 0, max_solving_iterations: int = 500):
    """cctbx/smtbx charge flipping (with the Python 3 workaround of the pitfalls notes).

    Returns (best F with phases in the space group, figures of merit dict) or (None, {...}).
    """
    from scitbx.array_family import flex as sflex
    from smtbx.ab_initio import charge_flipping

    sflex.set_random_seed(seed)
    f = f_amplitudes.customized_copy(sigmas=None).set_observation_type_xray_amplitude()
    flipping = charge_flipping.weak_reflection_improved_iterator(delta=None)
    solving = charge_flipping.solving_iterator(
        flipping,
        f,
        yield_solving_interval=10,
        max_attempts_to_get_phase_transition=2,
        max_solving_iterations=max_solving_iterations,
        normalisations_for=charge_flipping.amplitude_quasi_normalisations,
    )
    for _ in solving:
        pass
    solutions = solving.f_calc_solutions
    if not solutions:
        return None, {"solved": False, "phase_transition": bool(solving.had_phase_transition)}
    f_calc, shift, cc = solutions[0]
    return f_calc.customized_copy(crystal_symmetry=f.crystal_symmetry()).map_to_asu(), {
        "solved": True,
        "symmetry_cc": float(cc),
        "origin_shift": [float(x) for x in shift],
        "phase_transition": bool(solving.had_phase_transition),
    }
