"""Map comparisons: correlation (plain and origin/hand-aligned), SSIM, Patterson consistency.

Maps are numpy arrays over a whole unit cell, indexed [x, y, z] along a, b, c.
Their Fourier coefficients are taken in the crystallographic convention
F(h) = conj(FFT(map))(h) / N, on the half space of ``numpy.fft.rfftn``.
"""

from __future__ import annotations

import numpy as np
from cctbx import sgtbx, uctbx
from libtbx.utils import Sorry

from ml_phasing.metrics.origin import align, origin_structure, transform
from ml_phasing.metrics.phases import phase_statistics


def map_cc(a: np.ndarray, b: np.ndarray, mask=None) -> float:
    """Pearson correlation of two maps on the same grid (inside ``mask`` if given)."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    if a.shape != b.shape:
        raise Sorry(f"Maps are on different grids: {a.shape} and {b.shape}.")
    if mask is not None:
        a, b = a[mask], b[mask]
    a = a.ravel() - a.mean()
    b = b.ravel() - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def half_space_coefficients(m: np.ndarray):
    """(h (n, 3), F (n,), multiplicity (n,)) of a real map, F000 excluded."""
    n = np.array(m.shape)
    f = np.conj(np.fft.rfftn(np.asarray(m, float))) / np.prod(n)
    k0 = np.fft.fftfreq(n[0], 1.0 / n[0])
    k1 = np.fft.fftfreq(n[1], 1.0 / n[1])
    k2 = np.arange(f.shape[2])
    h = np.stack(np.meshgrid(k0, k1, k2, indexing="ij"), -1).reshape(-1, 3)
    mult = np.where((h[:, 2] > 0) & ~((n[2] % 2 == 0) & (h[:, 2] == n[2] // 2)), 2.0, 1.0)
    f = f.reshape(-1)
    keep = np.any(h != 0, axis=1)
    return h[keep], f[keep], mult[keep]


def d_spacings(h: np.ndarray, unit_cell) -> np.ndarray:
    """d (Angstrom) of indices h in a cell (numpy, via the reciprocal metric)."""
    uc = unit_cell if hasattr(unit_cell, "reciprocal_metrical_matrix") else uctbx.unit_cell(tuple(unit_cell))
    g = np.array(uc.reciprocal_metrical_matrix())  # a*^2 b*^2 c*^2 a*b* a*c* b*c*
    g = np.array([[g[0], g[3], g[4]], [g[3], g[1], g[5]], [g[4], g[5], g[2]]])
    s2 = np.einsum("ni,ij,nj->n", h, g, h)
    with np.errstate(divide="ignore"):
        return 1.0 / np.sqrt(s2)


def compare_maps(
    reference: np.ndarray,
    predicted: np.ndarray,
    space_group_info=None,
    unit_cell=None,
    d_min: float | None = None,
    n_bins: int = 10,
    search_hand: bool = True,
    return_aligned: bool = False,
) -> dict:
    """Correlation and phase agreement of two maps after the best allowed origin shift and hand.

    Without ``unit_cell`` only the correlations are computed; with it (and
    optionally ``d_min``) also the |F_ref|-weighted phase errors per shell.
    """
    reference = np.asarray(reference, float)
    predicted = np.asarray(predicted, float)
    if reference.shape != predicted.shape:
        raise Sorry(f"Maps are on different grids: {reference.shape} and {predicted.shape}.")
    if not (np.all(np.isfinite(reference)) and np.all(np.isfinite(predicted))):
        raise Sorry("A map contains NaN or infinite values.")
    sgi = space_group_info or sgtbx.space_group_info("P1")
    h, f1, mult = half_space_coefficients(reference)
    _, f2, _ = half_space_coefficients(predicted)
    # Coefficients that are zero up to rounding (absences, beyond the data) carry
    # no phase: leave them out of the alignment and the phase statistics.
    sel = (np.abs(f1) > 1e-6 * np.abs(f1).max()) & (np.abs(f2) > 1e-6 * np.abs(f2).max())
    d = None
    if unit_cell is not None:
        d = d_spacings(h, unit_cell)
        if d_min is not None:
            sel &= d >= d_min
    alignment = align(
        h[sel], f1[sel], f2[sel], sgi, weights=np.abs(f1[sel]) * np.abs(f2[sel]) * mult[sel], search_hand=search_hand
    )
    hand_t = origin_structure(sgi).hand_translation
    f2a = transform(h, f2, alignment.shift, alignment.inverted, hand_t)
    num = np.sum(mult * np.real(f1 * np.conj(f2a)))
    den = np.sqrt(np.sum(mult * np.abs(f1) ** 2) * np.sum(mult * np.abs(f2a) ** 2))
    result = {
        "map_cc": map_cc(reference, predicted),
        "map_cc_aligned": float(num / den) if den > 0 else 0.0,
        "origin_shift": list(alignment.shift),
        "inverted_hand": alignment.inverted,
    }
    if d is not None:
        stats = phase_statistics(h[sel], d[sel], f1[sel], f2a[sel], sgi, fom=None, n_bins=n_bins, search_origin=False)
        stats.pop("aligned_f_pred")
        result["phases"] = stats
    if return_aligned:
        result["aligned_map"] = shift_map(predicted, alignment.shift, alignment.inverted, hand_t)
    return result


def shift_map(m: np.ndarray, shift, inverted: bool = False, hand_translation=None) -> np.ndarray:
    """The map after inversion (optional) and a fractional shift, exact in Fourier space."""
    n = np.array(m.shape)
    f = np.conj(np.fft.rfftn(np.asarray(m, float)))
    k0 = np.fft.fftfreq(n[0], 1.0 / n[0])
    k1 = np.fft.fftfreq(n[1], 1.0 / n[1])
    k2 = np.arange(f.shape[2])
    h = np.stack(np.meshgrid(k0, k1, k2, indexing="ij"), -1).reshape(-1, 3)
    g = transform(h, f.reshape(-1), shift, inverted, hand_translation or (0, 0, 0)).reshape(f.shape)
    return np.fft.irfftn(np.conj(g), s=m.shape, axes=(0, 1, 2))


def _gaussian_filter_periodic(m: np.ndarray, sigma: float) -> np.ndarray:
    n = m.shape
    freqs = np.meshgrid(*[np.fft.fftfreq(k) for k in n[:2]], np.fft.rfftfreq(n[2]), indexing="ij")
    transfer = np.exp(-2 * np.pi**2 * sigma**2 * sum(f**2 for f in freqs))
    return np.fft.irfftn(np.fft.rfftn(m) * transfer, s=n, axes=(0, 1, 2))


def ssim3d(a: np.ndarray, b: np.ndarray, sigma: float = 1.5, data_range: float | None = None) -> float:
    """Mean structural similarity (Wang et al. 2004) in 3D with a periodic Gaussian window.

    ``sigma`` in voxels (1.5, as in the 2D original); ``data_range`` defaults
    to the span of ``a``. Constants K1 = 0.01, K2 = 0.03.
    """
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    L = data_range if data_range is not None else float(a.max() - a.min()) or 1.0
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    mu_a = _gaussian_filter_periodic(a, sigma)
    mu_b = _gaussian_filter_periodic(b, sigma)
    var_a = _gaussian_filter_periodic(a * a, sigma) - mu_a**2
    var_b = _gaussian_filter_periodic(b * b, sigma) - mu_b**2
    cov = _gaussian_filter_periodic(a * b, sigma) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


def autocorrelation(density: np.ndarray) -> np.ndarray:
    """sum_x rho(x) rho(x + u) on the same grid (periodic), divided by the voxel count."""
    f = np.fft.rfftn(np.asarray(density, float))
    return np.fft.irfftn(np.abs(f) ** 2, s=density.shape, axes=(0, 1, 2)) / density.size


def patterson_consistency(patterson: np.ndarray, density: np.ndarray) -> float:
    """CC between a Patterson and the autocorrelation of a density (Pan et al.'s fft_loss).

    The mean (F000) is removed from both, so it does not matter whether either
    includes F000.
    """
    return map_cc(patterson, autocorrelation(np.asarray(density, float) - np.mean(density)))
