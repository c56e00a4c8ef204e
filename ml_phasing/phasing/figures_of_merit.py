"""Figures of merit that need no truth: R1, CC(Fo, Fc) as in SHELXD, Patterson CC; Sim weights.

* ``r1`` = sum| |Fo| - k|Fc| | / sum |Fo| with the least-squares scale k.
* ``cc`` = 100 x the correlation of Eo^2 and Ec^2 (SHELXD's CC on normalised intensities, in %).
* ``cc_f`` = correlation of |Fo| and |Fc|.
* ``patterson_cc`` = correlation of the observed and calculated Pattersons on one grid.
* :func:`sim_weights`: Sim (1959) figures of merit from the agreement of |Fo| and |Fc| per shell.
  :func:`calibrate` fits the map from Sim weights to the expected cos(dphi) on held-out data
  (sigmaA-style, per resolution shell) so that mean FOM = mean cos(dphi).
"""

from __future__ import annotations

import numpy as np
from cctbx.array_family import flex


def calc_on_obs(f_obs, f_calc) -> np.ndarray:
    """|Fc| on the reflections of f_obs, in f_obs's order (0 where f_calc has none)."""
    if f_calc.size() == f_obs.size() and f_calc.indices().all_eq(f_obs.indices()):
        return np.abs(f_calc.data().as_numpy_array())
    lookup = dict(zip(f_calc.indices(), np.abs(f_calc.data().as_numpy_array())))
    return np.array([lookup.get(h, 0.0) for h in f_obs.indices()])


def _scale(fo, fc):
    return float((fo * fc).sum() / max((fc * fc).sum(), 1e-30))


def figures(f_obs, f_calc, e_obs=None) -> dict:
    fo = f_obs.data().as_numpy_array()
    fc = calc_on_obs(f_obs, f_calc)
    k = _scale(fo, fc)
    r1 = float(np.abs(fo - k * fc).sum() / max(fo.sum(), 1e-30))
    cc_f = float(np.corrcoef(fo, fc)[0, 1]) if fc.std() > 0 else 0.0
    out = {"r1": r1, "cc_f": cc_f, "patterson_cc": patterson_cc(f_obs, f_calc)}
    if e_obs is not None:
        eo2 = e_obs.data().as_numpy_array() ** 2
        ec = _normalise(f_calc, f_obs)
        out["cc"] = float(100 * np.corrcoef(eo2, ec**2)[0, 1]) if ec.std() > 0 else 0.0
    return out


def heavy_atom_ratio(f_obs, xs, r1: float, min_z: int = 11) -> float | None:
    """R1 of the model's heavy atoms alone (atomic number >= ``min_z``: Na and beyond, so Cl,
    Br, S, P...) over the full model's R1; None when the model has no heavy atom or nothing
    else. Heavy atoms dominate the intensities: a model with them right and the light atoms
    half wrong reaches CC >= 97 and R1 <= 0.15, but explains little more than the heavy atoms
    alone do. Calibration (exact data, 1.5 A, benchmarks' extension recipes): right models
    read 7-17, models with 48-83 % of the atoms right 1.9-2.5, one with 92 % right 5.2."""
    from ml_phasing.phasing.heavy_atom_mirrors import heavy_selection

    heavy = heavy_selection(xs, min_z)
    if heavy.count(True) in (0, heavy.size()) or r1 <= 0:
        return None
    f_heavy = xs.select(heavy).structure_factors(d_min=f_obs.d_min(), algorithm="direct").f_calc()
    return figures(f_obs, f_heavy)["r1"] / r1


def _normalise(f_calc, f_obs):
    from ml_phasing.examples.observables import _quasi_e

    amp = f_obs.customized_copy(data=flex.double(calc_on_obs(f_obs, f_calc)), sigmas=None)
    try:
        return _quasi_e(amp).as_numpy_array()
    except AssertionError:
        return amp.data().as_numpy_array()


def sim_weights(f_obs, f_calc, n_bins: int = 10) -> flex.double:
    """Sim figures of merit (acentric I1/I0, centric tanh) per reflection."""
    from ml_phasing.prediction.density_prediction import sim_fom

    return flex.double(sim_fom(f_obs, f_calc.common_set(f_obs), n_bins=n_bins))


