"""Phase errors, overall and per resolution shell, after origin and hand alignment."""

from __future__ import annotations

import numpy as np

from ml_phasing.metrics.origin import align, origin_structure, transform


def shell_edges(d: np.ndarray, n_bins: int) -> np.ndarray:
    """Shell limits in d (Angstrom), from low to high resolution, equal volumes in d*^3."""
    s3 = 1.0 / np.asarray(d, float) ** 3
    lo, hi = s3.min(), s3.max()
    edges = np.linspace(lo, hi, n_bins + 1)
    return edges ** (-1.0 / 3.0)


def shell_index(d: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shell number (0 = lowest resolution) of each reflection."""
    s3 = 1.0 / np.asarray(d, float) ** 3
    e3 = 1.0 / edges**3
    return np.clip(np.searchsorted(e3, s3, side="right") - 1, 0, len(edges) - 2)


def phase_difference(f_ref: np.ndarray, f_pred: np.ndarray) -> np.ndarray:
    """|phi_ref - phi_pred| in degrees, wrapped to [0, 180]."""
    return np.degrees(np.abs(np.angle(np.asarray(f_ref) * np.conj(np.asarray(f_pred)))))


def _summary(dphi, fom, f_abs):
    n = len(dphi)
    if n == 0:
        return {
            "n": 0,
            "mean_phase_error": None,
            "fom_weighted_phase_error": None,
            "f_weighted_phase_error": None,
            "fraction_below_60": None,
        }
    fom_sum = fom.sum()
    return {
        "n": int(n),
        "mean_phase_error": float(dphi.mean()),
        "fom_weighted_phase_error": float((fom * dphi).sum() / fom_sum) if fom_sum > 0 else None,
        "f_weighted_phase_error": float((f_abs * dphi).sum() / f_abs.sum()) if f_abs.sum() > 0 else None,
        "fraction_below_60": float(np.mean(dphi < 60.0)),
    }


def phase_statistics(
    h,
    d,
    f_ref,
    f_pred,
    space_group_info=None,
    fom=None,
    n_bins: int = 10,
    search_origin: bool = True,
    search_hand: bool = True,
) -> dict:
    """cphasematch-like comparison of predicted phases with reference phases.

    Arguments are numpy arrays over the same reflections: indices (n, 3),
    d-spacings, complex reference and predicted F, and optional figures of merit.
    Returns overall and per-shell mean, FOM-weighted and |F|-weighted phase
    errors and the fraction below 60 degrees, with the alignment used.
    """
    h = np.asarray(h, float)
    d = np.asarray(d, float)
    f_ref = np.asarray(f_ref, complex)
    f_pred = np.asarray(f_pred, complex)
    fom = np.ones(len(h)) if fom is None else np.asarray(fom, float)
    keep = (np.abs(f_ref) > 0) & (np.abs(f_pred) > 0) & np.isfinite(f_ref) & np.isfinite(f_pred)
    h, d, f_ref, f_pred, fom = h[keep], d[keep], f_ref[keep], f_pred[keep], fom[keep]
    if search_origin and len(h):
        alignment = align(h, f_ref, f_pred, space_group_info, weights=np.abs(f_ref) * fom, search_hand=search_hand)
        hand_t = origin_structure(space_group_info).hand_translation if space_group_info else None
        f_pred = transform(h, f_pred, alignment.shift, alignment.inverted, hand_t)
    else:
        alignment = None
    dphi = phase_difference(f_ref, f_pred)
    f_abs = np.abs(f_ref)
    result = {"overall": _summary(dphi, fom, f_abs), "shells": []}
    if alignment is not None:
        result.update(
            origin_shift=list(alignment.shift), inverted_hand=alignment.inverted, alignment_score=alignment.score
        )
    if len(h):
        edges = shell_edges(d, n_bins)
        idx = shell_index(d, edges)
        for b in range(n_bins):
            sel = idx == b
            result["shells"].append(
                {"d_max": float(edges[b]), "d_min": float(edges[b + 1]), **_summary(dphi[sel], fom[sel], f_abs[sel])}
            )
    result["aligned_f_pred"] = f_pred
    return result
