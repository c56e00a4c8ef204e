"""Atom recovery from a map: peak search, Euclidean model matching, interatomic vectors."""

from __future__ import annotations

import numpy as np
from cctbx import crystal, maptbx, sgtbx
from cctbx import euclidean_model_matching as emma
from cctbx.array_family import flex


def peak_sites(
    map_array: np.ndarray, crystal_symmetry, max_peaks: int, min_distance: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Fractional sites and heights of the highest map maxima (cctbx peak search).

    The search uses the map's space group when the grid is compatible with it
    (so each peak is reported once), otherwise P1.
    """
    data = flex.double(np.ascontiguousarray(map_array, dtype=np.float64))
    data.reshape(flex.grid(map_array.shape))
    cs = crystal_symmetry
    try:
        gridding = maptbx.crystal_gridding(
            unit_cell=cs.unit_cell(),
            space_group_info=cs.space_group_info(),
            pre_determined_n_real=map_array.shape,
            symmetry_flags=maptbx.use_space_group_symmetry,
        )
        tags = maptbx.crystal_gridding_tags(gridding)
    except RuntimeError:
        cs = crystal.symmetry(cs.unit_cell(), "P1")
        gridding = maptbx.crystal_gridding(
            unit_cell=cs.unit_cell(), space_group_info=cs.space_group_info(), pre_determined_n_real=map_array.shape
        )
        tags = maptbx.crystal_gridding_tags(gridding)
    params = maptbx.peak_search_parameters(
        peak_search_level=1,
        max_peaks=max_peaks * 4,
        interpolate=True,
        min_distance_sym_equiv=0.5,
        min_cross_distance=min_distance,
        max_clusters=max_peaks,
    )
    clusters = tags.peak_search(parameters=params, map=data).all(max_clusters=max_peaks)
    return np.array(clusters.sites()).reshape(-1, 3), np.array(clusters.heights())


def atom_recovery(reference_structure, sites_frac, tolerance: float = 0.5) -> dict:
    """Match predicted sites to the true atoms with cctbx euclidean_model_matching.

    Origin shifts and the hand allowed by the space group are searched (emma).
    Returns the fraction of true atoms matched within ``tolerance`` Angstrom,
    the rms distance of the matched pairs, and the counts.
    """
    xs = reference_structure
    sps = crystal.special_position_settings(xs.crystal_symmetry(), min_distance_sym_equiv=0.5)
    ref = emma.model(sps, [emma.position(sc.label, sc.site) for sc in xs.scatterers()])
    pred = emma.model(sps, [emma.position(f"P{i}", tuple(map(float, s))) for i, s in enumerate(sites_frac)])
    n_true = xs.scatterers().size()
    if len(sites_frac) == 0 or n_true == 0:
        return {"fraction_matched": 0.0, "rms": None, "n_matched": 0, "n_true": n_true, "n_predicted": len(sites_frac)}
    matches = emma.model_matches(ref, pred, tolerance=tolerance, models_are_diffraction_index_equivalent=True)
    if matches.n_matches() == 0:
        return {"fraction_matched": 0.0, "rms": None, "n_matched": 0, "n_true": n_true, "n_predicted": len(sites_frac)}
    best = matches.refined_matches[0]
    return {
        "fraction_matched": len(best.pairs) / n_true,
        "rms": float(best.rms),
        "n_matched": len(best.pairs),
        "n_true": n_true,
        "n_predicted": len(sites_frac),
    }


def _vectors(sites_frac, unit_cell, space_group) -> np.ndarray:
    """All interatomic vectors (Cartesian, shortest periodic image) of the unit-cell contents."""
    ops = [np.array(op.r().as_double()).reshape(3, 3) for op in space_group.all_ops()]
    ts = [np.array(op.t().as_double()) for op in space_group.all_ops()]
    frac = np.concatenate([np.asarray(sites_frac) @ r.T + t for r, t in zip(ops, ts)])
    frac = np.mod(frac, 1.0)
    diff = frac[:, None, :] - frac[None, :, :]
    diff = diff - np.round(diff)
    iu = np.triu_indices(len(frac), 1)
    orth = np.array(unit_cell.orthogonalization_matrix()).reshape(3, 3)
    v = diff[iu] @ orth.T
    return np.concatenate([v, -v])


def interatomic_vector_match(reference_structure, sites_frac, tolerance: float = 0.5) -> dict:
    """The Scripps check: vectors between predicted maxima against true interatomic vectors.

    Translation-invariant. ``precision``: share of predicted vectors within
    ``tolerance`` of a true one; ``recall``: share of true vectors reproduced.
    """
    xs = reference_structure
    sg = xs.space_group()
    true_v = _vectors(np.array(xs.sites_frac()), xs.unit_cell(), sg)
    pred_v = _vectors(np.asarray(sites_frac).reshape(-1, 3), xs.unit_cell(), sg)
    if len(pred_v) == 0 or len(true_v) == 0:
        return {"precision": 0.0, "recall": 0.0, "n_true_vectors": len(true_v), "n_predicted_vectors": len(pred_v)}
    d = np.linalg.norm(pred_v[:, None, :] - true_v[None, :, :], axis=-1)
    return {
        "precision": float(np.mean(d.min(axis=1) <= tolerance)),
        "recall": float(np.mean(d.min(axis=0) <= tolerance)),
        "n_true_vectors": int(len(true_v)),
        "n_predicted_vectors": int(len(pred_v)),
    }


def p1(unit_cell):
    return crystal.symmetry(unit_cell, space_group_info=sgtbx.space_group_info("P1"))
