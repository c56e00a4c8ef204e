"""Reading reflection data (MTZ, SHELX, mmCIF) through iotbx with clear errors.

Every failure a user can cause (missing file, truncated file, wrong labels,
missing symmetry, NaN values) becomes one Sorry that says what is there.
"""

from __future__ import annotations

import os

import numpy as np
from cctbx import miller
from libtbx.utils import Sorry

# Preferred labels when the user names none, in order.
COMPLEX_PREFERENCE = ("FWT,PHWT", "FC,PHIC", "F,PHI", "FC,PHIFC", "2FOFCWT,PH2FOFCWT")
AMPLITUDE_PREFERENCE = (
    "F_EXT,SIGF_EXT",
    "F,SIGF",
    "FP,SIGFP",
    "F-obs,SIGF-obs",
    "FOBS,SIGFOBS",
    "IMEAN,SIGIMEAN",
    "I,SIGI",
    "I-obs,SIGI-obs",
)


def read_arrays(path: str) -> list:
    """All miller arrays in a reflection file."""
    from ml_phasing.io.file_formats import reflection_file

    if not os.path.isfile(path):
        raise Sorry(f"Reflection file not found: {path}")
    if os.path.getsize(path) == 0:
        raise Sorry(f"Reflection file is empty: {path}")
    try:
        arrays = reflection_file(path).as_miller_arrays()
    except Sorry:
        raise
    except Exception as e:  # iotbx raises RuntimeError, AssertionError, ... on damaged files
        raise Sorry(f"Cannot read {path} (truncated or not a reflection file?): {e}") from None
    if not arrays:
        raise Sorry(f"No reflection data found in {path}.")
    return arrays


def available_labels(arrays) -> str:
    return ", ".join(a.info().label_string() for a in arrays)


def find_array(arrays, labels: str, path: str):
    """The array whose labels are ``labels`` ("FC,PHIC"), or whose first label is it."""
    wanted = [x.strip() for x in labels.split(",") if x.strip()]
    for a in arrays:
        got = a.info().labels or []
        if got[: len(wanted)] == wanted or a.info().label_string() == labels:
            return a
    raise Sorry(f"No columns {labels!r} in {path}; available: {available_labels(arrays)}.")


def auto_array(arrays, kind: str, path: str):
    """Pick the one obvious array of a kind ("complex" or "amplitude")."""
    if kind == "complex":
        candidates = [a for a in arrays if a.is_complex_array()]
        preference = COMPLEX_PREFERENCE
    else:
        candidates = [a for a in arrays if a.is_xray_amplitude_array() or a.is_xray_intensity_array()]
        preference = AMPLITUDE_PREFERENCE
    if not candidates:
        return None
    for labels in preference:
        for a in candidates:
            if a.info().label_string() == labels:
                return a
    if len(candidates) == 1:
        return candidates[0]
    if kind == "amplitude":  # a CIF with measured and calculated columns: the measured ones
        measured = [a for a in candidates if "calc" not in a.info().label_string().lower()]
        if len(measured) == 1:
            return measured[0]
    raise Sorry(
        f"Several {kind} column sets in {path} ({', '.join(a.info().label_string() for a in candidates)}); "
        "choose one with the labels parameter."
    )


def check_usable(array, path: str):
    """Symmetry present, no NaN, not anomalous-only."""
    cs = array.crystal_symmetry()
    if cs is None or cs.unit_cell() is None or cs.space_group_info() is None:
        raise Sorry(f"{path} has no unit cell or space group; give them with the symmetry parameters.")
    data = array.data()
    values = np.abs(data.as_numpy_array()) if array.is_complex_array() else data.as_numpy_array()
    if not np.all(np.isfinite(values)):
        raise Sorry(f"{path} column {array.info().label_string()} contains NaN or infinite values.")
    if array.size() == 0:
        raise Sorry(f"{path} column {array.info().label_string()} has no reflections.")
    return array


def merged_non_anomalous(array):
    """Average Friedel mates and map to the asymmetric unit."""
    if array.anomalous_flag():
        array = array.average_bijvoet_mates()
    return array.map_to_asu()


