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
AMPLITUDE_PREFERENCE = ("F_EXT,SIGF_EXT", "F,SIGF", "FP,SIGFP", "F-obs,SIGF-obs", "FOBS,SIGFOBS")


def read_arrays(path: str) -> list:
    """All miller arrays in a reflection file."""
    from iotbx.reflection_file_reader import any_reflection_file

    if not os.path.isfile(path):
        raise Sorry(f"Reflection file not found: {path}")
    if os.path.getsize(path) == 0:
        raise Sorry(f"Reflection file is empty: {path}")
    try:
        arrays = any_reflection_file(path).as_miller_arrays()
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
    raise Sorry(f"Several {kind} column sets in {path} ({', '.join(a.info().label_string() for a in candidates)}); "
                "choose one with the labels parameter.")


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
