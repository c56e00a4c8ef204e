"""Load a reference and predictions in any of the stack's formats and compare them.

The reference can be an MTZ with true phases, a model (PDB/mmCIF/CIF, from which
structure factors are computed at the prediction's resolution) or a CCP4 map.
A prediction can be an MTZ with map coefficients, phases with FOM, amplitudes
only, or a CCP4 map. Everything is brought to complex structure factors on
common reflections of the asymmetric unit (and to maps on a common grid) and
measured with :mod:`ml_phasing.metrics`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
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
from ml_phasing.metrics.atoms import _vectors, atom_recovery, interatomic_vector_match, peak_sites

MAP_EXTENSIONS = (".ccp4", ".map", ".mrc")
# The interatomic-vector check compares every predicted vector with every true one (in chunks
# of at most VECTOR_CHUNK_PAIRS, ~0.3 GB); above MAX_VECTOR_PAIRS pairs (~10 s) it is skipped.
MAX_VECTOR_PAIRS = 2e9
VECTOR_CHUNK_PAIRS = 1e7
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
    n_hydrogens_removed: int = 0  # H/D atoms left out of a model (reference.remove_hydrogens)

    def resolution(self) -> float | None:
        """The reference's own d_min (None for a model: any resolution can be computed)."""
        if self.kind == "mtz":
            return float(self.f.d_min())
        if self.kind == "map":
            return _map_resolution(self.map, self.symmetry)
        return None

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


def load_reference(params, path: str | None = None) -> Reference:
    r = params.reference
    path = path or r.file
    if path is None:
        raise Sorry("reference.file is required: an MTZ with true phases, a model, or a map.")
    override = _symmetry_override(params)
    if is_map(path):
        data, sym = _read_map(path, override)
        return Reference(path, "map", map=data, symmetry=sym)
    if is_model(path) and not _looks_like_reflection_cif(path):
        from ml_phasing.sources.structure_files import read_structure

        xs = read_structure(path, remove_hydrogens=False)
        n_h = 0
        if getattr(r, "remove_hydrogens", True):
            hd = xs.hd_selection()
            n_h = int(hd.count(True))
            if n_h == xs.scatterers().size():
                raise Sorry(f"The model {path} holds only H/D atoms; give reference.remove_hydrogens=False.")
            if n_h:
                xs = xs.select(~hd)
        return Reference(path, "model", structure=xs, symmetry=xs.crystal_symmetry(), n_hydrogens_removed=n_h)
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


@dataclass
class AmplitudeScores:
    """R factor of the predicted amplitudes against the reference, overall and per shell."""

    r_factor: float
    scale_fitted: bool
    restricted_to_predicted: bool  # only the reflections an extension predicted
    n: int
    shells: list


