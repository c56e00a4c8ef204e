"""Dense hkl boxes: reflections of the asymmetric unit scattered into a 3D tensor.

Unlike the public resolution-extension code (which marks everything missing as
0), each voxel's role is its own channel: measured, not measured (to predict),
systematically absent, F000, or outside the data. The per-voxel 1/d^2 is a
channel too, so a model knows the same hkl means different d in different cells.
"""

from __future__ import annotations

import numpy as np

CHANNELS = ("f", "f_measured", "e", "inv_d_sq", "mask_measured", "mask_unmeasured", "mask_absent", "mask_f000")


def dense_amplitudes(refl: dict, box_min, box_max) -> dict:
    """Scatter one example's reflection fields into boxes ``box_min..box_max`` (inclusive).

    Returns ``{"hkl_box": (len(CHANNELS), nh, nk, nl) float32}``.
    """
    box_min = np.asarray(box_min, int)
    shape = tuple(np.asarray(box_max, int) - box_min + 1)
    out = np.zeros((len(CHANNELS),) + shape, np.float32)
    idx = refl["indices"].astype(int) - box_min
    ix = (idx[:, 0], idx[:, 1], idx[:, 2])
    measured = refl["measured"].astype(bool)
    out[0][ix] = refl["f"]
    out[1][ix] = np.where(measured, refl["f"], 0.0)
    out[2][ix] = refl["e"]
    out[3][ix] = 1.0 / refl["d"].astype(np.float64) ** 2
    out[4][ix] = measured
    out[5][ix] = ~measured
    absent = refl.get("absent_indices")
    if absent is not None and len(absent):
        a = absent.astype(int) - box_min
        inside = np.all((a >= 0) & (a < np.array(shape)), axis=1)
        a = a[inside]
        out[6][(a[:, 0], a[:, 1], a[:, 2])] = 1.0
    origin = -box_min
    if np.all((origin >= 0) & (origin < np.array(shape))):
        out[7][tuple(origin)] = 1.0
    return {"hkl_box": out}


def outside_box(span_min, span_max, box_min, box_max) -> str:
    """Where the hkl span ``span_min..span_max`` leaves the box ``box_min..box_max`` (inclusive),
    e.g. "h down to -11 (box from -10), l up to 24 (box to 18)"; "" when it fits."""
    out = []
    for axis, lo, hi, b_lo, b_hi in zip("hkl", span_min, span_max, box_min, box_max):
        if lo < b_lo:
            out.append(f"{axis} down to {int(lo)} (box from {int(b_lo)})")
        if hi > b_hi:
            out.append(f"{axis} up to {int(hi)} (box to {int(b_hi)})")
    return ", ".join(out)
