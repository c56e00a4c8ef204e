"""Amplitude R factors (Khaibrakhmanov thesis, eq. 2.2)."""

from __future__ import annotations

import numpy as np

from ml_phasing.metrics.phases import shell_edges, shell_index


def _scale(f_ref, f_pred):
    """Least-squares scale k minimising sum (f_ref - k f_pred)^2."""
    den = float(np.sum(f_pred * f_pred))
    return float(np.sum(f_ref * f_pred)) / den if den > 0 else 1.0


def r_factor(f_ref, f_pred, mask=None, fit_scale: bool = False) -> float:
    """R = sum | |F_pred| - |F_ref| | / sum |F_ref| over the reflections in ``mask``.

    ``fit_scale`` first scales F_pred to F_ref by least squares.
    """
    f_ref = np.abs(np.asarray(f_ref, complex if np.iscomplexobj(f_ref) else float))
    f_pred = np.abs(np.asarray(f_pred, complex if np.iscomplexobj(f_pred) else float))
    if mask is not None:
        mask = np.asarray(mask, bool)
        f_ref, f_pred = f_ref[mask], f_pred[mask]
    if len(f_ref) == 0 or f_ref.sum() == 0:
        return float("nan")
    k = _scale(f_ref, f_pred) if fit_scale else 1.0
    return float(np.sum(np.abs(k * f_pred - f_ref)) / np.sum(f_ref))


def r_factor_by_shell(d, f_ref, f_pred, n_bins: int = 10, mask=None, fit_scale: bool = False) -> list:
    """R per resolution shell (shell limits as :func:`shell_edges`); the scale is fitted overall."""
    d = np.asarray(d, float)
    f_ref = np.abs(np.asarray(f_ref))
    f_pred = np.abs(np.asarray(f_pred))
    mask = np.ones(len(d), bool) if mask is None else np.asarray(mask, bool)
    k = _scale(f_ref[mask], f_pred[mask]) if fit_scale else 1.0
    edges = shell_edges(d[mask], n_bins) if mask.any() else np.array([1.0, 1.0])
    idx = shell_index(d, edges)
    shells = []
    for b in range(len(edges) - 1):
        sel = mask & (idx == b)
        shells.append(
            {
                "d_max": float(edges[b]),
                "d_min": float(edges[b + 1]),
                "n": int(sel.sum()),
                "r_factor": r_factor(f_ref[sel], k * f_pred[sel]) if sel.any() else None,
            }
        )
    return shells
