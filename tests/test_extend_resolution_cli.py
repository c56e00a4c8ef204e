"""ml_phasing.extend_resolution with a small model trained in the fixture."""

import json
import os
import shlex
import shutil

import numpy as np
import pytest

from conftest import assert_clean_exit, run_script


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("ext")
    common = [
        "random_atoms.space_groups=P21",
        "random_atoms.n_atoms_min=12",
        "random_atoms.n_atoms_max=12",
        "outputs.patterson=False",
        "outputs.density=False",
        "d_min_low=0.9",
        "d_min_high=0.8",
    ]
    assert_clean_exit(run_script("ml_phasing.simulate", *common, "n_examples=12", "output.directory=train", cwd=base))
    assert_clean_exit(
        run_script(
            "ml_phasing.simulate",
            *common,
            "n_examples=1",
            "write_examples=1",
            "random_seed=3",
            "output.directory=held",
            cwd=base,
        )
    )
    assert_clean_exit(
        run_script(
            "ml_phasing.train",
            "task=extend_resolution",
            "train.data.train=train",
            "epochs=1",
            "batch_size=4",
            "model.fft_unet.base_channels=2",
            "model.fft_unet.depth=1",
            "output.directory=model",
            cwd=base,
        )
    )
    shutil.copy(base / "held" / "examples" / "example_00000.mtz", base / "data.mtz")
    shutil.copy(base / "model" / "model.pt", base / "ext_model.pt")
    return base


def test_shipped_models_are_in_the_package():
    from ml_phasing.models.model_file import load_bundle, shipped_models

    for name, (low, high) in {"extend_1.2_to_1.0A": (1.2, 1.0), "extend_1.5_to_0.8A": (1.5, 0.8)}.items():
        path = shipped_models()[name]
        assert os.path.getsize(path) < 20 * 1024 * 1024
        info = load_bundle(path, task="extend_resolution").info
        cfg = info["task_config"]
        assert (cfg["d_min_low"], cfg["d_min_high"]) == (low, high)
        assert cfg["space_group_numbers"] == [1, 2, 4, 5, 14, 19]  # P1 P-1 P21 C2 P21/c P212121


@pytest.mark.parametrize(
    "d_data, target, expected",
    [
        (1.2, None, "extend_1.2_to_1.0A"),
        (0.9, None, "extend_1.2_to_1.0A"),
        (1.5, None, "extend_1.5_to_0.8A"),
        (1.0, 0.8, "extend_1.5_to_0.8A"),
    ],
)
def test_default_model_fits_the_data(d_data, target, expected):
    from ml_phasing.models.model_file import resolve, shipped_models

    task = "extend_resolution"
    assert resolve(None, task, d_min_data=d_data, d_min_target=target) == shipped_models(task)[expected]
    assert resolve(expected, task) == shipped_models(task)[expected]
    assert resolve("my.pt", task) == "my.pt"


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """A crystal from the 1.2 -> 1.0 A model's own recipe (held-out seed): F to 1.2 A, FC to 1.0 A."""
    base = tmp_path_factory.mktemp("held")
    recipe = os.path.join(os.path.dirname(__file__), "..", "phil", "extend_1.2_to_1.0A_simulate.eff")
    assert_clean_exit(
        run_script(
            "ml_phasing.simulate",
            recipe,
            "n_examples=1",
            "write_examples=1",
            "nproc=1",
            "random_seed=1000003",
            "output.directory=held",
            cwd=base,
        )
    )
    return base


def _mtz_arrays(path):
    import iotbx.mtz

    return {a.info().label_string(): a for a in iotbx.mtz.object(str(path)).as_miller_arrays()}


