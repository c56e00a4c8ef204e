"""What a model learns from: amplitudes, Patterson and density maps, grids of atoms.

Everything is computed by cctbx from an :class:`cctbx.xray.structure`; this
module only chooses resolutions and grids and converts to numpy. Maps are numpy
arrays indexed ``[x, y, z]`` along the fractional axes a, b, c of the unit cell
(cctbx's ``real_map_unpadded`` order).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from cctbx import crystal, maptbx, miller, sgtbx
from cctbx.array_family import flex
from libtbx.utils import Sorry


def structure_factors(xs, d_min: float):
    """F_calc in the asymmetric unit to ``d_min`` (direct summation, no F000)."""
    return xs.structure_factors(d_min=d_min, algorithm="direct", anomalous_flag=False).f_calc()


@functools.lru_cache(maxsize=512)
def _derived_group_info(hall_symbol: str, kind: str) -> sgtbx.space_group_info:
    """Patterson or point group of a space group, with its (costly) type computed once."""
    group = sgtbx.space_group(hall_symbol)
    if kind == "patterson":
        group = group.build_derived_patterson_group()
    else:
        group = group.build_derived_point_group()
    info = sgtbx.space_group_info(group=group)
    info.type()
    return info


def derived_symmetry(crystal_symmetry, kind: str) -> crystal.symmetry:
    """The same cell with the derived ``kind`` ("patterson" or "point") group."""
    hall = crystal_symmetry.space_group_info().type().hall_symbol()
    return crystal.symmetry(unit_cell=crystal_symmetry.unit_cell(), space_group_info=_derived_group_info(hall, kind))


def absent_indices(crystal_symmetry, d_min: float) -> np.ndarray:
    """Systematically absent indices of the asymmetric unit to ``d_min``, shape (n, 3).

    cctbx's index generator skips absences, so the indices are generated for the
    point group (same Laue class and reciprocal asymmetric unit, no translations,
    no absences) and the space group's absences are selected from them.
    """
    candidates = miller.build_set(derived_symmetry(crystal_symmetry, "point"), anomalous_flag=False, d_min=d_min)
    ms = miller.set(crystal_symmetry, candidates.indices(), anomalous_flag=False)
    return indices_as_numpy(ms.indices().select(ms.sys_absent_flags().data()))


def indices_as_numpy(indices) -> np.ndarray:
    """flex.miller_index as an (n, 3) int16 array (fast path through vec3_double)."""
    return indices.as_vec3_double().as_numpy_array().astype(np.int16).reshape(-1, 3)


def _quasi_e(f_amp):
    """Locally normalised |E| (cctbx quasi-normalisation, epsilon-corrected)."""
    f = f_amp.deep_copy()
    n_bins = max(1, min(20, f.size() // 100))
    while True:
        f.setup_binner(n_bins=n_bins)
        try:
            return f.quasi_normalize_structure_factors().data()
        except AssertionError:
            # cctbx asserts that every interpolated <F^2/eps> is positive; a bin left
            # empty (or all zero) by an unlucky cell breaks that: use fewer, wider bins.
            if n_bins == 1:
                raise
            n_bins = max(1, n_bins // 2)


def amplitude_record(xs, d_min_low: float, d_min_high: float) -> dict:
    """Reflections of the asymmetric unit to ``d_min_high`` with masks.

    ``measured`` marks d >= d_min_low (what an experiment gave); the rest is
    "not measured". Systematic absences and F000 are kept apart
    (``absent_indices``, ``f000``) instead of being zeros in the same array.
    """
    fc = structure_factors(xs, d_min_high)
    f_amp = fc.as_amplitude_array()
    d = f_amp.d_spacings().data()
    measured = d >= d_min_low * (1 - 1e-9)
    e = _quasi_e(f_amp)
    if measured.all_eq(True):
        e_low = e
    else:
        e_low = flex.double(f_amp.size(), float("nan"))
        sel = measured.iselection()
        if sel.size():
            e_low.set_selected(sel, _quasi_e(f_amp.select(sel)))
    rec = {
        "indices": indices_as_numpy(fc.indices()),
        "f": f_amp.data().as_numpy_array().astype(np.float32),
        "phi": fc.phases(deg=True).data().as_numpy_array().astype(np.float32),
        "e": e.as_numpy_array().astype(np.float32),
        "e_low": e_low.as_numpy_array().astype(np.float32),
        "d": d.as_numpy_array().astype(np.float32),
        "measured": measured.as_numpy_array(),
        "centric": fc.centric_flags().data().as_numpy_array(),
        "epsilon": fc.epsilons().data().as_numpy_array().astype(np.int8),
        "absent_indices": absent_indices(xs.crystal_symmetry(), d_min_high),
    }
    return rec, fc


def crystal_gridding(xs, d_min: float, grid_step: float | None):
    """Real-space grid of the unit cell with spacing at most ``grid_step`` (Angstrom).

    The default step is d_min/3. Each grid dimension is the smallest integer
    n >= a/step that is a multiple of the space group's grid factors and has no
    prime factor above 5 (FFT-friendly); 10 A at 0.5 A gives exactly 20.
    (cctbx's own ``crystal_gridding(step=...)`` rounds up further, to 24.)
    """
    step = grid_step if grid_step else d_min / 3.0
    factors = xs.space_group().gridding()
    n_real = []
    for a, f in zip(xs.unit_cell().parameters()[:3], factors):
        n = max(1, int(math.ceil(a / step - 1e-6)))
        while n % f or not _is_5_smooth(n):
            n += 1
        n_real.append(n)
    return maptbx.crystal_gridding(
        unit_cell=xs.unit_cell(),
        space_group_info=xs.space_group_info(),
        symmetry_flags=maptbx.use_space_group_symmetry,
        pre_determined_n_real=tuple(n_real),
    )


def _is_5_smooth(n: int) -> bool:
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n == 1


def density_map(f_calc, gridding) -> np.ndarray:
    """Electron density without F000: FFT of F with true phases."""
    fft = miller.fft_map(gridding, f_calc)
    return fft.real_map_unpadded().as_numpy_array()


def patterson_map(f_amp, gridding) -> np.ndarray:
    """Patterson without F000: FFT of |F|^2 (cctbx.miller.patterson_map)."""
    patt_symmetry = derived_symmetry(f_amp.crystal_symmetry(), "patterson")
    f_patt = f_amp.customized_copy(crystal_symmetry=patt_symmetry)
    patt_gridding = maptbx.crystal_gridding(
        unit_cell=patt_symmetry.unit_cell(),
        space_group_info=patt_symmetry.space_group_info(),
        symmetry_flags=maptbx.use_space_group_symmetry,
        pre_determined_n_real=gridding.n_real(),
    )
    pm = miller.patterson_map(crystal_gridding=patt_gridding, f_patt=f_patt)
    return pm.real_map_unpadded().as_numpy_array()


def noisy_amplitudes(f_amp, relative_sigma: float, floor: float, rng, n_bins: int = 10):
    """|F| + N(0, sigma), sigma = relative_sigma |F| + floor <|F|>_shell, kept non-negative
    (a measurement's error model: proportional errors plus a background term that makes weak
    reflections relatively noisier). Returns an amplitude array with those sigmas."""
    from cctbx.array_family import flex

    f = f_amp.data().as_numpy_array()
    d = f_amp.d_spacings().data().as_numpy_array()
    s3 = 1.0 / d**3
    edges = np.linspace(s3.min(), s3.max() + 1e-12, n_bins + 1)
    shell = np.clip(np.searchsorted(edges, s3, side="right") - 1, 0, n_bins - 1)
    mean_f = np.array([f[shell == k].mean() if np.any(shell == k) else 0.0 for k in range(n_bins)])[shell]
    sigma = relative_sigma * f + floor * mean_f
    noisy = np.abs(f + sigma * rng.standard_normal(len(f)))
    out = f_amp.customized_copy(data=flex.double(noisy), sigmas=flex.double(sigma))
    return out.set_observation_type_xray_amplitude()


def scale_to_unit(m: np.ndarray) -> tuple[np.ndarray, float]:
    """Divide a map by max|m| (Pan et al.'s [-1, 1] scaling); return map and factor.

    The original map is ``scaled * factor``.
    """
    factor = float(max(m.max(), -m.min()))
    if not np.isfinite(factor) or factor == 0:
        return m.astype(np.float32), 1.0
    return (m / factor).astype(np.float32), factor


def intensity_grid_structure(xs, form_factor: str):
    """The P1 structure whose |F|^2 fills the intensity grid: ``xs`` expanded to P1, and with
    ``form_factor="atomic_number"`` point atoms of weight Z with no B (Scripps)."""
    from cctbx.eltbx import tiny_pse, xray_scattering

    work = xs.expand_to_p1(sites_mod_positive=True)
    if form_factor == "atomic_number":
        work = work.deep_copy_scatterers()
        work.set_u_iso(value=0)
        custom = {
            t: xray_scattering.gaussian(float(tiny_pse.table(t).atomic_number()))
            for t in set(sc.scattering_type for sc in work.scatterers())
        }
        work.scattering_type_registry(custom_dict=custom)
    return work


def hkl_cube_set(crystal_symmetry, h_max: int):
    """The integer cube -h_max..h_max in h, k and l as a P1 set (Friedel mates apart), in the
    order of the intensity grid (h slowest)."""
    p1 = crystal.symmetry(crystal_symmetry.unit_cell(), space_group_info=sgtbx.space_group_info("P1"))
    r = np.arange(-h_max, h_max + 1)
    hkl = np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)
    return miller.set(p1, flex.miller_index([tuple(map(int, x)) for x in hkl]), anomalous_flag=True)


def intensities_on_cube(f_p1, h_max: int) -> np.ndarray:
    """|F|^2 of a P1 miller array (complex F, or amplitudes) on the cube -h_max..h_max, shape
    (2h+1, 2h+1, 2h+1), axis order h, k, l; indices outside the cube are dropped and those not
    in the array are zero. Training (:func:`intensity_grid`) and inference
    (:func:`intensity_grid_from_amplitudes`) both fill the grid here."""
    n = 2 * h_max + 1
    if f_p1.is_complex_array():
        values = flex.norm(f_p1.data()).as_numpy_array()
    else:
        a = f_p1.data().as_numpy_array().astype(np.float64)
        values = a * a
    idx = np.asarray(f_p1.indices().as_vec3_double().as_numpy_array()).reshape(-1, 3).round().astype(int) + h_max
    inside = np.all((idx >= 0) & (idx < n), axis=1)
    out = np.zeros((n, n, n), np.float64)
    out[idx[inside, 0], idx[inside, 1], idx[inside, 2]] = values[inside]
    return out.astype(np.float32)


def intensity_grid(xs, h_max: int, form_factor: str) -> np.ndarray:
    """|F|^2 on the integer cube -h_max..h_max (Scripps, Cumby and Seth).

    ``form_factor="atomic_number"`` uses point atoms of weight Z with no B;
    ``"xray"`` uses the real X-ray form factors and the atoms' B. Absent
    reflections are zero, as the physics gives them; (0,0,0) is F000^2.
    Returned with shape (2h+1, 2h+1, 2h+1), axis order h, k, l.
    """
    work = intensity_grid_structure(xs, form_factor)
    ms = hkl_cube_set(work.crystal_symmetry(), h_max)
    f = ms.structure_factors_from_scatterers(work, algorithm="direct").f_calc()
    return intensities_on_cube(f, h_max)


def intensity_grid_from_amplitudes(f_amp, h_max: int, f000: float) -> np.ndarray:
    """The intensity grid of :func:`intensity_grid` from amplitudes (any space group, its
    asymmetric unit, on the scale of ``f000``): expanded to P1 with both Friedel mates, put
    on the cube, F000^2 at the origin. Reflections of the cube missing from the data are
    zero (as systematic absences are in training)."""
    p1 = f_amp.expand_to_p1()
    if not p1.anomalous_flag():
        p1 = p1.generate_bijvoet_mates()
    grid = intensities_on_cube(p1, h_max)
    grid[h_max, h_max, h_max] = float(f000) ** 2
    return grid


def voxel_atoms(
    xs, grid_points: int, sigma: float, frame: str, weight: str, box_edge: float | None = None
) -> np.ndarray:
    """Atoms as Gaussians of width ``sigma`` (Angstrom) on a voxel grid (Scripps).

    ``frame="fractional"``: an n^3 grid over the unit cell, periodic.
    ``frame="cartesian"``: an n^3 cube of edge ``box_edge`` (default the longest side of the
    unit cell's bounding box) from the bounding box's lowest corner (:func:`cartesian_box`),
    holding the unit-cell contents (sites in [0, 1)), not periodic.
    ``weight`` is ``atomic_number`` or ``unit``.
    """
    from cctbx.eltbx import tiny_pse

    p1 = xs.expand_to_p1(sites_mod_positive=True)
    frac = np.asarray(p1.sites_frac()).reshape(-1, 3)
    if weight == "atomic_number":
        w = np.array([tiny_pse.table(sc.scattering_type).atomic_number() for sc in p1.scatterers()], float)
    else:
        w = np.ones(len(frac))
    w = w * np.asarray(p1.scatterers().extract_occupancies())
    n = grid_points
    out = np.zeros((n, n, n))
    cutoff = 3.5 * sigma
    uc = xs.unit_cell()
    orth = np.array(uc.orthogonalization_matrix()).reshape(3, 3)
    if frame == "fractional":
        recip = np.array(uc.reciprocal_parameters()[:3])
        half = np.ceil(cutoff * recip * n).astype(int)
        offsets = [np.arange(-h, h + 1) for h in half]
        for x, wi in zip(frac, w):
            centre = np.floor(x * n).astype(int)
            idx = [centre[a] + offsets[a] for a in range(3)]
            g = np.stack(np.meshgrid(*idx, indexing="ij"), axis=-1).reshape(-1, 3)
            delta = g / n - x
            r2 = np.sum((delta @ orth.T) ** 2, axis=1)
            val = wi * np.exp(-r2 / (2 * sigma * sigma))
            gi = np.mod(g, n)
            np.add.at(out, (gi[:, 0], gi[:, 1], gi[:, 2]), val)
    elif frame == "cartesian":
        corner, edge = cartesian_box(uc, box_edge)
        spacing = edge / n
        cart = frac @ orth.T - corner
        half = int(math.ceil(cutoff / spacing))
        off = np.arange(-half, half + 1)
        for c, wi in zip(cart, w):
            centre = np.floor(c / spacing).astype(int)
            g = np.stack(np.meshgrid(*(centre[a] + off for a in range(3)), indexing="ij"), axis=-1).reshape(-1, 3)
            keep = np.all((g >= 0) & (g < n), axis=1)
            g = g[keep]
            r2 = np.sum((g * spacing - c) ** 2, axis=1)
            np.add.at(out, (g[:, 0], g[:, 1], g[:, 2]), wi * np.exp(-r2 / (2 * sigma * sigma)))
    else:  # pragma: no cover - PHIL choice guards this
        raise Sorry(f"voxel_atoms.frame: unknown frame {frame!r}")
    return out.astype(np.float32)


def cartesian_box(unit_cell, box_edge: float | None = None) -> tuple[np.ndarray, float]:
    """(lowest corner, edge) of the Cartesian voxel cube of a unit cell: the cube starts at the
    lowest corner of the bounding box of the cell's parallelepiped (Cartesian, Angstrom) and
    its edge is ``box_edge`` or, by default, the bounding box's longest side, so the whole
    parallelepiped (every site in [0, 1)) lies inside it, whatever the cell's angles."""
    orth = np.array(unit_cell.orthogonalization_matrix()).reshape(3, 3)
    corners = np.array(list(np.ndindex(2, 2, 2)), float) @ orth.T
    low = corners.min(axis=0)
    return low, float(box_edge or (corners.max(axis=0) - low).max())


def cartesian_box_fits(unit_cell, box_edge: float) -> bool:
    """Whether the cell's parallelepiped fits in a Cartesian cube of edge ``box_edge`` (its
    bounding box's longest side, the default edge of :func:`cartesian_box`, within 1%)."""
    return cartesian_box(unit_cell)[1] <= box_edge * 1.01


def cartesian_cube_to_cell(cube: np.ndarray, unit_cell, box_edge: float | None = None) -> np.ndarray:
    """A Cartesian voxel cube (:func:`voxel_atoms` with ``frame="cartesian"``: voxel g at
    corner + g * spacing, spacing = edge / n, :func:`cartesian_box`) resampled onto an n^3 grid over the unit cell
    (fractional voxels, periodic), by trilinear interpolation; points of the cell outside the
    cube read 0, as atoms outside it were left out of the cube. Gaussian tails that cross the
    cell's faces are not wrapped round (the cube is not periodic)."""
    n = cube.shape[0]
    corner, edge = cartesian_box(unit_cell, box_edge)
    orth = np.array(unit_cell.orthogonalization_matrix()).reshape(3, 3)
    f = np.stack(np.meshgrid(*(np.arange(k) / k for k in cube.shape), indexing="ij"), axis=-1).reshape(-1, 3)
    u = (f @ orth.T - corner) / (edge / n)  # fractional voxel indices in the cube
    base = np.floor(u).astype(int)
    t = u - base
    out = np.zeros(len(u))
    for offset in np.ndindex(2, 2, 2):  # the 8 neighbouring voxels
        g = base + np.array(offset)
        w = np.prod(np.where(np.array(offset) == 1, t, 1.0 - t), axis=1)
        inside = np.all((g >= 0) & (g < np.array(cube.shape)), axis=1)
        out[inside] += w[inside] * cube[g[inside, 0], g[inside, 1], g[inside, 2]]
    return out.reshape(cube.shape).astype(np.float32)
