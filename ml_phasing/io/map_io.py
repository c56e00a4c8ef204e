"""Reading and writing CCP4 maps and MTZ files through iotbx, atomically."""

from __future__ import annotations

import numpy as np
from cctbx import sgtbx
from cctbx.array_family import flex

from ml_phasing.io.atomic_io import atomic_path, check_ccp4_map, check_mtz


def write_ccp4_map(path: str, unit_cell, map_array: np.ndarray, title: str = "ml_phasing") -> None:
    """Write a whole-cell map (numpy [x, y, z]) as a CCP4/MRC2014 map in P1 (mode 2, float32).

    Written with ``iotbx.mrcfile.write_ccp4_map`` (through the ``mrcfile`` package, a
    dependency of cctbx-base), which sets the MRC2014 version number (NVERSION) that
    ``iotbx.ccp4_map.write_ccp4_map`` leaves 0, so that ``mrcfile.validate`` accepts the
    file (issue 13). The axis order stays the one iotbx always wrote (MAPC, MAPR, MAPS =
    3, 2, 1); iotbx, gemmi and Coot read the same [x, y, z] values back.

    One header field is corrected on the temporary file before it is checked and renamed:
    mrcfile sums the mean (DMEAN) in float32, which for a map without F000 (mean ~0, values
    ~1e3) is off by more than the 1% that ``mrcfile.validate`` allows; it is recomputed in
    float64, as ``mrcfile.validate`` does. No writer in the stack sets it accurately.
    """
    data = flex.double(np.ascontiguousarray(map_array, dtype=np.float64))
    data.reshape(flex.grid(map_array.shape))
    with atomic_path(path, verify=check_ccp4_map) as tmp:
        import iotbx.mrcfile
        import mrcfile

        iotbx.mrcfile.write_ccp4_map(
            file_name=tmp,
            unit_cell=unit_cell,
            space_group=sgtbx.space_group_info("P1").group(),
            map_data=data,
            labels=[_label(title)],
        )
        check_ccp4_map(tmp)  # a short file (full disk) is IncompleteWrite, before mrcfile reads it
        with mrcfile.mmap(tmp, mode="r+") as mrc:
            mrc.header.dmean = np.float32(mrc.data.mean(dtype=np.float64))


def _label(title: str) -> str:
    """An 80-character header label: printable ASCII only (numpy stores labels as bytes)."""
    text = "".join(c if " " <= c <= "~" else "?" for c in str(title))
    return text[:80] or "ml_phasing"


def read_ccp4_map(path: str) -> tuple:
    """(numpy map [x, y, z], unit cell parameters) from a CCP4 map via iotbx."""
    import iotbx.ccp4_map

    m = iotbx.ccp4_map.map_reader(file_name=path)
    return m.map_data().as_numpy_array(), m.unit_cell().parameters()


def write_mtz(path: str, columns: list, title: str = "ml_phasing", rename: dict | None = None) -> None:
    """Write miller arrays to one MTZ.

    ``columns`` is a list of (miller_array, column_root_label[, column_types]);
    ``rename`` maps iotbx's labels to CCP4 ones (iotbx writes FC, PHIFC for a
    complex array rooted at "FC"; CCP4 programs expect FC, PHIC).
    """
    first = columns[0]
    ds = first[0].as_mtz_dataset(column_root_label=first[1], column_types=_types(first))
    for entry in columns[1:]:
        ds.add_miller_array(entry[0], column_root_label=entry[1], column_types=_types(entry))
    mtz = ds.mtz_object()
    for old, new in (rename or {}).items():
        mtz.get_column(old).set_label(new)
    mtz.set_title(title[:70])
    with atomic_path(path, verify=check_mtz) as tmp:
        mtz.write(tmp)


def _types(entry):
    return entry[2] if len(entry) > 2 else None
