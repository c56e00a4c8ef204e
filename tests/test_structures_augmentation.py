"""source=structures (issue 15): CIF U_iso read when iotbx drops its column, and the per-example
augmentation of structure files (structures.b_jitter, structures.site_jitter)."""

import boost_adaptbx.boost.python  # noqa: F401
import torch  # noqa: F401

import os
import warnings

import numpy as np
import pytest

from conftest import assert_clean_exit, make_params, run_script

# P-1, no _atom_site_adp_type, a riding H without U ('?') and U with esds: iotbx's builder drops
# the whole U column for the '?' and reads every atom with U = 0 (as COD 2000724).
CIF = """data_tiny
_cell_length_a 6.0
_cell_length_b 7.0
_cell_length_c 8.0
_cell_angle_alpha 90
_cell_angle_beta 100
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P -1'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_{column}
Cl1 Cl 0.0 0.0 0.0 .0250(3)
C1 C .21(1) .13(1) .31(1) .0412(12)
O1 O 0.35 0.27 0.12 0.0530
N1 N 0.62 0.41 0.33 {n1}
H1 H 0.25 0.20 0.40 ?
"""


def write_cif(tmp_path, column="U_iso_or_equiv", n1="0.0390(10)", name="tiny.cif"):
    path = tmp_path / name
    path.write_text(CIF.format(column=column, n1=n1))
    return str(path)


def same(a, b):
    return np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def u_of(xs):
    return {sc.label: sc.u_iso for sc in xs.scatterers()}


def test_u_iso_read_when_a_hydrogen_has_none(tmp_path):
    import iotbx.cif

    from ml_phasing.sources.structure_files import read_structure

    path = write_cif(tmp_path)
    built = list(iotbx.cif.reader(file_path=path).build_crystal_structures().values())[0]
    assert set(u_of(built).values()) == {0.0}  # what iotbx alone gives (if this changes, iotbx was fixed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: only the hydrogen lacks a U
        xs = read_structure(path, remove_hydrogens=False)
        assert u_of(xs) == pytest.approx({"Cl1": 0.025, "C1": 0.0412, "O1": 0.053, "N1": 0.039, "H1": 0.0})
        assert "H1" not in u_of(read_structure(path))


def test_b_iso_column_and_a_heavy_atom_without_adp_warns(tmp_path):
    from cctbx import adptbx

    from ml_phasing.sources.structure_files import read_structure

    xs = read_structure(write_cif(tmp_path, column="B_iso_or_equiv", n1="3.0"))
    assert u_of(xs)["N1"] == pytest.approx(adptbx.b_as_u(3.0))
    assert u_of(xs)["C1"] == pytest.approx(adptbx.b_as_u(0.0412))
    with pytest.warns(UserWarning, match=r"1 atom\(s\) \(N1\) have neither U_iso/B_iso"):
        xs = read_structure(write_cif(tmp_path, n1="?", name="n1.cif"))
    assert u_of(xs)["N1"] == 0.0 and u_of(xs)["O1"] == pytest.approx(0.053)


def test_cod_2000724_adps_are_read(realdata):
    from ml_phasing.sources.structure_files import read_structure

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xs = read_structure(os.path.join(realdata, "cif", "COD_2000724_P21c.cif"))
    u = u_of(xs)
    assert len(u) == 12 and min(u.values()) > 0
    assert u["S1"] == pytest.approx(0.069) and u["C12"] == pytest.approx(0.039)


def examples(tmp_path, indices, **jitter):
    from ml_phasing.examples import simulation

    params = make_params(
        source="structures",
        structures__file=write_cif(tmp_path),
        d_min_low=1.5,
        d_min_high=1.2,
        outputs__patterson=False,
        outputs__density=False,
        **{f"structures__{k}": v for k, v in jitter.items()},
    )
    config = simulation.SimulationConfig.from_params(params)
    source = simulation.StructureSource(config)
    return [simulation.make_example(config, i, source) for i in indices]


def test_no_jitter_every_example_of_a_file_is_the_same(tmp_path):
    a, b = examples(tmp_path, [0, 1])
    for key in a["fields"]:
        assert same(a["fields"][key], b["fields"][key]), key
    assert "b_scale" not in a["meta"] and "site_shift_rms" not in a["meta"]


def test_jitter_varies_examples_reproducibly(tmp_path):
    a, b = examples(tmp_path, [0, 1], b_jitter=0.3, site_jitter=0.05)
    again = examples(tmp_path, [1], b_jitter=0.3, site_jitter=0.05)[0]
    for key in b["fields"]:  # example 1 is the same whichever run (or shard) makes it
        assert same(b["fields"][key], again["fields"][key]), key
    assert not np.array_equal(a["fields"]["reflections/f"], b["fields"]["reflections/f"])
    ref = examples(tmp_path, [0])[0]
    b_ref = ref["fields"]["atoms/b_iso"]
    for ex in (a, b):
        scale = ex["meta"]["b_scale"]
        assert scale != 1.0 and ex["fields"]["atoms/b_iso"] == pytest.approx(b_ref * scale, rel=1e-5)
        shift = ex["fields"]["atoms/sites_frac"] - ref["fields"]["atoms/sites_frac"]
        assert np.all(shift[0] == 0)  # Cl1 stays on the inversion centre
        moved = np.abs(shift[1:]).max(1)
        assert np.all(moved > 0) and np.all(moved < 0.05)  # fractions of a 6-8 A cell: < 0.3 A
        assert 0 < ex["meta"]["site_shift_rms"] < 0.2
    b_only = examples(tmp_path, [0], b_jitter=0.3)[0]
    assert np.array_equal(b_only["fields"]["atoms/sites_frac"], ref["fields"]["atoms/sites_frac"])
    assert b_only["meta"]["b_scale"] == a["meta"]["b_scale"]  # the same draw for the scale


def test_simulate_cli_with_jitter(tmp_path):
    from ml_phasing.dataset import SimulatedDataset

    path = write_cif(tmp_path)
    common = [
        "source=structures",
        f"structures.file={path}",
        "structures.b_jitter=0.3",
        "structures.site_jitter=0.05",
        "n_examples=3",
        "d_min_low=1.5",
        "d_min_high=1.2",
        "outputs.patterson=False",
        "outputs.density=False",
        "nproc=1",
    ]
    for name in ("one", "two"):
        assert_clean_exit(run_script("ml_phasing.simulate", *common, f"output.directory={name}", cwd=tmp_path))
    one, two = SimulatedDataset(str(tmp_path / "one")), SimulatedDataset(str(tmp_path / "two"))
    f = [one[i]["reflections/f"] for i in range(3)]
    assert not np.array_equal(f[0], f[1]) and not np.array_equal(f[1], f[2])
    for i in range(3):
        assert np.array_equal(f[i], two[i]["reflections/f"])
    assert "b_jitter = 0.3" in one.manifest["parameters"]
