"""write_examples: MTZ, CCP4 maps and structures read back by iotbx and by gemmi."""

import numpy as np
import pytest

from conftest import assert_clean_exit, run_script
from ml_phasing import dataset


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    base = tmp_path_factory.mktemp("examples")
    args = [
        "n_examples=3",
        "write_examples=2",
        "d_min_low=1.8",
        "d_min_high=1.4",
        "random_atoms.space_groups=P21",
        "random_atoms.n_atoms_max=14",
        "output.directory=ds",
    ]
    assert_clean_exit(run_script("ml_phasing.simulate", *args, cwd=base))
    return base / "ds"


def test_files_written(examples):
    names = sorted(p.name for p in (examples / "examples").iterdir())
    assert names == [
        "example_00000.cif",
        "example_00000.mtz",
        "example_00000_density.ccp4",
        "example_00000_patterson.ccp4",
        "example_00001.cif",
        "example_00001.mtz",
        "example_00001_density.ccp4",
        "example_00001_patterson.ccp4",
    ]


def test_mtz_iotbx_and_gemmi(examples):
    import iotbx.mtz
    import gemmi

    ds = dataset.SimulatedDataset(str(examples))
    path = str(examples / "examples" / "example_00001.mtz")
    mtz = iotbx.mtz.object(path)
    labels = [c.label() for c in mtz.columns()]
    assert labels[3:] == ["F", "SIGF", "FC", "PHIC"]
    arrays = {a.info().label_string(): a for a in mtz.as_miller_arrays()}
    fc = arrays["FC,PHIC"]
    f = arrays["F,SIGF"]
    assert str(fc.space_group_info()) == "P 1 21 1"
    assert f.d_min() >= 1.8 - 1e-6 and fc.d_min() == pytest.approx(1.4, abs=0.05)
    ref = dict(zip(map(tuple, ds[1]["reflections/indices"].tolist()), ds[1]["reflections/f"]))
    assert fc.size() == len(ref)
    ref_f = np.array([ref[tuple(h)] for h in fc.indices()])
    np.testing.assert_allclose(np.abs(fc.data().as_numpy_array()), ref_f, rtol=1e-5, atol=1e-3)
    # gemmi reads the same columns and values.
    g = gemmi.read_mtz_file(path)
    assert [c.label for c in g.columns][3:] == ["F", "SIGF", "FC", "PHIC"]
    assert g.spacegroup.hm == "P 1 21 1"
    g_fc = np.array(g.column_with_label("FC"), float)
    np.testing.assert_allclose(np.sort(g_fc), np.sort(np.abs(fc.data().as_numpy_array())), rtol=1e-5)


def test_maps_iotbx_and_gemmi(examples):
    import gemmi
    from ml_phasing.io.map_io import read_ccp4_map

    ds = dataset.SimulatedDataset(str(examples))
    item, meta = ds[0], ds.meta(0)
    for name in ("density", "patterson"):
        path = str(examples / "examples" / f"example_00000_{name}.ccp4")
        expected = item[name].astype(float) * meta[f"{name}_scale"]
        data, cell = read_ccp4_map(path)
        np.testing.assert_allclose(data, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
        np.testing.assert_allclose(cell, meta["unit_cell"], rtol=1e-5)
        g = gemmi.read_ccp4_map(path)
        g.setup(float("nan"))
        arr = np.array(g.grid, copy=False)
        np.testing.assert_allclose(arr, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_gemmi_map_from_mtz_matches_density(examples):
    """A map gemmi makes from FC/PHIC matches the written density (CC > 0.999)."""
    import gemmi

    ds = dataset.SimulatedDataset(str(examples))
    dens = ds[0]["density"]
    mtz = gemmi.read_mtz_file(str(examples / "examples" / "example_00000.mtz"))
    # The MTZ density is to d_min_high; ds density to d_min_low: cut the MTZ to match.
    data = np.array(mtz, copy=False)
    mtz.set_data(data[mtz.make_d_array() >= 1.8 - 1e-6])
    grid = mtz.transform_f_phi_to_map("FC", "PHIC", exact_size=list(dens.shape))
    arr = np.array(grid, copy=False)
    cc = np.corrcoef(arr.ravel(), dens.ravel())[0, 1]
    assert cc > 0.999, cc


def test_cif_round_trip(examples):
    import iotbx.cif

    ds = dataset.SimulatedDataset(str(examples))
    xs = list(
        iotbx.cif.reader(file_path=str(examples / "examples" / "example_00000.cif")).build_crystal_structures().values()
    )[0]
    np.testing.assert_allclose(np.array(xs.sites_frac()), ds[0]["atoms/sites_frac"], atol=1e-5)


def test_peptide_example_pdb_reads_in_gemmi(tmp_path):
    import gemmi

    args = [
        "source=peptides",
        "n_examples=1",
        "write_examples=1",
        "d_min_high=1.5",
        "outputs.patterson=False",
        "output.directory=ds",
    ]
    assert_clean_exit(run_script("ml_phasing.simulate", *args, cwd=tmp_path))
    st = gemmi.read_structure(str(tmp_path / "ds" / "examples" / "example_00000.pdb"))
    assert st.cell.a == pytest.approx(10.0)
    assert sum(1 for _ in st[0].all()) == 10
