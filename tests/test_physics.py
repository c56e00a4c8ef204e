"""Physics checks of what simulate computes, against cctbx and independent numpy sums.

Tolerances: cctbx computes in double precision; the maps are stored as float32,
so map comparisons use rtol 1e-6 of the map maximum (float32 epsilon 1.2e-7,
times a margin for summation order). Amplitude comparisons between cctbx
calculations use 1e-9 relative.
"""

import numpy as np
import pytest
from cctbx import sgtbx

from ml_phasing.examples import observables
from ml_phasing.examples.seeding import seed_everything
from ml_phasing.sources.random_atoms import RandomAtomsConfig, make_structure

SPACE_GROUPS = ["P1", "P-1", "P21", "C2", "P21/c", "P212121"]
MAP_RTOL = 1e-6


def structure(symbol, seed=1, n=(8, 12)):
    cfg = RandomAtomsConfig((symbol,), ("C", "N", "O", "Cl"), (3, 1, 1, 1), n[0], n[1], 16, 20, 1.2, 1, 4)
    xs, _ = make_structure(cfg, seed_everything(seed))
    return xs


def p1_full(f_calc):
    """All reflections of the full sphere (both Friedel mates) in P1."""
    p1 = f_calc.expand_to_p1()
    full = p1.generate_bijvoet_mates()
    h = np.asarray(full.indices(), float).reshape(-1, 3)
    return h, full.data().as_numpy_array()


def fourier_sum(h, coeffs, shape):
    """rho(x) = sum_h C(h) exp(-2 pi i h.x) on the grid (cctbx's sign convention)."""
    axes = [np.arange(n) / n for n in shape]
    x = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    out = np.zeros(len(x))
    for start in range(0, len(h), 256):
        hh, cc = h[start : start + 256], coeffs[start : start + 256]
        out += np.real(np.exp(-2j * np.pi * x @ hh.T) @ cc)
    return out.reshape(shape)


@pytest.mark.parametrize("symbol", SPACE_GROUPS)
def test_friedel_pairs(symbol):
    xs = structure(symbol)
    f = xs.structure_factors(d_min=1.2, algorithm="direct", anomalous_flag=True).f_calc()
    plus, minus = f.hemispheres_acentrics()
    np.testing.assert_allclose(
        minus.data().as_numpy_array(), np.conj(plus.data().as_numpy_array()), rtol=1e-9, atol=1e-9
    )


@pytest.mark.parametrize("symbol", ["P1", "P21", "C2", "P212121"])
def test_patterson_is_fft_of_f_squared_and_autocorrelation(symbol):
    xs = structure(symbol)
    d_min = 1.6
    fc = observables.structure_factors(xs, d_min)
    grid = observables.crystal_gridding(xs, d_min, None)
    patt = observables.patterson_map(fc.as_amplitude_array(), grid)
    dens = observables.density_map(fc, grid)
    h, f = p1_full(fc)
    # 1. Patterson = Fourier sum of |F|^2 over the full P1 sphere (independent numpy).
    ref = fourier_sum(h, np.abs(f) ** 2, patt.shape)
    np.testing.assert_allclose(patt, ref, atol=MAP_RTOL * np.abs(ref).max())
    # 2. Density = Fourier sum of F with its phases.
    ref_d = fourier_sum(h, f, dens.shape)
    np.testing.assert_allclose(dens, ref_d, atol=MAP_RTOL * np.abs(ref_d).max())
    # 3. Patterson = autocorrelation of the density (numpy FFT), exact scale:
    # sum_x rho(x) rho(x+u) = N * sum_h |F|^2 cos(2 pi h.u) by Parseval.
    D = np.fft.fftn(dens)
    auto = np.real(np.fft.ifftn(np.conj(D) * D)) / dens.size
    np.testing.assert_allclose(auto, patt, atol=MAP_RTOL * np.abs(patt).max())
    # 4. The Patterson is centrosymmetric: P(u) = P(-u).
    flipped = np.roll(patt[::-1, ::-1, ::-1], 1, axis=(0, 1, 2))
    np.testing.assert_allclose(flipped, patt, atol=MAP_RTOL * np.abs(patt).max())


