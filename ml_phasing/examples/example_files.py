"""Write single examples as the files crystallographers open: MTZ, CCP4 maps, CIF/PDB.

For a look in Coot or a comparison in cphasematch:

* ``<stem>.mtz``: F, SIGF (the 'measured' amplitudes to d_min_low; SIGF is a
  nominal 1% + 0.1 e error, the data themselves are error-free) and FC, PHIC
  (true structure factors to d_min_high).
* ``<stem>_patterson.ccp4``, ``<stem>_density.ccp4``: the maps on the unit cell,
  in absolute units (the [-1, 1] scaling is undone).
* ``<stem>.cif`` (random atoms, structure files) or ``<stem>.pdb`` (peptides).
"""

from __future__ import annotations

import os

from ml_phasing.io import map_io
from ml_phasing.io.atomic_io import write_text


def write_example(directory: str, stem: str, example: dict) -> list[str]:
    """Write one example made with ``keep_objects=True``; return the paths written."""
    os.makedirs(directory, exist_ok=True)
    objects = example["objects"]
    meta = example["meta"]
    fields = example["fields"]
    xs = objects["xray_structure"]
    written = []
    fc = objects.get("f_calc_high")
    if fc is None:
        fc = objects.get("f_map")
    if fc is not None:
        d = fc.d_spacings().data()
        f_obs = fc.as_amplitude_array().select(d >= meta["d_min_low"] * (1 - 1e-9))
        sig = f_obs.data() * 0.01 + 0.1
        f_obs = f_obs.customized_copy(sigmas=sig).set_observation_type_xray_amplitude()
        path = os.path.join(directory, f"{stem}.mtz")
        map_io.write_mtz(
            path,
            [(f_obs, "F"), (fc, "FC")],
            rename={"PHIFC": "PHIC"},
            title=f"ml_phasing.simulate example {meta['index']}",
        )
        written.append(path)
    for name in ("patterson", "density"):
        if name in fields:
            path = os.path.join(directory, f"{stem}_{name}.ccp4")
            absolute = fields[name].astype("float64") * meta[f"{name}_scale"]
            map_io.write_ccp4_map(path, xs.unit_cell(), absolute, title=f"ml_phasing {name}")
            written.append(path)
    if meta.get("source") == "peptides":
        path = os.path.join(directory, f"{stem}.pdb")
        write_text(path, xs.as_pdb_file(remark=f"ml_phasing.simulate example {meta['index']}"))
    else:
        import io

        path = os.path.join(directory, f"{stem}.cif")
        buf = io.StringIO()
        xs.as_cif_simple(out=buf, data_name=f"ml_phasing_example_{meta['index']}")
        write_text(path, buf.getvalue())
    written.append(path)
    return written