@dataclass
class PairResult:
    """One prediction judged against one reference: what the pair supports (phases for
    complex, phase-only and map predictions; amplitudes for complex, amplitude and map
    predictions; map-against-map comparisons on the grid), and the maps for the figures
    (``maps``, numpy, not part of the JSON). ``as_dict()`` is the JSON the programs write."""

    prediction: str
    prediction_kind: str
    reference: str
    reference_kind: str
    notes: list = field(default_factory=list)
    n_common: int | None = None
    d_min: float | None = None
    d_max: float | None = None
    phases: dict | None = None  # metrics.phase_statistics: overall, shells, origin shift, hand
    amplitudes: AmplitudeScores | None = None
    map_cc: float | None = None
    map_cc_aligned: float | None = None
    ssim: float | None = None
    patterson_consistency: float | None = None
    atoms: dict | None = None
    interatomic_vectors: dict | None = None
    map_comparison: dict = field(default_factory=dict)  # further figures of a map-against-map pair
    maps: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: dict) -> "PairResult":
        d = dict(d)
        maps = d.pop("_", {})
        names = {f.name for f in dataclasses.fields(cls)} - {"map_comparison", "maps"}
        known = {k: d.pop(k) for k in list(d) if k in names}
        if isinstance(known.get("amplitudes"), dict):
            known["amplitudes"] = AmplitudeScores(**known["amplitudes"])
        return cls(**known, map_comparison=d, maps=maps)

    def as_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("maps", "map_comparison") or value is None:
                continue
            out[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
        out.update(self.map_comparison)
        return out


def evaluate(reference: Reference, prediction: Prediction, params) -> PairResult:
    """All metrics that the pair supports, and the maps for the figures.

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
    result["notes"] = []
    if reference.kind == "map" and prediction.kind == "map":
        return PairResult.from_dict(evaluate_maps(reference, prediction, params, result))
    common = common_reflections(reference, prediction, params, result["notes"])
    result.update(n_common=common.n, d_min=float(common.d.min()), d_max=float(common.d.max()))
    extras = {}
    if prediction.kind in ("complex", "map", "phases"):
        extras = evaluate_phases(reference, prediction, common, params, result)
    if prediction.kind in ("complex", "amplitudes", "map"):
        result["amplitudes"] = evaluate_amplitudes(prediction, common, params)
    result["_"] = extras
    return PairResult.from_dict(result)


def evaluate_maps(reference: Reference, prediction: Prediction, params, result: dict) -> dict:
    """Map against map on one grid: CCs, phases of their structure factors, SSIM."""
    if reference.map.shape != prediction.map.shape:
        raise Sorry(
            f"Maps on different grids: {reference.path} {reference.map.shape}, "
            f"{prediction.path} {prediction.map.shape}."
        )
    d_min = common_resolution(
        reference.resolution(), _map_resolution(prediction.map, prediction.symmetry), params.d_min, result["notes"]
    )
    cm = compare_maps(
        reference.map,
        prediction.map,
        reference.symmetry.space_group_info(),
        reference.symmetry.unit_cell(),
        d_min=d_min,
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


def common_resolution(d_ref, d_pred, d_user, notes=None, tolerance=0.01):
    """The resolution both sides are compared to: the lower (larger d) of the reference's and
    the prediction's, or ``d_user`` when that is lower still. ``None`` stands for a side
    without a resolution of its own (a model). A 'Note:' for ``notes`` when the two differ
    (by more than ``tolerance``, relative) and the cut matters."""
    sides = [d for d in (d_ref, d_pred) if d is not None]
    d_common = max(sides) if sides else None
    if d_user is not None and (d_common is None or d_user > d_common):
        return d_user
    if (
        notes is not None
        and d_ref is not None
        and d_pred is not None
        and abs(d_ref - d_pred) > tolerance * min(d_ref, d_pred)
    ):
        notes.append(
            f"the reference extends to {d_ref:.2f} A and the prediction to {d_pred:.2f} A: both are cut "
            f"to the common resolution {d_common:.2f} A (set d_min= to choose another)."
        )
    return d_common


def common_reflections(reference: Reference, prediction: Prediction, params, notes=None) -> CommonReflections:
    """Both sides as structure factors on common reflections, cut to the common resolution
    (:func:`common_resolution`; a map's structure factors on the reference's set)."""
    d_ref = reference.resolution()
    if prediction.kind == "map":
        d_pred = _map_resolution(prediction.map, prediction.symmetry)
        d_min = common_resolution(d_ref, d_pred, params.d_min, notes)
        if reference.kind == "mtz":
            base = reference.f.resolution_filter(d_min=d_min)
        else:
            base = miller.build_set(prediction.symmetry, anomalous_flag=False, d_min=d_min)
        f_pred = _f_from_map(prediction.map, prediction.symmetry, base)
    else:
        f_pred = prediction.f
        d_min = common_resolution(d_ref, float(f_pred.d_min()), params.d_min, notes)
    f_pred_all = f_pred
    if reference.kind == "map":
        f_ref = _f_from_map(reference.map, reference.symmetry, f_pred.resolution_filter(d_min=d_min))
    else:
        f_ref = reference.structure_factors(d_min)
    f_pred = f_pred.resolution_filter(d_min=d_min)
    # common_sets, not two common_set calls: those keep each side's own order, and two files
    # that list their reflections differently were compared reflection against wrong reflection
    f_ref_c, f_pred_c = f_ref.common_sets(f_pred)
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
        extras["sites_true"] = np.array(reference.structure.sites_frac())
        n_atoms = reference.structure.scatterers().size()
        max_atoms = getattr(params.atoms, "max_atoms", None)
        if max_atoms is not None and n_atoms > max_atoms:
            result.setdefault("notes", []).append(
                f"atom matching skipped: the reference has {n_atoms} atoms, more than atoms.max_atoms={max_atoms} "
                "(its time grows as the cube of the number of atoms)."
            )
            return extras
        n_peaks = params.atoms.n_peaks or n_atoms
        sites, _ = peak_sites(pred_map, reference.symmetry, n_peaks)
        result["atoms"] = atom_recovery(reference.structure, sites, params.atoms.tolerance)
        n_pairs = (n_atoms * reference.symmetry.space_group().order_z()) ** 2 * (
            len(sites) * reference.symmetry.space_group().order_z()
        ) ** 2
        if n_pairs > MAX_VECTOR_PAIRS:
            result.setdefault("notes", []).append(
                "the interatomic-vector check is skipped: too many vectors in the unit cell "
                f"({n_atoms} atoms x {reference.symmetry.space_group().order_z()} symmetry operators)."
            )
        else:
            result["interatomic_vectors"] = interatomic_vectors_chunked(
                reference.structure, sites, params.atoms.tolerance
            )
    return extras


def interatomic_vectors_chunked(reference_structure, sites_frac, tolerance: float = 0.5) -> dict:
    """:func:`ml_phasing.metrics.atoms.interatomic_vector_match` (same precision and recall) in
    bounded memory: the predicted vectors are compared with the true ones a chunk at a time
    (that function holds all pairs at once: 3.3 GB for ~100 sites in the cell)."""
    xs = reference_structure
    sg = xs.space_group()
    true_v = _vectors(np.array(xs.sites_frac()), xs.unit_cell(), sg)
    pred_v = _vectors(np.asarray(sites_frac).reshape(-1, 3), xs.unit_cell(), sg)
    if len(pred_v) == 0 or len(true_v) == 0 or len(pred_v) * len(true_v) <= VECTOR_CHUNK_PAIRS:
        return interatomic_vector_match(reference_structure, sites_frac, tolerance)
    chunk = max(1, int(VECTOR_CHUNK_PAIRS // len(true_v)))
    tol2 = tolerance**2
    pred_hit = np.zeros(len(pred_v), bool)
    true_hit = np.zeros(len(true_v), bool)
    for start in range(0, len(pred_v), chunk):
        p = pred_v[start : start + chunk]
        d2 = np.zeros((len(p), len(true_v)))
        for k in range(3):
            d2 += (p[:, k, None] - true_v[None, :, k]) ** 2
        close = d2 <= tol2
        pred_hit[start : start + chunk] = close.any(axis=1)
        true_hit |= close.any(axis=0)
    return {
        "precision": float(pred_hit.mean()),
        "recall": float(true_hit.mean()),
        "n_true_vectors": int(len(true_v)),
        "n_predicted_vectors": int(len(pred_v)),
    }


def evaluate_amplitudes(prediction: Prediction, c: CommonReflections, params) -> AmplitudeScores:
    """R factor overall and per shell (on the predicted reflections only, for an extension)."""
    a_ref = np.abs(c.ref)
    a_pred = np.abs(c.f_pred.data().as_numpy_array())
    fit = params.fit_scale or prediction.kind == "map"  # a map has no absolute scale
    return AmplitudeScores(
        r_factor=r_factor(a_ref, a_pred, mask=c.predicted, fit_scale=fit),
        scale_fitted=fit,
        restricted_to_predicted=c.predicted is not None,
        n=int(c.predicted.sum()) if c.predicted is not None else int(len(a_ref)),
        shells=r_factor_by_shell(c.d, a_ref, a_pred, n_bins=params.n_bins, mask=c.predicted, fit_scale=fit),
    )


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


# -- many references against many predictions -----------------------------------------------


def file_stem(path: str) -> str:
    """A file's name without folder and last extension (example_00012_p2d.mtz -> example_00012_p2d)."""
    return os.path.splitext(os.path.basename(path))[0]


def reference_files(directory: str, pattern: str = "*.mtz") -> list:
    """The files of ``directory`` that match the shell ``pattern``, sorted (hidden files left out)."""
    names = sorted(n for n in os.listdir(directory) if not n.startswith(".") and fnmatch.fnmatch(n, pattern))
    paths = [os.path.join(directory, n) for n in names if os.path.isfile(os.path.join(directory, n))]
    if not paths:
        raise Sorry(f"No references in {directory}: no file matches reference.pattern={pattern}.")
    return paths


def pair_by_name(references, predictions):
    """Pair each prediction with the reference whose stem its own stem starts with.

    The rule: the prediction's stem equals the reference's stem, or starts with it followed by
    a character that is not a letter or digit (``example_00012_p2d`` and ``example_00012-2``
    pair with ``example_00012``, ``example_000123`` does not); where several reference stems
    fit, the longest wins. A reference may have several predictions.

    Returns ``(pairs, unpaired_references, unpaired_predictions)``, pairs as (reference,
    prediction) in the order of ``predictions``.
    """
    by_stem = {}
    for r in references:
        stem = file_stem(r)
        if stem in by_stem:
            raise Sorry(
                f"Two references share the name {stem}: {by_stem[stem]} and {r}; "
                "choose one kind with reference.pattern (e.g. *.mtz)."
            )
        by_stem[stem] = r
    same = {os.path.realpath(r) for r in references}
    pairs, unpaired_predictions, used = [], [], set()
    for p in predictions:
        if os.path.realpath(p) in same:
            continue  # a reference listed among the predictions (the same folder)
        stem = file_stem(p)
        candidates = [stem] + [stem[:i] for i in range(len(stem) - 1, 0, -1) if not stem[i].isalnum()]
        match = next((c for c in candidates if c in by_stem), None)
        if match is None:
            unpaired_predictions.append(p)
        else:
            pairs.append((by_stem[match], p))
            used.add(match)
    unpaired_references = [r for s, r in by_stem.items() if s not in used]
    return pairs, unpaired_references, unpaired_predictions


def read_pairs_file(path: str) -> list:
    """(reference, prediction) pairs from a list file: two paths a line, ``#`` comments, paths
    relative to the list file's folder; quotes for paths with spaces."""
    import shlex

    from ml_phasing.io.file_formats import refuse_pickle

    refuse_pickle(path, "pairs list")
    base = os.path.dirname(os.path.abspath(path))
    pairs, missing = [], []
    try:
        with open(path) as fh:
            lines = fh.read().splitlines()
    except UnicodeDecodeError:
        raise Sorry(f"{path} is not a text list of pairs.") from None
    for number, line in enumerate(lines, 1):
        try:
            fields = shlex.split(line, comments=True)
        except ValueError as e:
            raise Sorry(f"{path} line {number}: {e}.") from None
        if not fields:
            continue
        if len(fields) != 2:
            raise Sorry(
                f"{path} line {number}: expected two paths (reference prediction), found {len(fields)}: {line.strip()}"
            )
        ref, pred = (f if os.path.isabs(f) else os.path.normpath(os.path.join(base, f)) for f in fields)
        for f in (ref, pred):
            if not os.path.isfile(f):
                missing.append(f"{f} (line {number})")
        pairs.append((ref, pred))
    if missing:
        raise Sorry(f"Files in {path} not found: {', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else ""))
    if not pairs:
        raise Sorry(f"No pairs in {path}: one 'reference prediction' pair per line.")
    return pairs
