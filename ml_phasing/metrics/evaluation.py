"""Load a reference and predictions in any of the stack's formats and compare them.

The reference can be an MTZ with true phases, a model (PDB/mmCIF/CIF, from which
structure factors are computed at the prediction's resolution) or a CCP4 map.
A prediction can be an MTZ with map coefficients, phases with FOM, amplitudes
only, or a CCP4 map. Everything is brought to complex structure factors on
common reflections of the asymmetric unit (and to maps on a common grid) and
measured with :mod:`ml_phasing.metrics`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from cctbx import crystal, maptbx, miller
from cctbx.array_family import flex
from libtbx.utils import Sorry

from ml_phasing.io import map_io
from ml_phasing.examples import observables
from ml_phasing.io import reflection_io
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

MAP_EXTENSIONS = (".ccp4", ".map", ".mrc")
MODEL_EXTENSIONS = (".pdb", ".ent", ".cif", ".mmcif", ".res", ".ins")


def is_map(path: str) -> bool:
    return path.lower().endswith(MAP_EXTENSIONS)


def is_model(path: str) -> bool:
    return path.lower().endswith(MODEL_EXTENSIONS)


@dataclass
class Reference:
    path: str
    kind: str  # "mtz", "model", "map"
    f: object = None  # complex miller array (mtz)
    structure: object = None  # xray.structure (model)
    map: np.ndarray | None = None  # whole-cell map (map)
    symmetry: object = None  # crystal.symmetry

    def structure_factors(self, d_min: float):
        if self.kind == "mtz":
            return self.f.resolution_filter(d_min=d_min)
        if self.kind == "model":
            return observables.structure_factors(self.structure, d_min)
        return None


@dataclass
class Prediction:
    path: str
    kind: str  # "complex", "phases", "amplitudes", "map"
    f: object = None  # miller array (complex or amplitude)
    phases: np.ndarray | None = None
    fom: np.ndarray | None = None
    predicted: np.ndarray | None = None  # bool per reflection: predicted, not measured
    map: np.ndarray | None = None
    symmetry: object = None
    notes: list = field(default_factory=list)


def _symmetry_override(params):
    from ml_phasing.program_support import symmetry_from_params

    return symmetry_from_params(params.symmetry)


def _read_map(path: str, override=None):
    if not os.path.isfile(path):
        raise Sorry(f"Map file not found: {path}")
    from ml_phasing.io.file_formats import refuse_pickle

    refuse_pickle(path, "map")
    try:
        data, cell = map_io.read_ccp4_map(path)
    except Exception as e:  # noqa: BLE001 - iotbx raises several types for damaged maps
        raise Sorry(f"Cannot read map {path} (truncated or not a CCP4/MRC map?): {e}") from None
    if not np.all(np.isfinite(data)):
        raise Sorry(f"Map {path} contains NaN or infinite values.")
    sym = override or crystal.symmetry(unit_cell=cell, space_group_symbol="P1")
    return data, sym


def load_reference(params) -> Reference:
    r = params.reference
    path = r.file
    if path is None:
        raise Sorry("reference.file is required: an MTZ with true phases, a model, or a map.")
    override = _symmetry_override(params)
    if is_map(path):
        data, sym = _read_map(path, override)
        return Reference(path, "map", map=data, symmetry=sym)
    if is_model(path) and not _looks_like_reflection_cif(path):
        from ml_phasing.sources.structure_files import read_structure

        xs = read_structure(path, remove_hydrogens=False)
        return Reference(path, "model", structure=xs, symmetry=xs.crystal_symmetry())
    arrays = reflection_io.read_arrays(path)
    if override is not None:
        arrays = [a.customized_copy(crystal_symmetry=override).set_info(a.info()) for a in arrays]
    if r.labels:
        f = reflection_io.find_array(arrays, r.labels, path)
    else:
        f = reflection_io.auto_array(arrays, "complex", path)
    if f is None or not f.is_complex_array():
        raise Sorry(
            f"The reference {path} needs amplitudes with true phases (e.g. FC,PHIC); "
            f"available: {reflection_io.available_labels(arrays)}."
        )
    f = reflection_io.merged_non_anomalous(reflection_io.check_usable(f, path))
    return Reference(path, "mtz", f=f, symmetry=f.crystal_symmetry())


def _looks_like_reflection_cif(path):
    if not path.lower().endswith(".cif"):
        return False
    with open(path, errors="replace") as fh:
        head = fh.read(200000)
    return "_refln." in head or "_refln_index_h" in head


def load_prediction(path: str, params) -> Prediction:
    p = params.prediction
    override = _symmetry_override(params)
    if is_map(path):
        data, sym = _read_map(path, override)
        return Prediction(path, "map", map=data, symmetry=sym)
    arrays = reflection_io.read_arrays(path)
    if override is not None:
        arrays = [a.customized_copy(crystal_symmetry=override).set_info(a.info()) for a in arrays]
    if p.labels:
        f = reflection_io.find_array(arrays, p.labels, path)
        if not f.is_complex_array():
            f = reflection_io.require_amplitudes(f, p.labels, path)
    elif p.phase_label:
        f = None
    else:
        f = reflection_io.auto_array(arrays, "complex", path)
        if f is None:
            f = reflection_io.auto_array(arrays, "amplitude", path)
    if f is None and not p.phase_label:
        raise Sorry(
            f"No map coefficients, phases or amplitudes found in {path}; available: "
            f"{reflection_io.available_labels(arrays)}. Name them with prediction.labels."
        )
    if f is not None:
        if f.is_xray_intensity_array():
            f = f.french_wilson() if f.sigmas() is not None else f.f_sq_as_f()
        f = reflection_io.merged_non_anomalous(reflection_io.check_usable(f, path))
        kind = "complex" if f.is_complex_array() else "amplitudes"
    else:
        kind = "phases"
    pred = Prediction(path, kind, f=f, symmetry=f.crystal_symmetry() if f is not None else arrays[0].crystal_symmetry())
    if p.phase_label:
        pred.kind = "phases"
        base = f if f is not None else reflection_io.merged_non_anomalous(arrays[0])
        pred.f = base
        pred.phases = reflection_io.column_values(path, p.phase_label, base)
    if p.fom_label:
        pred.fom = reflection_io.column_values(path, p.fom_label, pred.f)
    if p.predicted_flag_label:
        pred.predicted = reflection_io.column_values(path, p.predicted_flag_label, pred.f) > 0.5
    return pred


def _check_compatible(ref_sym, pred_sym, ref_path, pred_path):
    if not ref_sym.unit_cell().is_similar_to(
        pred_sym.unit_cell(), relative_length_tolerance=0.01, absolute_angle_tolerance=1.0
    ):
        raise Sorry(f"Different unit cells: {ref_path} {cell_string(ref_sym)} and {pred_path} {cell_string(pred_sym)}.")
    if ref_sym.space_group() != pred_sym.space_group():
        raise Sorry(
            f"Different space groups: {ref_path} {ref_sym.space_group_info()} and {pred_path} "
            f"{pred_sym.space_group_info()}."
        )


def cell_string(symmetry) -> str:
    return "(" + ", ".join(f"{x:.3f}" for x in symmetry.unit_cell().parameters()) + ")"


def _f_from_map(map_array, symmetry, miller_set):
    data = flex.double(np.ascontiguousarray(map_array, dtype=np.float64))
    data.reshape(flex.grid(map_array.shape))
    ms = miller_set.customized_copy(crystal_symmetry=symmetry)
    return ms.structure_factors_from_map(map=data, use_scale=True, anomalous_flag=False, use_sg=False)


def evaluate(reference: Reference, prediction: Prediction, params) -> dict:
    """All metrics that the pair supports, as a JSON-ready dict (plus numpy extras under '_').

    Map against map is compared on the grid (:func:`evaluate_maps`); every other pair on the
    reflections the two have in common (:func:`common_reflections`): phases for complex,
    phase-only and map predictions (:func:`evaluate_phases`), amplitudes for complex,
    amplitude and map predictions (:func:`evaluate_amplitudes`)."""
    result = {
        "prediction": prediction.path,
        "prediction_kind": prediction.kind,
        "reference": reference.path,
        "reference_kind": reference.kind,
    }
    # A whole-cell map carries no space group (P1 header): it takes the other side's.
    if prediction.kind == "map" and prediction.symmetry.space_group().order_z() == 1:
        prediction.symmetry = crystal.symmetry(
            prediction.symmetry.unit_cell(), space_group_info=reference.symmetry.space_group_info()
        )
    if reference.kind == "map" and reference.symmetry.space_group().order_z() == 1:
        reference.symmetry = crystal.symmetry(
            reference.symmetry.unit_cell(), space_group_info=prediction.symmetry.space_group_info()
        )
    _check_compatible(reference.symmetry, prediction.symmetry, reference.path, prediction.path)
    if reference.kind == "map" and prediction.kind == "map":
        return evaluate_maps(reference, prediction, params, result)
    common = common_reflections(reference, prediction, params)
    result.update(n_common=common.n, d_min=float(common.d.min()), d_max=float(common.d.max()))
    extras = {}
    if prediction.kind in ("complex", "map", "phases"):
        extras = evaluate_phases(reference, prediction, common, params, result)
    if prediction.kind in ("complex", "amplitudes", "map"):
        result["amplitudes"] = evaluate_amplitudes(prediction, common, params)
    result["_"] = extras
    return result


def evaluate_maps(reference: Reference, prediction: Prediction, params, result: dict) -> dict:
    """Map against map on one grid: CCs, phases of their structure factors, SSIM."""
    if reference.map.shape != prediction.map.shape:
        raise Sorry(
            f"Maps on different grids: {reference.path} {reference.map.shape}, "
            f"{prediction.path} {prediction.map.shape}."
        )
    cm = compare_maps(
        reference.map,
        prediction.map,
        reference.symmetry.space_group_info(),
        reference.symmetry.unit_cell(),
        d_min=params.d_min,
        n_bins=params.n_bins,
        search_hand=params.search_hand,
        return_aligned=True,
    )
    aligned = cm.pop("aligned_map")
    result.update(cm)
    result["ssim"] = ssim3d(standardised(reference.map), standardised(aligned))
    result["_"] = {"ref_map": reference.map, "pred_map": aligned}
    return result


@dataclass
class CommonReflections:
    """The reference and the prediction on the reflections they share (same order)."""

    f_ref: object  # cctbx miller array of the reference
    f_pred: object  # cctbx miller array of the prediction
    h: np.ndarray  # Miller indices, float
    d: np.ndarray  # d spacings
    ref: np.ndarray  # reference values (complex, or amplitudes)
    fom: np.ndarray | None  # the prediction's FOMs, where it has them
    predicted: np.ndarray | None  # which reflections the prediction predicted (extension)
    index: np.ndarray  # positions of the common reflections in the prediction's own arrays

    @property
    def n(self) -> int:
        return int(self.f_ref.size())


def common_reflections(reference: Reference, prediction: Prediction, params) -> CommonReflections:
    """Both sides as structure factors on common reflections, to ``params.d_min`` or the
    prediction's resolution (a map's structure factors on the reference's set)."""
    if prediction.kind == "map":
        if reference.kind == "mtz":
            base = reference.f
        else:
            d = params.d_min or _map_resolution(prediction.map, prediction.symmetry)
            base = miller.build_set(prediction.symmetry, anomalous_flag=False, d_min=d)
        f_pred = _f_from_map(prediction.map, prediction.symmetry, base)
    else:
        f_pred = prediction.f
    f_pred_all = f_pred
    d_min = params.d_min or f_pred.d_min()
    if reference.kind == "map":
        f_ref = _f_from_map(reference.map, reference.symmetry, f_pred.resolution_filter(d_min=d_min))
    else:
        f_ref = reference.structure_factors(d_min)
    f_pred = f_pred.resolution_filter(d_min=d_min)
    f_ref_c = f_ref.common_set(f_pred)
    f_pred_c = f_pred.common_set(f_ref)
    if f_ref_c.size() == 0:
        raise Sorry(f"No reflections in common between {reference.path} and {prediction.path} (to {d_min:.2f} A).")
    # positions in the prediction's own arrays (FOM, phases, predicted flags), before any cut
    idx = _selection(f_pred_all, f_pred_c)
    return CommonReflections(
        f_ref=f_ref_c,
        f_pred=f_pred_c,
        h=np.asarray(f_ref_c.indices(), float),
        d=f_ref_c.d_spacings().data().as_numpy_array(),
        ref=f_ref_c.data().as_numpy_array(),
        fom=prediction.fom[idx] if prediction.fom is not None else None,
        predicted=prediction.predicted[idx] if prediction.predicted is not None else None,
        index=idx,
    )


