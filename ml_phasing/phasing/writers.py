"""Outputs of a solution: 2mFo-DFc coefficients and map, CIF and PDB models (atomic writes)."""
from __future__ import annotations

import io

import numpy as np

from cctbx import maptbx
from cctbx.array_family import flex

from ml_phasing import observables
from ml_phasing.atomic_io import write_text


def two_mfo_dfc(f_obs, f_calc, fom):
    """2mFo - DFc map coefficients (mFo for centric reflections), D the LS scale of |Fc| to |Fo|."""
    fc = f_calc.common_set(f_obs)
    fo = f_obs.data()
    afc = flex.abs(fc.data())
    d = flex.sum(fo * afc) / max(flex.sum(afc * afc), 1e-30)
    centric = f_obs.centric_flags().data()
    amp = 2 * fom * fo - d * afc
    amp.set_selected(centric, (fom * fo).select(centric))
    phi = flex.arg(fc.data())
    negative = amp < 0  # where DFc outweighs 2mFo the coefficient points the other way
    phi.set_selected(negative, phi.select(negative) + np.pi)
    return f_obs.customized_copy(data=flex.polar(flex.abs(amp), phi), sigmas=None)


def map_on_grid(coefficients, resolution_factor: float = 1.0 / 3):
    gridding = maptbx.crystal_gridding(unit_cell=coefficients.unit_cell(),
                                       space_group_info=coefficients.space_group_info(),
                                       d_min=coefficients.d_min(), resolution_factor=resolution_factor,
                                       symmetry_flags=maptbx.use_space_group_symmetry)
    return observables.density_map(coefficients, gridding)


def write_cif(path: str, xs, title: str, solved: bool) -> None:
    """A small-molecule CIF (cell, symmetry operators, _atom_site loop with U_iso) that gemmi and Olex2 read."""
    buf = io.StringIO()
    xs.as_cif_simple(out=buf, data_name="ml_phasing_solve")
    text = buf.getvalue()
    lines = text.splitlines()
    head = [lines[0], f"_computing_structure_solution 'ml_phasing.solve ({title})'",
            f"_ml_phasing_solved {'yes' if solved else 'no'}"]
    write_text(path, "\n".join(head + lines[1:]) + "\n")


def write_pdb(path: str, xs, title: str) -> None:
    text = xs.as_pdb_file(remark=title, resname="UNK")
    write_text(path, text if text.endswith("\n") else text + "\n")