def test_main_job_with_the_shipped_model(held_out):
    """Run with no model= at all."""
    proc = run_script(
        "ml_phasing.extend_resolution",
        "held/examples/example_00000.mtz",
        "output.prefix=ext",
        "--overwrite",
        cwd=held_out,
    )
    assert_clean_exit(proc)
    summary = json.loads((held_out / "ext.json").read_text())
    assert summary["model"].endswith("extend_1.2_to_1.0A.pt") and summary["d_min_target"] == 1.0
    # solve=Auto without composition=: the cell's contents are unknown, so no engine run
    assert "solution" not in summary and not list(held_out.glob("ext_solve*"))
    assert "No structure refined (solve=Auto): give composition=" in proc.stdout
    ext = _mtz_arrays(held_out / "ext.mtz")["F_EXT,SIGF_EXT"]
    truth = _mtz_arrays(held_out / "held/examples/example_00000.mtz")
    assert truth["F,SIGF"].d_min() >= 1.2 - 1e-3  # the "measured" data stop at d_min_low
    truth = truth["FC,PHIC"].as_amplitude_array()  # the true amplitudes to 1.0 A
    assert ext.d_min() == pytest.approx(1.0, abs=0.03)
    outer = truth.resolution_filter(d_max=1.2 * (1 - 1e-6))
    pred, true = ext.common_set(outer), outer.common_set(ext)
    assert pred.size() == outer.size() > 50
    r = np.abs(pred.data().as_numpy_array() - true.data().as_numpy_array()).sum() / true.data().as_numpy_array().sum()
    assert r < 0.8  # a model that knew nothing of the scale would read ~1 (docs/models.md: median ~0.45)


def test_measured_reflections_beyond_the_model_input_pass_through(held_out):
    """Data to 1.1 A with the 1.2 -> 1.0 A model: the network sees them to 1.2 A, but the
    measured 1.2-1.1 A amplitudes are kept, and only 1.1-1.0 A is predicted. Data that
    already reach the target leave nothing to predict: a Sorry."""
    from ml_phasing.io.map_io import write_mtz

    fc = _mtz_arrays(held_out / "held/examples/example_00000.mtz")["FC,PHIC"].as_amplitude_array()
    write_mtz(str(held_out / "to_1.1.mtz"), [(fc.resolution_filter(d_min=1.1), "F")])
    write_mtz(str(held_out / "to_1.0.mtz"), [(fc, "F")])
    proc = run_script("ml_phasing.extend_resolution", "to_1.1.mtz", "output.prefix=p11", "--overwrite", cwd=held_out)
    assert_clean_exit(proc)
    arrays = _mtz_arrays(held_out / "p11.mtz")
    ext, flag = arrays["F_EXT,SIGF_EXT"], arrays["PREDICTED"]
    d = ext.d_spacings().data().as_numpy_array()
    predicted = flag.common_set(ext).data().as_numpy_array() == 1
    np.testing.assert_array_equal(predicted, d < 1.1 * (1 - 1e-6))
    kept = ext.select(flex_bool(~predicted))
    np.testing.assert_allclose(kept.data().as_numpy_array(), fc.common_set(kept).data().as_numpy_array(), rtol=1e-5)
    proc = run_script("ml_phasing.extend_resolution", "to_1.0.mtz", "output.prefix=p10", cwd=held_out)
    assert_clean_exit(proc, 1)
    assert "nothing to predict" in proc.stderr and not list(held_out.glob("p10.*"))


def test_d_min_cuts_data_that_reach_further(held_out, capsys):
    """Issue 13: d_min= cuts the input first, so that true 1.0 A data can be extended from 1.2 A
    (and compared with the truth); the cut is said in the log."""
    from ml_phasing.program_support import run_cli
    from ml_phasing.programs.extend_resolution import Program

    if not (held_out / "to_1.0.mtz").exists():
        from ml_phasing.io.map_io import write_mtz

        fc = _mtz_arrays(held_out / "held/examples/example_00000.mtz")["FC,PHIC"].as_amplitude_array()
        write_mtz(str(held_out / "to_1.0.mtz"), [(fc, "F")])
    prefix = held_out / "cut"
    assert run_cli(Program, [str(held_out / "to_1.0.mtz"), "d_min=1.2", f"output.prefix={prefix}"]) == 0
    log = (held_out / "cut.log").read_text()
    assert "Note: data cut at d_min=1.2 A" in log
    arrays = _mtz_arrays(held_out / "cut.mtz")
    flag = arrays["PREDICTED"]
    d = flag.d_spacings().data().as_numpy_array()
    np.testing.assert_array_equal(flag.data().as_numpy_array() == 1, d < 1.2 * (1 - 1e-6))
    assert run_cli(Program, [str(held_out / "to_1.0.mtz"), "d_min=0.9", f"output.prefix={held_out}/x"]) == 1
    assert "finer than the data" in capsys.readouterr().err


