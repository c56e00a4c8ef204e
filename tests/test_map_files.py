"""CCP4 maps the programs write (issue 13): valid MRC2014 files (``mrcfile.validate``) that
iotbx, gemmi and Coot read back with the values, cell, space group and axis order written.

All maps go through ``ml_phasing.io.map_io.write_ccp4_map`` (simulate's example maps,
patterson_to_density's predicted density, solve's map). The Coot checks use the headless
Coot API from PyPI (``coot-headless-api``) and skip where it is not installed. Import order:
``coot_headless_api`` is safe after ``boost_adaptbx`` (conftest imports it first); imported
before any cctbx module it ends the process with a segfault in cctbx's bundled libstdc++,
as gemmi does.
"""

import io
import os
import struct

import numpy as np
import pytest

from conftest import assert_clean_exit, run_script
from ml_phasing.io import map_io

SOLVE = ("example_00000_solve_map.ccp4", "example_00000_solve.mtz", "FWT", "PHWT", "example_00000_solve.pdb")
EXAMPLE = (
    "ex/examples/example_00000_density.ccp4",
    "ex/examples/example_00000.mtz",
    "FC",
    "PHIC",
    "ex/examples/example_00000.pdb",
)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Every program that writes a CCP4 map, run once on one small peptide example."""
    base = tmp_path_factory.mktemp("maps")
    sim = ("source=peptides", "n_examples=1", "write_examples=1", "d_min_low=1.5", "d_min_high=1.5")
    assert_clean_exit(run_script("ml_phasing.simulate", *sim, "random_seed=7", "output.directory=ex", cwd=base))
    mtz = "ex/examples/example_00000.mtz"
    assert_clean_exit(run_script("ml_phasing.patterson_to_density", mtz, cwd=base))
    assert_clean_exit(run_script("ml_phasing.solve", mtz, "composition=C6 N2 O2", cwd=base))
    maps = [
        "ex/examples/example_00000_density.ccp4",
        "ex/examples/example_00000_patterson.ccp4",
        "example_00000_p2d_density.ccp4",
        "example_00000_solve_map.ccp4",
    ]
    for name in maps:
        assert os.path.isfile(base / name), name
    return base, maps


def _validate(path):
    """(mrcfile.validate's verdict, its message)."""
    mrcfile = pytest.importorskip("mrcfile")
    log = io.StringIO()
    return mrcfile.validate(str(path), print_file=log), log.getvalue()


def _header_i32(path, word):
    with open(path, "rb") as f:
        f.seek(4 * (word - 1))
        return struct.unpack("<i", f.read(4))[0]


def _read_gemmi(path):
    import gemmi

    m = gemmi.read_ccp4_map(str(path))
    m.setup(float("nan"))  # iotbx's axis order 3,2,1 -> [x, y, z]
    return m, np.array(m.grid, copy=True)


def test_every_map_the_programs_write_passes_mrcfile_validate(outputs):
    base, maps = outputs
    for name in maps:
        ok, message = _validate(base / name)
        assert ok, (name, message)
        assert _header_i32(base / name, 28) in (20140, 20141), name  # NVERSION
        assert [_header_i32(base / name, w) for w in (17, 18, 19)] == [3, 2, 1], name  # axis order kept


def test_the_old_iotbx_ccp4_map_header_is_rejected(outputs, tmp_path):
    """What issue 13 was about: iotbx.ccp4_map.write_ccp4_map (map_io's writer before) leaves
    NVERSION 0, and mrcfile.validate says "File does not declare MRC format version 20140 or
    20141: nversion = 0". The same map written by map_io passes (test above)."""
    import iotbx.ccp4_map
    from cctbx import sgtbx
    from cctbx.array_family import flex

    base, _ = outputs
    data, cell = map_io.read_ccp4_map(str(base / SOLVE[0]))
    old = tmp_path / "old.ccp4"
    flex_data = flex.double(data.astype(np.float64))
    flex_data.reshape(flex.grid(data.shape))
    from cctbx import uctbx

    iotbx.ccp4_map.write_ccp4_map(
        file_name=str(old),
        unit_cell=uctbx.unit_cell(cell),
        space_group=sgtbx.space_group_info("P1").group(),
        map_data=flex_data,
        labels=flex.std_string(["ml_phasing"]),
    )
    if _header_i32(old, 28) != 0:
        pytest.skip("this iotbx.ccp4_map writes NVERSION now")
    ok, message = _validate(old)
    assert not ok and "nversion = 0" in message, message
    # and the new file, with only NVERSION set back to 0, is rejected the same way
    patched = tmp_path / "patched.ccp4"
    raw = bytearray((base / SOLVE[0]).read_bytes())
    raw[108:112] = struct.pack("<i", 0)
    patched.write_bytes(bytes(raw))
    ok, message = _validate(patched)
    assert not ok and "nversion = 0" in message, message


def test_values_cell_and_space_group_read_back_by_iotbx_and_gemmi(tmp_path):
    """A zero-mean map (no F000, as the programs write) of large values on an odd triclinic
    grid: mrcfile's float32 mean would be off by more than validate's 1%; the values come back
    as float32 of what was written, through map_io/iotbx, iotbx.mrcfile and gemmi."""
    import iotbx.mrcfile
    from cctbx import uctbx

    rng = np.random.default_rng(13)
    written = rng.normal(scale=300.0, size=(8, 10, 12))
    written[0, 0, 0] = 4000.0
    written -= written.mean()
    params = (10.0, 11.5, 12.25, 80.0, 95.0, 100.0)
    path = tmp_path / "m.ccp4"
    map_io.write_ccp4_map(str(path), uctbx.unit_cell(params), written, title="ml_phasing test \u00e9" + "x" * 100)
    ok, message = _validate(path)
    assert ok, message
    expected = written.astype(np.float32)

    data, cell = map_io.read_ccp4_map(str(path))  # iotbx.ccp4_map
    assert data.shape == written.shape and np.array_equal(data.astype(np.float32), expected)
    assert np.allclose(cell, params, rtol=1e-6)

    m = iotbx.mrcfile.map_reader(file_name=str(path))
    assert np.array_equal(m.map_data().as_numpy_array().astype(np.float32), expected)
    assert np.allclose(m.unit_cell().parameters(), params, rtol=1e-6)
    assert m.space_group_number == 1

    g, values = _read_gemmi(path)
    assert values.shape == written.shape and np.array_equal(values, expected)
    assert np.allclose(g.grid.unit_cell.parameters, params, rtol=1e-6)
    assert g.grid.spacegroup.hm == "P 1"

    import mrcfile

    with mrcfile.open(str(path)) as mrc:
        assert mrc.header.ispg == 1 and mrc.header.mode == 2
        assert (int(mrc.header.mapc), int(mrc.header.mapr), int(mrc.header.maps)) == (3, 2, 1)
        assert np.isclose(mrc.header.dmean, expected.mean(dtype=np.float64), rtol=1e-5, atol=0)
        assert mrc.header.label[0].decode().startswith("ml_phasing test ?x") and mrc.header.nlabl == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ccp4"]  # no temporary left


def test_program_maps_agree_between_iotbx_and_gemmi(outputs):
    import iotbx.ccp4_map

    base, maps = outputs
    for name in maps:
        r = iotbx.ccp4_map.map_reader(file_name=str(base / name))
        g, values = _read_gemmi(base / name)
        assert np.array_equal(r.map_data().as_numpy_array().astype(np.float32), values), name
        assert np.allclose(r.unit_cell().parameters(), g.grid.unit_cell.parameters, rtol=1e-6), name


@pytest.mark.parametrize("case", [SOLVE, EXAMPLE], ids=["solve_FWT", "simulate_FC"])
def test_coot_reads_the_map_and_makes_the_same_map_from_the_mtz(outputs, case):
    """Headless Coot opens our CCP4 map and the program's MTZ; Coot's own map from the MTZ
    (read_mtz, no weights) must match ours.

    Expectation, and its source: solve writes its map as the FFT of the very 2mFo-DFc
    coefficients it writes as FWT/PHWT (ml_phasing/phasing/solution.py), and simulate writes the
    example density as the FFT of FC/PHIC (ml_phasing/examples), so the maps differ only by
    (1) gridding: Coot samples at its own rate (1.8 x Nyquist: 24^3 here, ours 20^3) and
    interpolates, and (2) scale: Coot/clipper divide by the cell volume V, cctbx's fft_map (no
    volume scaling) does not. Measured on this example: correlation 0.9997 on our grid points
    and 0.999 at the 10 atom sites; rmsd ratio V to 1e-7 relative; peak heights at the sites
    within 5% of V. Tolerances: correlation > 0.99, rmsd ratio within 2% of V, each peak within
    10% of V. Coot's reading of our map itself reproduces our values at our grid points exactly
    (same cell, origin and axis order), to float32 rounding.
    """
    chapi = pytest.importorskip("coot_headless_api")
    import iotbx.ccp4_map
    import iotbx.pdb

    base, _ = outputs
    map_name, mtz_name, f, phi, pdb_name = (str(base / n) if n.endswith((".ccp4", ".mtz", ".pdb")) else n for n in case)
    mc = chapi.molecules_container_t(False)
    imap = mc.read_ccp4_map(map_name, False)
    imtz = mc.read_mtz(mtz_name, f, phi, "", False, False)
    assert imap >= 0 and imtz >= 0 and mc.is_valid_map_molecule(imap) and mc.is_valid_map_molecule(imtz)

    reader = iotbx.ccp4_map.map_reader(file_name=map_name)
    ours = reader.map_data().as_numpy_array().astype(np.float64)
    uc = reader.unit_cell()
    n = ours.shape
    frac = np.stack(np.meshgrid(*[np.arange(k) / k for k in n], indexing="ij"), -1).reshape(-1, 3)
    points = [uc.orthogonalize(tuple(p)) for p in frac]
    read = np.array([mc.get_density_at_position(imap, *p) for p in points])
    made = np.array([mc.get_density_at_position(imtz, *p) for p in points])
    scale = np.abs(ours).max()
    assert np.abs(read - ours.reshape(-1)).max() <= 1e-6 * scale

    volume = uc.volume()
    assert np.corrcoef(made, ours.reshape(-1))[0, 1] > 0.99
    ratio = mc.get_map_rmsd_approx(imap) / mc.get_map_rmsd_approx(imtz)
    assert abs(ratio / volume - 1) < 0.02, (ratio, volume)

    sites = iotbx.pdb.input(file_name=pdb_name).atoms().extract_xyz()
    assert len(sites) >= 5
    at_ours = np.array([mc.get_density_at_position(imap, *s) for s in sites])
    at_coot = np.array([mc.get_density_at_position(imtz, *s) for s in sites])
    assert np.corrcoef(at_ours, at_coot)[0, 1] > 0.99
    assert np.all(np.abs(at_ours / (at_coot * volume) - 1) < 0.10), at_ours / (at_coot * volume)
