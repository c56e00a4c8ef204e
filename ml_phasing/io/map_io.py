"""Reading and writing CCP4 maps and MTZ files through iotbx, atomically."""

from __future__ import annotations

import numpy as np
from cctbx import sgtbx
from cctbx.array_family import flex

from ml_phasing.io.atomic_io import atomic_path, check_ccp4_map, check_mtz


def write_ccp4_map(path: str, unit_cell, map_array: np.ndarray, title: str = "ml_phasing") -> None:
    """Write a whole-cell map (numpy [x, y, z]) as a CCP4 map in P1."""
    data = flex.double(np.ascontiguousarray(map_array, dtype=np.float64))
    data.reshape(flex.grid(map_array.shape))
    with atomic_path(path, verify=check_ccp4_map) as tmp:
        import iotbx.ccp4_map

        iotbx.ccp4_map.write_ccp4_map(
            file_name=tmp,
            unit_cell=unit_cell,
            space_group=sgtbx.space_group_info("P1").group(),
            map_data=data,
            labels=flex.std_string([title[:80]]),
        )


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
