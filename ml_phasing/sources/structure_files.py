"""User-supplied crystal structures: small-molecule CIF, PDB or mmCIF, used as they are."""

from __future__ import annotations

import os
import warnings

import numpy as np

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
            reader = iotbx.cif.reader(file_path=path)
            structures = reader.build_crystal_structures()
        except Exception as e:  # iotbx raises several types for broken CIF
            structures = {}
            cif_error = e
        else:
            cif_error = None
        if structures:
            block_name, xs = next(iter(structures.items()))
            missing = fill_isotropic_adps(xs, reader.model()[block_name])
            scatterers = xs.scatterers()
            # hydrogens without a U are common (riding atoms) and weigh little: not worth a word
            missing = [i for i in missing if scatterers[i].scattering_type not in ("H", "D")]
            if missing:
                names = ", ".join(scatterers[i].label for i in missing[:8]) + (", ..." if len(missing) > 8 else "")
                warnings.warn(
                    f"{path}: {len(missing)} atom(s) ({names}) have neither U_iso/B_iso nor anisotropic "
                    "ADPs in the CIF: they are read with B = 0.",
                    stacklevel=2,
                )
        elif cif_error is not None and not _looks_like_mmcif(path):
            raise Sorry(f"Cannot read CIF {path}: {cif_error}")
    if xs is None:
        xs = _read_model(path)
    if remove_hydrogens:
        xs = xs.select(~xs.hd_selection())
    if xs.scatterers().size() == 0:
        raise Sorry(f"No atoms in {path}.")
    return xs


def jitter(xs, rng, b_jitter: float = 0.0, site_jitter: float = 0.0) -> dict:
    """Augment ``xs`` in place (simulate's structures.b_jitter and structures.site_jitter) from
    the example's numpy generator ``rng``; returns what was drawn, for the example's metadata.

    Every atom's ADPs (U_iso, or U* where anisotropic) are multiplied by one factor
    exp(b_jitter * z), z standard normal; then every atom moves by a Cartesian displacement
    with sd ``site_jitter`` (A) on each axis, and atoms on special positions are put back on
    them (the structure's site-symmetry table). Draws: one normal for the scale (only where
    b_jitter > 0), then 3 per atom (only where site_jitter > 0).
    """
    from scitbx.array_family import flex

    out = {}
    if b_jitter > 0:
        scale = float(np.exp(b_jitter * rng.standard_normal()))
        for sc in xs.scatterers():
            if sc.flags.use_u_aniso():
                sc.u_star = tuple(u * scale for u in sc.u_star)
            if sc.flags.use_u_iso():
                sc.u_iso *= scale
        out["b_scale"] = round(scale, 6)
    if site_jitter > 0:
        n = xs.scatterers().size()
        shift = rng.normal(0.0, site_jitter, size=(n, 3))
        before = xs.sites_cart()
        xs.set_sites_cart(before + flex.vec3_double(flex.double(shift.ravel())))
        xs.apply_symmetry_sites()
        moved = (xs.sites_cart() - before).dot()
        out["site_shift_rms"] = round(float(np.sqrt(flex.mean(moved))), 6)
    return out


ISOTROPIC_ADP_ITEMS = (
    ("_atom_site_U_iso_or_equiv", "u"),
    ("_atom_site_U_equiv_geom_mean", "u"),
    ("_atom_site_B_iso_or_equiv", "b"),
    ("_atom_site_B_equiv_geom_mean", "b"),
)


def fill_isotropic_adps(xs, block) -> list[int]:
    """Give the isotropic atoms of ``xs`` (built by iotbx from the CIF data block ``block``) the
    U_iso/B_iso their atom_site loop gives; returns the indices of the isotropic atoms the loop
    gives none (they stay at U = 0).

    iotbx's crystal-structure builder reads the _atom_site_U_iso_or_equiv column only when every
    entry is a number: one '?' (e.g. hydrogens without a U, as in COD 2000724) drops the whole
    column and leaves every isotropic atom at U = 0 without a word. Here each atom takes its own
    entry (its esd stripped); atoms with anisotropic ADPs (the aniso loop) are left as they are.
    """
    from cctbx import adptbx
    from iotbx.cif import builders

    n = xs.scatterers().size()
    column = kind = None
    for item, k in ISOTROPIC_ADP_ITEMS:
        values = block.get(item)
        if isinstance(values, str):  # a single atom: the item outside a loop
            values = [values]
        if values is not None and builders.none_if_all_question_marks_or_period(values) is not None:
            column, kind = [str(v) for v in values], k
            break
    missing = []
    for i, sc in enumerate(xs.scatterers()):
        if sc.flags.use_u_aniso():
            continue
        # the builder makes one scatterer per row of the atom_site loop, in order
        value = _number(column[i]) if column is not None and len(column) == n else None
        if value is None:
            if sc.u_iso == 0:
                missing.append(i)
            continue
        sc.u_iso = value if kind == "u" else adptbx.b_as_u(value)
        sc.flags.set_use_u_iso(True)
    return missing


def _number(text: str):
    """A CIF number ('.0690(10)' -> 0.069), None for '?', '.' or anything else."""
    try:
        return float(text.strip("'\"").split("(")[0])
    except ValueError:
        return None


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