def sigmaa_weights(f_obs, f_calc, n_bins: int = 10) -> flex.double:
    """Figures of merit from sigmaA (Read 1986), estimated per resolution shell from amplitudes alone.

    In a shell, Eo and Ec are the normalised observed and calculated amplitudes; for the joint
    (Wilson) distribution of a model with errors, corr(|Eo|^2, |Ec|^2) = sigmaA^2, which gives
    sigmaA without phases. Then m = I1(X)/I0(X), X = 2 sigmaA |Eo||Ec| / (1 - sigmaA^2) for acentric
    and m = tanh(X/2) for centric reflections. Calibrated (mean m against mean cos dphi on held-out
    data) in benchmarks/solve.py.
    """
    from scitbx.math import bessel_i1_over_i0

    fo = f_obs.data().as_numpy_array()
    fc = calc_on_obs(f_obs, f_calc)
    eps = f_obs.epsilons().data().as_numpy_array().astype(float)
    d = f_obs.d_spacings().data().as_numpy_array()
    centric = f_obs.centric_flags().data().as_numpy_array()
    s3 = 1 / d**3
    n_bins = max(1, min(n_bins, len(fo) // 40))
    edges = np.quantile(s3, np.linspace(0, 1, n_bins + 1))
    shell = np.clip(np.searchsorted(edges, s3, side="right") - 1, 0, n_bins - 1)
    m = np.zeros_like(fo)
    for b in range(n_bins):
        sel = shell == b
        if sel.sum() < 3:
            continue
        eo = fo[sel] / np.sqrt(max(np.mean(fo[sel] ** 2 / eps[sel]), 1e-30) * eps[sel])
        ec = fc[sel] / np.sqrt(max(np.mean(fc[sel] ** 2 / eps[sel]), 1e-30) * eps[sel])
        cc = np.corrcoef(eo**2, ec**2)[0, 1] if ec.std() > 0 and eo.std() > 0 else 0.0
        sigmaa = float(np.sqrt(np.clip(cc, 1e-4, 0.998)))
        x = 2 * sigmaa * eo * ec / (1 - sigmaa**2)
        c = centric[sel]
        mb = np.array([bessel_i1_over_i0(float(v)) for v in np.minimum(x, 700)])
        mb[c] = np.tanh(x[c] / 2)
        m[sel] = mb
    return flex.double(np.clip(m, 0.0, 1.0))


# P(the model's phases are right | CC): a refined model with wrong phases still fits part of the
# amplitudes, so amplitude-based sigmaA alone reads m ~ 0.6 for it; a logistic in CC(Eo^2, Ec^2),
# fitted on the generator's held-out crystals (benchmarks/solve.py), scales the weights down.
CC_RIGHT_CENTRE = 86.0
CC_RIGHT_WIDTH = 2.0


def probability_right(cc: float) -> float:
    return float(1.0 / (1.0 + np.exp(-(cc - CC_RIGHT_CENTRE) / CC_RIGHT_WIDTH)))


def calibrated_fom(f_obs, f_calc, cc: float) -> flex.double:
    """sigmaA figures of merit times the probability that the solution is right (mean FOM ~ mean cos dphi)."""
    return sigmaa_weights(f_obs, f_calc) * probability_right(cc)


def patterson_cc(f_obs, f_calc) -> float:
    """CC of the Pattersons of |Fo|^2 and |Fc|^2 (no F000, so both maps have zero mean). By
    Parseval the map CC equals sum_h m_h Fo^2 Fc^2 / sqrt(sum m Fo^4 sum m Fc^4) over the unique
    reflections with multiplicities m_h, which is what is computed (no FFT needed)."""
    fo2 = f_obs.data().as_numpy_array() ** 2
    fc2 = calc_on_obs(f_obs, f_calc) ** 2
    w = f_obs.multiplicities().data().as_numpy_array().astype(float)
    num = (w * fo2 * fc2).sum()
    den = np.sqrt((w * fo2 * fo2).sum() * (w * fc2 * fc2).sum())
    return float(num / den) if den > 0 else 0.0


def calibrate(fom: np.ndarray, d_spacings: np.ndarray, table: dict | None) -> np.ndarray:
    """Calibrated FOM: Sim weights mapped through a per-shell linear fit m' = clip(a + b m) fitted on
    held-out data (``table`` = {'d_edges': [...], 'a': [...], 'b': [...]}); unchanged without a table."""
    if not table:
        return fom
    edges = np.asarray(table["d_edges"])
    shell = np.clip(np.searchsorted(-edges, -d_spacings, side="right") - 1, 0, len(table["a"]) - 1)
    a = np.asarray(table["a"])[shell]
    b = np.asarray(table["b"])[shell]
    return np.clip(a + b * fom, 0.0, 1.0)


def difference_peak_ratio(f_obs, xs, gridding=None) -> float:
    """The largest |Fo - kFc| difference density (model phases) over the median height of the
    model's own atoms in the kFc map: a near miss (one atom missing or misplaced) leaves a
    peak or hole that R1 and CC hardly see when the rest of the structure dominates.

    Both maps are on one grid with the same coefficients' scale, so the ratio has no units;
    the atom heights are interpolated at the atom sites (``maptbx.eight_point_interpolation``).
    """
    from cctbx import maptbx

    from ml_phasing.phasing.dual_space import difference_coefficients, gridding_for

    if xs.scatterers().size() == 0:
        return float("inf")
    gridding = gridding or gridding_for(f_obs)
    diff, model = difference_coefficients(xs, f_obs, with_model=True)
    d_map = diff.fft_map(crystal_gridding=gridding).real_map_unpadded()
    m_map = model.fft_map(crystal_gridding=gridding).real_map_unpadded()
    heights = [maptbx.eight_point_interpolation(m_map, site) for site in xs.sites_frac()]
    reference = float(np.median(heights))
    if reference <= 0:
        return float("inf")
    extreme = max(abs(flex.max(d_map.as_1d())), abs(flex.min(d_map.as_1d())))
    return float(extreme / reference)
