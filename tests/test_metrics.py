"""Metrics against constructed truths: shifted/inverted copies, random phases, known matches."""

import numpy as np
import pytest

from ml_phasing.examples import observables
from ml_phasing.metrics import (
    compare_maps,
    map_cc,
    patterson_consistency,
    phase_statistics,
    r_factor,
    r_factor_by_shell,
    ssim3d,
)
from ml_phasing.metrics.atoms import atom_recovery, interatomic_vector_match, peak_sites
from ml_phasing.metrics.origin import origin_structure
from test_physics import structure

# (space group, an allowed origin shift); C2's mixes a polar (y) and discrete parts.
CASES = [
    ("P1", (0.137, 0.52, 0.911)),
    ("P21", (0.5, 0.3141, 0.0)),
    ("P21/c", (0.5, 0.5, 0.0)),
    ("P212121", (0.5, 0.0, 0.5)),
    ("C2", (0.5, 0.123, 0.5)),
]


def copies(symbol, shift, inverted):
    xs = structure(symbol)
    assert xs.space_group_info().is_allowed_origin_shift(shift, 1e-6)
    other = xs.apply_shift(shift, recompute_site_symmetries=True)
    if inverted:
        other = other.change_hand()
    f1 = observables.structure_factors(xs, 1.5)
    f2 = f1.structure_factors_from_scatterers(other, algorithm="direct").f_calc()
    return xs, f1, f2


def arrays(f):
    return (np.asarray(f.indices(), float), f.d_spacings().data().as_numpy_array(), f.data().as_numpy_array())


@pytest.mark.parametrize("inverted", [False, True])
@pytest.mark.parametrize("symbol, shift", CASES)
def test_shifted_and_inverted_copies_read_zero(symbol, shift, inverted):
    xs, f1, f2 = copies(symbol, shift, inverted)
    h, d, a = arrays(f1)
    b = f2.data().as_numpy_array()
    stats = phase_statistics(h, d, a, b, xs.space_group_info())
    assert stats["overall"]["mean_phase_error"] < 0.01  # degrees; the refinement converges far below
    assert stats["overall"]["fraction_below_60"] == 1.0
    if inverted and origin_structure(xs.space_group_info()).hand_translation is not None:
        assert stats["inverted_hand"]
    # Before alignment the copy looks unrelated (except when nothing moved).
    raw = phase_statistics(h, d, a, b, xs.space_group_info(), search_origin=False)
    assert raw["overall"]["mean_phase_error"] > 20
    grid = observables.crystal_gridding(xs, 1.5, None)
    m1, m2 = observables.density_map(f1, grid), observables.density_map(f2, grid)
    result = compare_maps(m1, m2, xs.space_group_info(), xs.unit_cell(), d_min=1.5)
    assert result["map_cc_aligned"] == pytest.approx(1.0, abs=1e-6)
    assert result["map_cc"] < 0.9
    assert result["phases"]["overall"]["mean_phase_error"] < 0.01


def test_agrees_with_cctbx_mean_phase_error_without_shift():
    xs = structure("P21")
    f1 = observables.structure_factors(xs, 1.5)
    rng = np.random.default_rng(0)
    from cctbx.array_family import flex

    ramp = flex.polar(flex.double(f1.size(), 1.0), flex.double(rng.normal(0, 0.3, f1.size())))
    noisy = f1.customized_copy(data=f1.data() * ramp)
    h, d, a = arrays(f1)
    ours = phase_statistics(h, d, a, noisy.data().as_numpy_array(), xs.space_group_info(), search_origin=False)
    reference = f1.mean_phase_error(noisy)  # cctbx, degrees
    assert ours["overall"]["mean_phase_error"] == pytest.approx(reference, abs=1e-6)
    # Small noise: the origin search must not find a better "shift" than the truth by much.
    searched = phase_statistics(h, d, a, noisy.data().as_numpy_array(), xs.space_group_info())
    assert searched["overall"]["mean_phase_error"] <= reference + 1e-6
    assert searched["overall"]["mean_phase_error"] > reference - 2.0


def test_random_phases_read_about_ninety_degrees():
    xs = structure("P1", n=(20, 25))
    f1 = observables.structure_factors(xs, 1.0)
    h, d, a = arrays(f1)
    rng = np.random.default_rng(1)
    b = np.abs(a) * np.exp(1j * rng.uniform(0, 2 * np.pi, len(a)))
    raw = phase_statistics(h, d, a, b, xs.space_group_info(), search_origin=False)
    assert raw["overall"]["mean_phase_error"] == pytest.approx(90, abs=4)  # 90 +- ~4 sigma for n~2000
    # The search over shifts and hand can only lower it, and only a little for random phases.
    searched = phase_statistics(h, d, a, b, xs.space_group_info())
    assert 75 < searched["overall"]["mean_phase_error"] <= raw["overall"]["mean_phase_error"] + 1e-9


def test_per_shell_tables():
    xs, f1, f2 = copies("P21", (0.0, 0.25, 0.0), False)
    h, d, a = arrays(f1)
    stats = phase_statistics(h, d, a, f2.data().as_numpy_array(), xs.space_group_info(), n_bins=5)
    assert len(stats["shells"]) == 5
    assert sum(s["n"] for s in stats["shells"]) == stats["overall"]["n"]
    assert stats["shells"][0]["d_max"] > stats["shells"][-1]["d_min"]
    assert stats["shells"][-1]["d_min"] == pytest.approx(d.min(), rel=1e-6)