def test_density_fft_has_friedel_symmetry():
    xs = structure("P21")
    fc = observables.structure_factors(xs, 1.5)
    dens = observables.density_map(fc, observables.crystal_gridding(xs, 1.5, None))
    F = np.fft.fftn(dens)
    F_minus = np.roll(F[::-1, ::-1, ::-1], 1, axis=(0, 1, 2))
    np.testing.assert_allclose(F_minus, np.conj(F), atol=1e-9 * np.abs(F).max())


@pytest.mark.parametrize(
    "symbol, shift",
    [
        ("P1", (0.137, 0.52, 0.911)),  # any shift is allowed in P1
        ("P21", (0.0, 0.3141, 0.0)),  # along the polar b axis
        ("P21/c", (0.5, 0.5, 0.0)),  # an allowed origin shift
        ("P212121", (0.5, 0.0, 0.5)),
    ],
)
def test_translation_invariance_of_amplitudes_and_patterson(symbol, shift):
    xs = structure(symbol)
    assert xs.space_group_info().is_allowed_origin_shift(shift, tolerance=1e-6)
    moved = xs.apply_shift(shift, recompute_site_symmetries=True)
    rec_a, _ = observables.amplitude_record(xs, 2.0, 1.5)
    rec_b, _ = observables.amplitude_record(moved, 2.0, 1.5)
    np.testing.assert_array_equal(rec_a["indices"], rec_b["indices"])
    np.testing.assert_allclose(rec_a["f"], rec_b["f"], rtol=1e-5)  # stored as float32
    grid = observables.crystal_gridding(xs, 1.5, None)
    pa = observables.patterson_map(observables.structure_factors(xs, 1.5).as_amplitude_array(), grid)
    pb = observables.patterson_map(observables.structure_factors(moved, 1.5).as_amplitude_array(), grid)
    np.testing.assert_allclose(pa, pb, atol=1e-9 * np.abs(pa).max())


@pytest.mark.parametrize("symbol", ["P-1", "P21", "C2", "P21/c", "P212121"])
def test_space_group_against_p1_expansion(symbol):
    xs = structure(symbol)
    p1 = xs.expand_to_p1()
    fc = observables.structure_factors(xs, 1.5)
    fc_p1 = observables.structure_factors(p1, 1.5)
    # F computed in the space group at every P1 index (absences included) has
    # the same modulus as F of the expanded P1 structure.
    from cctbx import miller

    same = miller.set(xs.crystal_symmetry(), fc_p1.indices(), anomalous_flag=False)
    absent = same.sys_absent_flags().data().as_numpy_array()
    f_sg = same.structure_factors_from_scatterers(xs, algorithm="direct").f_calc()
    f_p1 = np.abs(fc_p1.data().as_numpy_array())
    np.testing.assert_allclose(np.abs(f_sg.data().as_numpy_array())[~absent], f_p1[~absent], rtol=1e-9, atol=1e-9)
    # Systematic absences of the space group vanish in the P1 calculation.
    assert np.all(f_p1[absent] < 1e-9 * f_p1.max())
    # Maps on the same grid are the same.
    grid = observables.crystal_gridding(xs, 1.5, None)
    grid_p1 = observables.crystal_gridding(p1, 1.5, None)
    from cctbx import maptbx

    grid_p1 = maptbx.crystal_gridding(
        p1.unit_cell(), space_group_info=p1.space_group_info(), pre_determined_n_real=grid.n_real()
    )
    for f in (observables.patterson_map,):
        a = f(fc.as_amplitude_array(), grid)
        b = f(fc_p1.as_amplitude_array(), grid_p1)
        np.testing.assert_allclose(a, b, atol=1e-9 * np.abs(a).max())
    a = observables.density_map(fc, grid)
    b = observables.density_map(fc_p1, grid_p1)
    np.testing.assert_allclose(a, b, atol=1e-9 * np.abs(a).max())