def flex_bool(mask):
    from cctbx.array_family import flex

    return flex.bool(mask.tolist())


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
    """The phasing engine on the 0.9 A measured data solves this 12-atom P21 structure (seeded: it must)."""
    import iotbx.cif

    truth = list(
        iotbx.cif.reader(file_path=str(setup / "held/examples/example_00000.cif")).build_crystal_structures().values()
    )[0]
    counts = {}
    for sc in truth.scatterers():
        counts[sc.scattering_type] = counts.get(sc.scattering_type, 0) + 1
    composition = " ".join(f"{e}{n}" for e, n in counts.items())
    proc = run_script(
        "ml_phasing.extend_resolution",
        "data.mtz",
        "model=ext_model.pt",
        "solve_data=measured",  # solve=Auto: composition= is given, so the engine runs
        f"composition={composition}",
        "engine.molecule=False",
        "output.prefix=base",
        "--overwrite",
        cwd=setup,
    )
    assert_clean_exit(proc)
    summary = json.loads((setup / "base.json").read_text())
    assert summary["solution"]["solved"], summary["solution"]["starts"]
    for s in (".mtz", "_map.ccp4", ".pdb", ".res", ".cif"):
        assert (setup / f"base_solve{s}").stat().st_size > 0
    proc = run_script(
        "ml_phasing.evaluate",
        "reference.file=held/examples/example_00000.cif",
        "prediction.file=base_solve.mtz",
        "prediction.labels=FWT,PHWT",
        "--json",
        "--overwrite",
        cwd=setup,
    )
    assert_clean_exit(proc)
    r = json.loads((setup / "evaluate_result.json").read_text())["predictions"][0]
    assert r["atoms"]["fraction_matched"] == 1.0


@pytest.mark.parametrize(
    "args, message",
    [
        (["lowres2.mtz"], "needs them to 1.50"),
        (["data.mtz", "model=ext_model.pt", "d_min_target=0.5"], "finer than the model"),
        (["data.mtz", "model=ext_model.pt", "composition=C200"], "composition"),
        (["data.mtz", "model=ext_model.pt", "composition=Xq3"], "composition"),
        (["data.mtz", "model=ext_model.pt", "symmetry.space_group=P2"], "has not seen space group"),
        (["data.mtz", "model=ext_model.pt", "symmetry.space_group=P212121"], "does not fit the unit cell"),
        (["lowres.mtz", "model=ext_model.pt"], "needs them to 0.90"),
        (["truncated.mtz"], "Cannot read"),
        (["nan.mtz", "model=ext_model.pt"], "NaN"),
        (["phases_only.mtz"], "No amplitude or intensity columns"),
    ],
)
def test_bad_input(setup, args, message):
    import iotbx.mtz
    from ml_phasing.io.map_io import write_mtz

    arrays = {a.info().label_string(): a for a in iotbx.mtz.object(str(setup / "data.mtz")).as_miller_arrays()}
    f = arrays["F,SIGF"]
    full = (setup / "data.mtz").read_bytes()
    (setup / "truncated.mtz").write_bytes(full[: len(full) // 2])
    nan = f.data().deep_copy()
    nan[3] = float("nan")
    write_mtz(str(setup / "nan.mtz"), [(f.customized_copy(data=nan), "F")])
    write_mtz(str(setup / "phases_only.mtz"), [(arrays["FC,PHIC"], "FC")], rename={"PHIFC": "PHIC"})
    write_mtz(str(setup / "lowres.mtz"), [(f.resolution_filter(d_min=1.5), "F")])
    write_mtz(str(setup / "lowres2.mtz"), [(f.resolution_filter(d_min=2.0), "F")])
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
    if "ext_model.pt" not in command:  # the shipped models want data to 1.2 or 1.5 A, not beyond 1.0 A
        from ml_phasing.io.map_io import write_mtz

        f = _mtz_arrays(setup / "data.mtz")["F,SIGF"]
        write_mtz(str(tmp_path / "data.mtz"), [(f.resolution_filter(d_min=1.2), "F")])
    shutil.copy(setup / "ext_model.pt", tmp_path)
    proc = run_script("ml_phasing.extend_resolution", *shlex.split(command)[1:], "--dry-run", cwd=tmp_path)
    assert_clean_exit(proc)