def test_fom_weighting():
    h = np.array([[1, 0, 0], [0, 1, 0]], float)
    d = np.array([2.0, 2.0])
    a = np.array([1.0, 1.0], complex)
    b = np.array([1.0, np.exp(1j * np.pi / 2)])
    stats = phase_statistics(h, d, a, b, fom=np.array([1.0, 0.0]), search_origin=False)
    assert stats["overall"]["mean_phase_error"] == pytest.approx(45.0)
    assert stats["overall"]["fom_weighted_phase_error"] == pytest.approx(0.0)


def test_r_factor():
    f = np.array([10.0, 20.0, 30.0])
    assert r_factor(f, f) == 0.0
    assert r_factor(f, 2 * f) == pytest.approx(1.0)
    assert r_factor(f, 2 * f, fit_scale=True) == pytest.approx(0.0, abs=1e-12)
    assert r_factor(f, np.array([10.0, 20.0, 0.0]), mask=[True, True, False]) == 0.0
    assert r_factor(f, np.array([11.0, 20.0, 30.0])) == pytest.approx(1 / 60)
    shells = r_factor_by_shell(np.array([3.0, 2.0, 1.0]), f, f, n_bins=2)
    assert all(s["r_factor"] in (0.0, None) for s in shells)


def test_map_metrics():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(12, 14, 16))
    assert map_cc(a, a) == pytest.approx(1.0)
    assert map_cc(a, -a) == pytest.approx(-1.0)
    assert map_cc(a, 3 * a + 2) == pytest.approx(1.0)
    assert ssim3d(a, a) == pytest.approx(1.0)
    assert ssim3d(a, rng.normal(size=a.shape)) < 0.2
    mask = np.zeros(a.shape, bool)
    mask[:6] = True
    b = a.copy()
    b[6:] = rng.normal(size=b[6:].shape)
    assert map_cc(a, b, mask) == pytest.approx(1.0)


def test_patterson_consistency_of_true_density():
    xs = structure("P21")
    f = observables.structure_factors(xs, 1.5)
    grid = observables.crystal_gridding(xs, 1.5, None)
    dens = observables.density_map(f, grid)
    patt = observables.patterson_map(f.as_amplitude_array(), grid)
    assert patterson_consistency(patt, dens) == pytest.approx(1.0, abs=1e-9)
    rng = np.random.default_rng(0)
    assert patterson_consistency(patt, rng.normal(size=dens.shape)) < 0.3


def test_atom_matching_constructed_cases():
    xs = structure("P21", n=(10, 10))
    sites = np.array(xs.sites_frac())
    # A shifted copy (allowed origin shift) is a full match.
    moved = np.array(xs.apply_shift((0.5, 0.3, 0.5), recompute_site_symmetries=True).sites_frac())
    assert atom_recovery(xs, moved)["fraction_matched"] == 1.0
    # Half the atoms, each moved by 0.2 A, plus noise peaks far away.
    rng = np.random.default_rng(0)
    uc = xs.unit_cell()
    part = sites[:5] + np.array([uc.fractionalize((0.2, 0, 0))])
    result = atom_recovery(xs, part, tolerance=0.5)
    assert result["n_matched"] == 5 and result["fraction_matched"] == 0.5
    assert result["rms"] == pytest.approx(0.2, abs=0.01)
    # Atoms moved by 1 A are not within 0.5 A.
    far = sites + np.array([uc.fractionalize((1.0, 0, 0))])
    assert atom_recovery(xs, far, tolerance=0.5)["fraction_matched"] < 1.0
    # Peaks of the true density recover the atoms.
    f = observables.structure_factors(xs, 0.8)
    m = observables.density_map(f, observables.crystal_gridding(xs, 0.8, None))
    peaks, heights = peak_sites(m, xs.crystal_symmetry(), 10)
    assert atom_recovery(xs, peaks)["fraction_matched"] == 1.0
    iv = interatomic_vector_match(xs, peaks)
    assert iv["precision"] > 0.9 and iv["recall"] > 0.9
    iv_random = interatomic_vector_match(xs, rng.uniform(size=(10, 3)))
    assert iv_random["recall"] < 0.5


def test_a_flat_predicted_map_scores_as_random_phases():
    """Issue 12: a validation pass whose network predicts a flat map ended in ValueError in the
    origin search after a whole epoch; it reads map CC 0 and, in training, 90 degrees."""
    import torch
    from cctbx import uctbx

    from ml_phasing.metrics.maps import compare_maps
    from ml_phasing.metrics.origin import align
    from ml_phasing.tasks import PattersonToDensity

    rng = np.random.default_rng(0)
    truth = rng.random((12, 12, 12))
    out = compare_maps(truth, np.full((12, 12, 12), 0.3), unit_cell=uctbx.unit_cell((10, 10, 10, 90, 90, 90)))
    assert out["map_cc_aligned"] == 0.0 and abs(out["map_cc"]) < 1e-9
    assert out["phases"]["overall"]["mean_phase_error"] is None
    assert align(np.zeros((0, 3)), np.zeros(0, complex), np.zeros(0, complex)).score == 0.0
    task = PattersonToDensity.__new__(PattersonToDensity)
    task.periodic, task.target_field = True, "density"
    meta = {"hall_symbol": " P 1", "unit_cell": (10, 10, 10, 90, 90, 90)}
    batch = {"y": torch.from_numpy(truth[None, None].astype(np.float32))}
    rows = task.metrics(torch.zeros((1, 1, 12, 12, 12)), batch, [meta])
    assert rows[0]["phase_error"] == 90.0 and rows[0]["map_cc_aligned"] == 0.0