def test_absences_and_masks_are_disjoint():
    xs = structure("P21/c")
    rec, _ = observables.amplitude_record(xs, 2.0, 1.2)
    present = {tuple(int(i) for i in x) for x in rec["indices"]}
    absent = {tuple(int(i) for i in x) for x in rec["absent_indices"]}
    assert absent and not (present & absent)
    sg = xs.space_group()
    assert all(sg.is_sys_absent(h) for h in absent)
    assert not any(sg.is_sys_absent(h) for h in present)
    assert (0, 0, 0) not in present | absent
    assert rec["measured"].sum() == (rec["d"] >= 2.0 - 1e-6).sum()
    assert np.all(np.isnan(rec["e_low"][~rec["measured"]]))
    # |E|^2/epsilon averages to 1 (quasi-normalisation), within binning noise.
    assert abs(np.mean(rec["e"].astype(float) ** 2) - 1) < 0.15


def gemmi_small_structure(xs):
    """The same crystal as a gemmi.SmallStructure (built directly, no file)."""
    import gemmi

    small = gemmi.SmallStructure()
    small.cell = gemmi.UnitCell(*xs.unit_cell().parameters())
    small.spacegroup_hall = xs.space_group().type().hall_symbol()
    small.determine_and_set_spacegroup("h")
    for sc in xs.scatterers():
        site = gemmi.SmallStructure.Site()
        site.label = sc.label
        site.type_symbol = sc.scattering_type
        site.element = gemmi.Element(sc.scattering_type)
        site.fract = gemmi.Fractional(*sc.site)
        site.u_iso = sc.u_iso
        site.occ = sc.occupancy
        small.add_site(site)
    small.setup_cell_images()
    return small


def test_structure_factors_against_gemmi():
    """cctbx |F| against gemmi's independent calculator for the same crystal.

    The two use different form-factor tables (cctbx n_gaussian/WK1995 vs gemmi
    IT92), so agreement is checked as an R factor below 1%.
    """
    import gemmi

    xs = structure("P21/c", seed=4)
    small = gemmi_small_structure(xs)
    calc = gemmi.StructureFactorCalculatorX(small.cell)
    fc = observables.structure_factors(xs, 1.2)
    ours = np.abs(fc.data().as_numpy_array())
    theirs = np.array([abs(calc.calculate_sf_from_small_structure(small, list(h))) for h in fc.indices()])
    r = np.sum(np.abs(ours - theirs)) / np.sum(ours)
    assert r < 0.01, r


def test_intensity_grid_origin_and_centrosymmetry():
    xs = structure("P21")
    grid = observables.intensity_grid(xs, 3, "atomic_number")
    from cctbx.eltbx import tiny_pse

    z_total = sum(tiny_pse.table(sc.scattering_type).atomic_number() * sc.multiplicity() for sc in xs.scatterers())
    assert grid[3, 3, 3] == pytest.approx(z_total**2, rel=1e-5)
    np.testing.assert_allclose(grid, grid[::-1, ::-1, ::-1], rtol=1e-4, atol=1e-3)
    # P21: (0 k 0) with k odd is absent.
    assert grid[3, 4, 3] < 1e-6 * grid[3, 3, 3]
    xray = observables.intensity_grid(xs, 3, "xray")
    assert xray[3, 3, 3] == pytest.approx(xs.f_000() ** 2, rel=1e-3)


def test_voxel_atoms_integrate_to_weights():
    xs = structure("P1")
    sigma, n = 0.5, 40
    vol = xs.unit_cell().volume()
    grid = observables.voxel_atoms(xs, n, sigma, "fractional", "unit")
    # Each Gaussian integrates to (2 pi sigma^2)^(3/2); voxels have volume V/n^3.
    expected = xs.scatterers().size() * (2 * np.pi * sigma**2) ** 1.5 / (vol / n**3)
    assert grid.sum() == pytest.approx(expected, rel=0.01)
    cart = observables.voxel_atoms(xs, n, sigma, "cartesian", "unit")
    assert cart.max() <= 1.5 and cart.max() > 0.5