def evaluate_phases(reference: Reference, prediction: Prediction, c: CommonReflections, params, result: dict) -> dict:
    """Phase errors (origin and hand aware), map CCs, SSIM, Patterson consistency and, with
    a model as reference, atom recovery; fills ``result`` and returns the maps for plots."""
    sgi = reference.symmetry.space_group_info()
    ref_c = c.ref
    if prediction.kind == "phases":
        pred_c = np.abs(ref_c) * np.exp(1j * np.radians(prediction.phases[c.index]))
        pred_c = np.where(np.isfinite(pred_c), pred_c, 0)
    else:
        pred_c = c.f_pred.data().as_numpy_array()
    stats = phase_statistics(
        c.h,
        c.d,
        ref_c,
        pred_c,
        sgi,
        fom=c.fom,
        n_bins=params.n_bins,
        search_origin=params.search_origin,
        search_hand=params.search_hand,
    )
    aligned = stats.pop("aligned_f_pred")
    result["phases"] = stats
    # Maps from the common reflections on one grid; aligned prediction.
    gridding = maptbx.crystal_gridding(
        reference.symmetry.unit_cell(),
        d_min=float(c.d.min()),
        resolution_factor=1 / 3.0,
        space_group_info=sgi,
        symmetry_flags=maptbx.use_space_group_symmetry,
    )
    # phase_statistics aligns only the reflections that carry a phase in both (non-zero,
    # finite): scatter them back; a zero coefficient (FOM 0) stays zero
    keep = (np.abs(ref_c) > 0) & (np.abs(pred_c) > 0) & np.isfinite(ref_c) & np.isfinite(pred_c)
    full = np.zeros(len(pred_c), complex)
    full[keep] = aligned
    f_pred_al = c.f_ref.customized_copy(data=flex.complex_double(full))
    ref_map = observables.density_map(c.f_ref, gridding)
    pred_map = observables.density_map(f_pred_al, gridding)
    result["map_cc_aligned"] = map_cc(ref_map, pred_map)
    raw_map = observables.density_map(c.f_ref.customized_copy(data=flex.complex_double(pred_c)), gridding)
    result["map_cc"] = map_cc(ref_map, raw_map)
    result["ssim"] = ssim3d(standardised(ref_map), standardised(pred_map))
    patt = observables.patterson_map(c.f_ref.as_amplitude_array(), gridding)
    result["patterson_consistency"] = patterson_consistency(patt, raw_map)
    extras = {"ref_map": ref_map, "pred_map": pred_map}
    if reference.structure is not None:
        n_peaks = params.atoms.n_peaks or reference.structure.scatterers().size()
        sites, _ = peak_sites(pred_map, reference.symmetry, n_peaks)
        result["atoms"] = atom_recovery(reference.structure, sites, params.atoms.tolerance)
        result["interatomic_vectors"] = interatomic_vector_match(reference.structure, sites, params.atoms.tolerance)
        extras["sites_true"] = np.array(reference.structure.sites_frac())
    return extras


