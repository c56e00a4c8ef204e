"""User-supplied crystal structures: small-molecule CIF, PDB or mmCIF, used as they are."""

from __future__ import annotations

import os

from libtbx.utils import Sorry


def read_structure(path: str, remove_hydrogens: bool = True):
    """An :class:`cctbx.xray.structure` from a CIF (small molecule) or PDB/mmCIF file."""
    if not os.path.isfile(path):
        raise Sorry(f"Structure file not found: {path}")
    if os.path.getsize(path) == 0:
        raise Sorry(f"Structure file is empty: {path}")
    from ml_phasing.io.file_formats import refuse_pickle

    refuse_pickle(path, "structure")
    xs = None
    lower = path.lower()
    if lower.endswith(".cif"):
        import iotbx.cif

        try:
            structures = iotbx.cif.reader(file_path=path).build_crystal_structures()
        except Exception as e:  # iotbx raises several types for broken CIF
            structures = {}
            cif_error = e
        else:
            cif_error = None
        if structures:
            xs = list(structures.values())[0]
        elif cif_error is not None and not _looks_like_mmcif(path):
            raise Sorry(f"Cannot read CIF {path}: {cif_error}")
    if xs is None:
        xs = _read_model(path)
    if remove_hydrogens:
        xs = xs.select(~xs.hd_selection())
    if xs.scatterers().size() == 0:
        raise Sorry(f"No atoms in {path}.")
    return xs


def _looks_like_mmcif(path):
    with open(path, errors="replace") as f:
        head = f.read(200000)
    return "_atom_site.Cartn_x" in head or "_atom_site.cartn_x" in head


def _read_model(path):
    import iotbx.pdb

    try:
        inp = iotbx.pdb.input(file_name=path)
    except Exception as e:  # iotbx raises Sorry, RuntimeError or AssertionError
        raise Sorry(f"Cannot read model file {path}: {e}") from None
    try:
        cs = inp.crystal_symmetry()
    except AssertionError:  # iotbx's mmCIF reader, for a CIF with a cell but no atom_site loop
        raise Sorry(f"No atoms in {path} (no _atom_site loop iotbx can read).") from None
    if cs is None or cs.unit_cell() is None or cs.space_group_info() is None:
        raise Sorry(f"{path} has no unit cell or space group (CRYST1 / _cell / _symmetry).")
    if inp.atoms().size() == 0:
        raise Sorry(f"No atoms in {path}.")
    return inp.xray_structure_simple(crystal_symmetry=cs)
