"""Outputs of a solution: 2mFo-DFc coefficients and map, CIF and PDB models (atomic writes)."""

from __future__ import annotations

from cctbx import maptbx
from cctbx.array_family import flex

from ml_phasing.examples import observables
from ml_phasing.io.atomic_io import write_text


def two_mfo_dfc(f_obs, f_calc, fom):
    """2mFo - DFc map coefficients (mFo for centric reflections), D the LS scale of |Fc| to |Fo|."""
    fc = f_calc.common_set(f_obs)
    fo = f_obs.data()
    afc = flex.abs(fc.data())
    d = flex.sum(fo * afc) / max(flex.sum(afc * afc), 1e-30)
    centric = f_obs.centric_flags().data()
    amp = 2 * fom * fo - d * afc
    amp.set_selected(centric, (fom * fo).select(centric))
    from ml_phasing.phasing.dual_space import signed_polar

    # where DFc outweighs 2mFo the coefficient points the other way
    return f_obs.customized_copy(data=signed_polar(amp, flex.arg(fc.data())), sigmas=None)


def map_on_grid(coefficients, resolution_factor: float = 1.0 / 3):
    gridding = maptbx.crystal_gridding(
        unit_cell=coefficients.unit_cell(),
        space_group_info=coefficients.space_group_info(),
        d_min=coefficients.d_min(),
        resolution_factor=resolution_factor,
        symmetry_flags=maptbx.use_space_group_symmetry,
    )
    return observables.density_map(coefficients, gridding)


def write_cif(path: str, xs, title: str, solved: bool) -> None:
    """A small-molecule CIF with the core (CIF 1.1) names that gemmi, Olex2 and Mercury read:
    cell, space group with its operators, and an _atom_site loop with U_iso (written with gemmi.cif)."""
    import gemmi

    doc = gemmi.cif.Document()
    block = doc.add_new_block("ml_phasing_solve")
    sgi = xs.space_group_info()
    block.set_pair("_computing_structure_solution", gemmi.cif.quote(f"ml_phasing.solve: {title}"))
    block.set_pair("_ml_phasing_solved", "yes" if solved else "no")
    for name, value in zip(("a", "b", "c", "alpha", "beta", "gamma"), xs.unit_cell().parameters()):
        key = f"_cell_length_{name}" if len(name) == 1 else f"_cell_angle_{name}"
        block.set_pair(key, f"{value:.4f}")
    block.set_pair("_cell_volume", f"{xs.unit_cell().volume():.2f}")
    block.set_pair("_space_group_name_H-M_alt", gemmi.cif.quote(str(sgi)))
    block.set_pair("_symmetry_space_group_name_H-M", gemmi.cif.quote(str(sgi)))
    block.set_pair("_space_group_IT_number", str(sgi.type().number()))
    ops = block.init_loop("_space_group_symop_", ["id", "operation_xyz"])
    for i, op in enumerate(xs.space_group().all_ops()):
        ops.add_row([str(i + 1), gemmi.cif.quote(op.as_xyz())])
    atoms = block.init_loop(
        "_atom_site_",
        ["label", "type_symbol", "fract_x", "fract_y", "fract_z", "U_iso_or_equiv", "adp_type", "occupancy"],
    )
    for sc in xs.scatterers():
        atoms.add_row(
            [sc.label, sc.scattering_type]
            + [f"{x:.6f}" for x in sc.site]
            + [f"{sc.u_iso:.5f}", "Uiso", f"{sc.occupancy:.4f}"]
        )
    write_text(path, doc.as_string())


def write_pdb(path: str, xs, title: str) -> None:
    text = xs.as_pdb_file(remark=title, resname="UNK")
    write_text(path, text if text.endswith("\n") else text + "\n")