def evaluate_amplitudes(prediction: Prediction, c: CommonReflections, params) -> dict:
    """R factor overall and per shell (on the predicted reflections only, for an extension)."""
    a_ref = np.abs(c.ref)
    a_pred = np.abs(c.f_pred.data().as_numpy_array())
    fit = params.fit_scale or prediction.kind == "map"  # a map has no absolute scale
    return {
        "r_factor": r_factor(a_ref, a_pred, mask=c.predicted, fit_scale=fit),
        "scale_fitted": fit,
        "restricted_to_predicted": c.predicted is not None,
        "n": int(c.predicted.sum()) if c.predicted is not None else int(len(a_ref)),
        "shells": r_factor_by_shell(c.d, a_ref, a_pred, n_bins=params.n_bins, mask=c.predicted, fit_scale=fit),
    }


def _selection(full, common) -> np.ndarray:
    """Positions in ``full`` of the reflections of ``common`` (same order)."""
    lookup = {h: i for i, h in enumerate(full.indices())}
    return np.array([lookup[h] for h in common.indices()], int)


def _map_resolution(map_array, symmetry):
    """A map's resolution: the finest d whose Fourier coefficient is not negligible.

    A map made by FFT from data to d_min has (float32-rounding) zeros beyond
    d_min, so its content ends there; a map with content up to the grid's
    Nyquist limit (e.g. a network's output) gets that limit.
    """
    from ml_phasing.metrics.maps import d_spacings, half_space_coefficients

    h, f, _ = half_space_coefficients(map_array)
    amp = np.abs(f)
    d = d_spacings(h, symmetry.unit_cell())
    significant = amp > 1e-4 * amp.max()
    return float(d[significant].min()) * (1 - 1e-6)


def standardised(m: np.ndarray) -> np.ndarray:
    """Zero mean, unit standard deviation (maps in different units become comparable)."""
    sd = m.std()
    return (m - m.mean()) / (sd if sd > 0 else 1.0)


def expand_prediction_paths(paths) -> list:
    """Files given directly, and reflection/map files inside directories, in sorted order."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            names = sorted(os.listdir(p))
            out += [
                os.path.join(p, n)
                for n in names
                if n.lower().endswith((".mtz",) + MAP_EXTENSIONS) and not n.startswith(".")
            ]
        else:
            out.append(p)
    if not out:
        raise Sorry("No predictions: give prediction.file= (files or directories).")
    return out