def column_values(path: str, label: str, miller_set) -> np.ndarray:
    """Values of a single real column (e.g. PHIB, FOM) on the indices of ``miller_set`` (NaN where absent)."""
    import iotbx.mtz

    try:
        mtz = iotbx.mtz.object(path)
    except Exception as e:  # noqa: BLE001
        raise Sorry(f"Cannot read {path} as MTZ: {e}") from None
    labels = [c.label() for c in mtz.columns()]
    if label not in labels:
        raise Sorry(f"No column {label!r} in {path}; available: {', '.join(labels)}.")
    extracted = mtz.extract_reals(column_label=label)
    ms = miller.set(miller_set.crystal_symmetry(), extracted.indices, anomalous_flag=False)
    arr = miller.array(ms, extracted.data).map_to_asu()
    lookup = dict(zip(arr.indices(), arr.data()))
    return np.array([lookup.get(h, np.nan) for h in miller_set.indices()])


def read_observed_amplitudes(path: str, labels: str | None = None, symmetry=None, arrays=None):
    """Observed |F| in the asymmetric unit from MTZ, SHELX HKLF 4 (.hkl) or mmCIF reflections.

    ``arrays``: the miller arrays of ``path`` already in memory (from the DataManager, which
    a Phenix GUI or a ``run_program`` caller may have filled without a file); the file is
    then not read. Intensities are converted with cctbx's French-Wilson procedure (or |F| = sqrt(I)
    when there are no sigmas); Friedel mates are averaged. ``symmetry`` (a
    crystal.symmetry) supplies or overrides the cell and space group, which a
    SHELX .hkl file lacks. Returns (amplitude array, description dict).
    """
    from ml_phasing.io.file_formats import detect

    notes = []  # what was changed without the user asking for it in so many words: said in the log
    if arrays is None and path.lower().endswith(".hkl") and detect(path) != "cif":  # a CIF named .hkl: CIF
        symmetry = symmetry or shelx_pair_symmetry(path)
        if symmetry is None:
            raise Sorry(
                f"{path} is a SHELX .hkl file, which has no cell or space group: give "
                "symmetry.unit_cell= and symmetry.space_group=, or put its .ins/.res beside it."
            )
        arrays = _read_shelx(path, symmetry)
    else:
        if arrays is None:
            arrays = read_arrays(path)
        elif not arrays:
            raise Sorry(f"No reflection data in {path}.")
        if symmetry is not None:
            notes.extend(_override_notes(arrays, symmetry))
            arrays = [
                a.customized_copy(
                    crystal_symmetry=combined_symmetry(
                        symmetry.unit_cell() or a.unit_cell(), symmetry.space_group_info() or a.space_group_info()
                    )
                ).set_info(a.info())
                for a in arrays
            ]
    if labels:
        f = require_amplitudes(find_array(arrays, labels, path), labels, path)
    else:
        f = auto_array(arrays, "amplitude", path)
        if f is None:
            raise Sorry(
                f"No amplitude or intensity columns in {path}; available: {available_labels(arrays)}. "
                "Anomalous differences alone (e.g. DANO) cannot be used."
            )
    check_usable(f, path)
    if f.sigmas() is not None and not np.all(np.isfinite(f.sigmas().as_numpy_array())):
        raise Sorry(f"{path} column {f.info().label_string()} has NaN sigmas.")
    label = f.info().label_string() if f.info() is not None else "?"
    was_intensity = f.is_xray_intensity_array()
    if was_intensity:
        if f.sigmas() is not None:
            from cctbx import french_wilson

            f = french_wilson.french_wilson_scale(miller_array=f.merge_equivalents().array(), log=_null())
        else:
            f = f.f_sq_as_f()
    else:
        if np.any(f.data().as_numpy_array() < 0):
            raise Sorry(
                f"{path} column {label} has negative amplitudes; are these intensities? "
                "Give the intensity columns instead."
            )
        f = f.set_observation_type_xray_amplitude()
    n_in = f.size()
    f = merged_non_anomalous(f).merge_equivalents().array().eliminate_sys_absent()
    f = f.select(f.data() > 0)
    if f.size() != n_in:
        notes.append(
            f"{n_in} reflections in the file, {f.size()} unique positive amplitudes in "
            f"{f.space_group_info()} after merging symmetry equivalents and Friedel mates"
        )
    if f.size() == 0:
        raise Sorry(f"No positive amplitudes in {path}.")
    return f, {
        "file": path,
        "labels": label,
        "intensities_converted": was_intensity,
        "n_reflections": int(f.size()),
        "d_min": float(f.d_min()),
        "space_group": str(f.space_group_info()),
        "unit_cell": [round(x, 4) for x in f.unit_cell().parameters()],
        "notes": notes,
    }