def test_powder_peak_at_bragg_angle():
    from cctbx import crystal, xray
    from ml_phasing.examples.powder import PowderConfig, pattern

    a = 5.0
    cs = crystal.symmetry((a, a, a, 90, 90, 90), "P1")
    xs = xray.structure(
        crystal_symmetry=cs,
        scatterers=__import__("cctbx.array_family.flex", fromlist=["flex"]).xray_scatterer(
            [xray.scatterer("C1", (0, 0, 0), u=0.01)]
        ),
    )
    cfg = PowderConfig(1.5406, 10, 40, 0.005, 0.0, 0.0, 0.01, 0.5, 0.0, 0.0)
    y = pattern(xs, cfg)
    x = cfg.axis()
    bragg = np.degrees(2 * np.arcsin(1.5406 / (2 * a)))  # (100)
    window = np.abs(x - bragg) < 1.0
    assert abs(x[window][np.argmax(y[window])] - bragg) < 0.01
    # (110) at its own angle, with multiplicity 12 vs 6 it is stronger before LP.
    bragg110 = np.degrees(2 * np.arcsin(1.5406 / (2 * a / np.sqrt(2))))
    w2 = np.abs(x - bragg110) < 1.0
    assert abs(x[w2][np.argmax(y[w2])] - bragg110) < 0.01


@pytest.mark.parametrize("symbol", ["P21", "C2", "P21/c", "P212121", "I41/a", "P6522", "Fdd2"])
def test_absent_indices_against_p1_enumeration(symbol):
    """Point-group enumeration (fast path) equals mapping every P1 index to the ASU."""
    from cctbx import crystal, miller

    sgi = sgtbx.space_group_info(symbol)
    cs = crystal.symmetry(unit_cell=sgi.any_compatible_unit_cell(volume=2000), space_group_info=sgi)
    p1 = miller.build_set(cs.cell_equivalent_p1(), anomalous_flag=False, d_min=1.5)
    ms = miller.set(cs, p1.indices(), anomalous_flag=False).map_to_asu().unique_under_symmetry()
    slow = {tuple(h) for h, a in zip(ms.indices(), ms.sys_absent_flags().data()) if a}
    fast = {tuple(int(i) for i in h) for h in observables.absent_indices(cs, 1.5)}
    assert fast == slow and len(fast) > 0


def test_quasi_normalisation_survives_an_empty_shell():
    """cctbx's quasi_normalize_structure_factors asserts that every interpolated
    <F^2/eps> is positive; a steep fall-off in the outer shell extrapolates below zero
    (an unlucky random cell hit it in a 40k-example 1.2 -> 1.0 A run). _quasi_e must
    fall back to wider bins."""
    xs = structure("P1", n=(20, 20))
    f = xs.structure_factors(d_min=1.0).f_calc().as_amplitude_array()
    d = f.d_spacings().data()
    zero = d < 1.08  # the outermost shell empty: cctbx extrapolates <F^2> below zero there
    f = f.customized_copy(data=f.data().set_selected(zero, 0.0))
    plain = f.deep_copy()
    plain.setup_binner(n_bins=max(1, min(20, f.size() // 100)))
    with pytest.raises(AssertionError):
        plain.quasi_normalize_structure_factors()  # the cctbx behaviour this guards against
    e = observables._quasi_e(f).as_numpy_array()
    assert np.all(np.isfinite(e)) and e.shape == (f.size(),)
    keep = ~zero.as_numpy_array()
    assert np.all(e[keep] > 0) and np.all(e[~keep] == 0)


def test_amplitude_noise_follows_its_error_model():
    """sigma(|F|) = relative_sigma |F| + floor <|F|>_shell (observables.noisy_amplitudes, the
    noise simulate.noise puts on the Patterson's amplitudes): the scatter of (|F_noisy| - |F|)
    / sigma is 1, and the density target is left exact."""
    from cctbx import crystal, xray

    rng = np.random.default_rng(0)
    sym = crystal.symmetry(unit_cell=(10, 11, 12, 90, 90, 90), space_group_symbol="P1")
    sc = [xray.scatterer(f"C{i}", site=tuple(rng.random(3)), u=0.05) for i in range(20)]
    xs = xray.structure(crystal_symmetry=sym, scatterers=xray.flex.xray_scatterer(sc))
    f = abs(xs.structure_factors(d_min=1.0).f_calc())
    noisy = observables.noisy_amplitudes(f, 0.05, 0.02, np.random.default_rng(1))
    sigma = noisy.sigmas().as_numpy_array()
    z = (noisy.data().as_numpy_array() - f.data().as_numpy_array()) / sigma
    strong = f.data().as_numpy_array() > 3 * sigma  # away from the fold at zero
    assert abs(z[strong].std() - 1) < 0.05 and abs(z[strong].mean()) < 0.05
    assert np.all(noisy.data().as_numpy_array() >= 0)
