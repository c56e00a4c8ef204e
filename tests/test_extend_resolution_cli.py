"""ml_phasing.extend_resolution with a small model trained in the fixture."""
import json
import shlex
import shutil

import numpy as np
import pytest

from conftest import assert_clean_exit, run_script


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("ext")
    common = ["random_atoms.space_groups=P21", "random_atoms.n_atoms_min=12", "random_atoms.n_atoms_max=12",
              "outputs.patterson=False", "outputs.density=False", "d_min_low=0.9", "d_min_high=0.8"]
    assert_clean_exit(run_script("ml_phasing.simulate", *common, "n_examples=12", "output.directory=train",
                                 cwd=base))
    assert_clean_exit(run_script("ml_phasing.simulate", *common, "n_examples=1", "write_examples=1",
                                 "random_seed=3", "output.directory=held", cwd=base))
    assert_clean_exit(run_script("ml_phasing.train", "task=extend_resolution", "train.data.train=train", "epochs=1",
                                 "batch_size=4", "model.fft_unet.base_channels=2", "model.fft_unet.depth=1",
                                 "output.directory=model", cwd=base))
    shutil.copy(base / "held" / "examples" / "example_00000.mtz", base / "data.mtz")
    shutil.copy(base / "model" / "model.pt", base / "ext_model.pt")
    return base


def test_outputs(setup):
    proc = run_script("ml_phasing.extend_resolution", "data.mtz", "model=ext_model.pt", "--overwrite", cwd=setup)
    assert_clean_exit(proc)
    import iotbx.mtz
    import gemmi

    mtz = iotbx.mtz.object(str(setup / "data_ext.mtz"))
    labels = [c.label() for c in mtz.columns()]
    assert labels == ["H", "K", "L", "F", "SIGF", "F_EXT", "SIGF_EXT", "PREDICTED"]
    arrays = {a.info().label_string(): a for a in mtz.as_miller_arrays()}
    f, ext = arrays["F,SIGF"], arrays["F_EXT,SIGF_EXT"]
    assert ext.d_min() == pytest.approx(0.8, abs=0.02) and f.d_min() >= 0.9 - 1e-3
    assert ext.sys_absent_flags().data().count(True) == 0
    common = ext.common_set(f)
    np.testing.assert_allclose(common.data().as_numpy_array(), f.common_set(ext).data().as_numpy_array(), rtol=1e-6)
    g = gemmi.read_mtz_file(str(setup / "data_ext.mtz"))
    flags = np.array(g.column_with_label("PREDICTED"))
    assert set(np.unique(flags)) <= {0.0, 1.0} and flags.sum() > 0
    ins = (setup / "data_ext.ins").read_text().splitlines()
    assert [ln.split()[0] for ln in ins if ln.strip()][:5] == ["TITL", "CELL", "ZERR", "LATT", "SYMM"]
    assert "UNIT" in (setup / "data_ext.ins").read_text() and ins[-2:] == ["HKLF 4", "END"]
    hkl = (setup / "data_ext.hkl").read_text().splitlines()
    assert hkl[-1].split()[:3] == ["0", "0", "0"]
    assert len(hkl) - 1 == ext.size()  # F^2 of every reflection, then the terminator


def test_solve_baseline_on_measured_data(setup):
    """Charge flipping on the 0.9 A measured data solves this 12-atom P21 structure."""
    proc = run_script("ml_phasing.extend_resolution", "data.mtz", "model=ext_model.pt", "solve=True",
                      "solve_data=measured", "output.prefix=base", "--overwrite", cwd=setup)
    assert_clean_exit(proc)
    summary = json.loads((setup / "base.json").read_text())
    if not summary["solution"]["solved"]:
        pytest.skip("charge flipping did not converge for this seed (it is stochastic)")
    for s in ("_solution.mtz", "_solution.ccp4", "_solution.pdb", "_solution.res"):
        assert (setup / f"base{s}").stat().st_size > 0
    proc = run_script("ml_phasing.evaluate", "reference.file=held/examples/example_00000.cif",
                      "prediction.file=base_solution.mtz", "--json", "--overwrite", cwd=setup)
    assert_clean_exit(proc)
    r = json.loads((setup / "evaluate_result.json").read_text())["predictions"][0]
    assert r["atoms"]["fraction_matched"] >= 0.8


@pytest.mark.parametrize("args, message", [
    (["data.mtz"], "model= is required"),
    (["data.mtz", "model=ext_model.pt", "d_min_target=0.5"], "finer than the model"),
    (["data.mtz", "model=ext_model.pt", "composition=C200"], "composition"),
    (["data.mtz", "model=ext_model.pt", "composition=Xq3"], "composition"),
    (["data.mtz", "model=ext_model.pt", "symmetry.space_group=P2"], "has not seen space group"),
    (["data.mtz", "model=ext_model.pt", "symmetry.space_group=P212121"], "does not fit the unit cell"),
    (["lowres.mtz", "model=ext_model.pt"], "needs them to 0.90"),
])
def test_bad_input(setup, args, message):
    import iotbx.mtz
    from ml_phasing.map_io import write_mtz

    f = {a.info().label_string(): a for a in iotbx.mtz.object(str(setup / "data.mtz")).as_miller_arrays()}["F,SIGF"]
    write_mtz(str(setup / "lowres.mtz"), [(f.resolution_filter(d_min=1.5), "F")])
    proc = run_script("ml_phasing.extend_resolution", *args, "output.prefix=bad", cwd=setup)
    assert_clean_exit(proc, 1)
    assert proc.stderr.lstrip().startswith("Sorry:") and message in proc.stderr, proc.stderr
    assert not list(setup.glob("bad.*"))


def _help_examples():
    from ml_phasing.programs.extend_resolution import Program

    text = Program.description.replace("\\\n", " ")
    return [ln.strip() for ln in text.splitlines() if ln.strip().startswith("ml_phasing.extend_resolution ")]


@pytest.mark.parametrize("command", _help_examples())
def test_help_examples_validate(setup, command, tmp_path):
    shutil.copy(setup / "data.mtz", tmp_path)
    shutil.copy(setup / "ext_model.pt", tmp_path)
    proc = run_script("ml_phasing.extend_resolution", *shlex.split(command)[1:], "--dry-run", cwd=tmp_path)
    assert_clean_exit(proc)