def cut_at(f_obs, d_min: float | None, info: dict):
    """``f_obs`` cut at ``d_min=`` (None: as it is), with a Sorry for a d_min finer than the
    data and a note in ``info['notes']`` for the log."""
    if d_min is None:
        return f_obs
    if d_min < f_obs.d_min() - 1e-3:
        raise Sorry(f"d_min={d_min} is finer than the data ({f_obs.d_min():.2f} A).")
    cut = f_obs.resolution_filter(d_min=d_min)
    info["notes"].append(f"data cut at d_min={d_min} A (d_min=): {cut.size()} of {f_obs.size()} reflections kept")
    return cut


def _override_notes(arrays, symmetry) -> list:
    """Say where symmetry.space_group= / unit_cell= replace what the file itself gives."""
    notes = []
    if not arrays:
        return notes
    a = arrays[0]
    if symmetry.space_group_info() is not None and a.space_group_info() is not None:
        if symmetry.space_group_info().group() != a.space_group_info().group():
            notes.append(
                f"space group {symmetry.space_group_info()} (symmetry.space_group) replaces "
                f"{a.space_group_info()} from the file"
            )
    if symmetry.unit_cell() is not None and a.unit_cell() is not None:
        if not symmetry.unit_cell().is_similar_to(a.unit_cell()):
            new, old = (", ".join(f"{x:g}" for x in uc.parameters()) for uc in (symmetry.unit_cell(), a.unit_cell()))
            notes.append(f"unit cell ({new}) (symmetry.unit_cell) replaces ({old}) from the file")
    return notes


def require_amplitudes(f, labels: str, path: str):
    """``f`` itself where it holds amplitudes or intensities (MTZ column types F or J, or a format
    without types); a Sorry naming the types otherwise (a FreeR_flag or FOM column is not |F|)."""
    if not (f.is_xray_amplitude_array() or f.is_xray_intensity_array() or _untyped_real(f, path)):
        types = _column_types(path, f)
        raise Sorry(
            f"Columns {labels} in {path} are not amplitudes or intensities"
            + (f" (MTZ column types {types}; amplitudes are F, intensities J)." if types else ".")
        )
    return f


def _column_types(path: str, array) -> str:
    """MTZ column types of an array's labels ('' for other formats)."""
    try:
        import iotbx.mtz

        types = {c.label(): c.type() for c in iotbx.mtz.object(path).columns()}
    except Exception:  # noqa: BLE001 - not an MTZ
        return ""
    return ",".join(types.get(label, "?") for label in (array.info().labels or []))


def _untyped_real(array, path: str) -> bool:
    """A real array read from a format without column types (not MTZ): taken as amplitudes."""
    return array.is_real_array() and not _column_types(path, array)


def shelx_pair_symmetry(hkl_path: str):
    """Cell and space group from the .ins or .res beside a SHELX .hkl (as SHELX does), else None."""
    from iotbx.shelx import crystal_symmetry_from_ins

    stem = os.path.splitext(hkl_path)[0]
    for ext in (".ins", ".res", ".INS", ".RES"):
        if os.path.isfile(stem + ext):
            from ml_phasing.io.file_formats import refuse_pickle

            refuse_pickle(stem + ext, "SHELX .ins/.res")
            try:
                return crystal_symmetry_from_ins.extract_from(stem + ext)
            except Exception as e:  # noqa: BLE001 - iotbx raises several types for broken files
                raise Sorry(f"Cannot read the cell and symmetry of {stem + ext}: {e}") from None
    return None


def combined_symmetry(unit_cell, space_group_info):
    """crystal.symmetry, with a Sorry when the space group does not fit the cell."""
    from cctbx import crystal

    try:
        return crystal.symmetry(unit_cell=unit_cell, space_group_info=space_group_info)
    except AssertionError:
        raise Sorry(
            f"Space group {space_group_info} does not fit the unit cell "
            f"{tuple(round(x, 3) for x in unit_cell.parameters())}."
        ) from None


def _read_shelx(path, symmetry):
    from iotbx.reflection_file_reader import any_reflection_file

    from ml_phasing.io.file_formats import refuse_pickle

    if not os.path.isfile(path):
        raise Sorry(f"Reflection file not found: {path}")
    refuse_pickle(path, "SHELX .hkl")
    try:
        arrays = any_reflection_file(f"{path}=hklf4").as_miller_arrays(crystal_symmetry=symmetry)
    except Exception as e:  # noqa: BLE001
        raise Sorry(f"Cannot read {path} as SHELX HKLF 4: {e}") from None
    if not arrays:
        raise Sorry(f"No reflections in {path}.")
    return arrays


def _null():
    from libtbx.utils import null_out

    return null_out()
