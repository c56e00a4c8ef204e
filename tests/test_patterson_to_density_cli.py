"""ml_phasing.patterson_to_density with the shipped model, as a crystallographer runs it."""

import json
import os
import shlex
import shutil

import numpy as np
import pytest

from conftest import assert_clean_exit, run_script
from ml_phasing.models.model_file import default_model

DEFAULT_MODEL = default_model("patterson_to_density")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("p2d")
    assert_clean_exit(
        run_script(
            "ml_phasing.simulate",
            "source=peptides",
            "n_examples=2",
            "write_examples=2",
            "d_min_low=1.5",
            "d_min_high=1.5",
            "random_seed=99",
            "output.directory=sim",
            cwd=base,
        )
    )
    shutil.copy(base / "sim" / "examples" / "example_00000.mtz", base / "data.mtz")
    return base


def test_shipped_model_is_in_the_package():
    assert os.path.isfile(DEFAULT_MODEL)
    assert os.path.getsize(DEFAULT_MODEL) < 20 * 1024 * 1024
    from ml_phasing.models.model_file import load_bundle
    from ml_phasing.tasks import PattersonToDensity

    bundle = load_bundle(DEFAULT_MODEL, task="patterson_to_density")
    assert isinstance(bundle.task, PattersonToDensity) and bundle.task.pad_multiple == 2
    assert bundle.config.task_config["grid"] == [20, 20, 20]
    assert bundle.metrics["median_map_cc"] > 0.5  # recorded when it was trained (docs/models.md)


def test_main_job_with_no_other_argument(data):
    proc = run_script("ml_phasing.patterson_to_density", "data.mtz", "--overwrite", cwd=data)
    assert_clean_exit(proc)
    for name in ("data_p2d.mtz", "data_p2d_density.ccp4", "data_p2d.json", "data_p2d.log"):
        assert (data / name).stat().st_size > 0
    summary = json.loads((data / "data_p2d.json").read_text())
    assert summary["grid"] == [20, 20, 20] and 0 <= summary["mean_fom"] <= 1
    # refinement.cycles=Auto: no charge flipping after the shipped dialanine model
    assert summary["refinement_cycles"] == 0 and summary["model"]["task_config"]["recycling_passes"] == 3
    log = (data / "data_p2d.log").read_text()
    assert "random_seed: 0" in log and "device: cpu" in log
    # solve=Auto: the dialanine model fixes the cell's contents, so the engine runs from the
    # network's starts and writes a refined structure (docs/solve.md: 95-100% of dialanines)
    solution = summary["solution"]
    assert solution["composition"] == {"C": 6, "N": 2, "O": 2}
    assert "contents of the asymmetric unit: C6 N2 O2 (the molecule the model was trained on)" in log
    assert solution["solved"] is True and solution["best"]["n_atoms"] == 10
    for suffix in (".res", ".cif", ".pdb", ".mtz", "_map.ccp4"):
        assert (data / f"data_p2d_solve{suffix}").stat().st_size > 0


def test_solve_false_keeps_the_network_only_path(data, tmp_path):
    shutil.copy(data / "data.mtz", tmp_path / "data.mtz")
    proc = run_script("ml_phasing.patterson_to_density", "data.mtz", "solve=False", "refinement.cycles=0", cwd=tmp_path)
    assert_clean_exit(proc)
    assert "solution" not in json.loads((tmp_path / "data_p2d.json").read_text())
    assert not list(tmp_path.glob("data_p2d_solve*"))


def test_model_composition_only_for_a_one_molecule_model():
    from ml_phasing.models.model_file import load_bundle, shipped_models
    from ml_phasing.prediction.density_prediction import model_composition

    dialanine = load_bundle(shipped_models()["dialanine_10A"], task="patterson_to_density")
    dipeptide = load_bundle(shipped_models()["dipeptide_12A"], task="patterson_to_density")
    assert model_composition(dialanine) == {"C": 6, "N": 2, "O": 2}  # N, CA, C, O, CB twice
    assert model_composition(dipeptide) is None  # any two residues: the user must say


def test_outputs_open_in_gemmi_and_iotbx(data):
    import gemmi
    import iotbx.mtz

    if not (data / "data_p2d.mtz").exists():
        assert_clean_exit(run_script("ml_phasing.patterson_to_density", "data.mtz", "--overwrite", cwd=data))
    mtz = gemmi.read_mtz_file(str(data / "data_p2d.mtz"))
    labels = [c.label for c in mtz.columns]
    assert labels == ["H", "K", "L", "F", "SIGF", "FWT", "PHWT", "PHIB", "FOM", "FC", "PHIC"]
    assert [mtz.column_with_label(x).type for x in ("F", "SIGF", "FWT", "PHWT", "PHIB", "FOM", "FC", "PHIC")] == [
        "F",
        "Q",
        "F",
        "P",
        "P",
        "W",
        "F",
        "P",
    ]
    fom = np.array(mtz.column_with_label("FOM"))
    assert np.all((fom >= 0) & (fom <= 1))
    iotbx_labels = [a.info().label_string() for a in iotbx.mtz.object(str(data / "data_p2d.mtz")).as_miller_arrays()]
    assert "FWT,PHWT" in iotbx_labels and "FC,PHIC" in iotbx_labels
    written = gemmi.read_ccp4_map(str(data / "data_p2d_density.ccp4"))
    written.setup(float("nan"))
    dens = np.array(written.grid, copy=False)
    # A map gemmi makes from FWT/PHWT correlates with the written density (same phases,
    # amplitudes m*Fobs versus the density's own |FC|).
    fwt_map = np.array(mtz.transform_f_phi_to_map("FWT", "PHWT", exact_size=list(dens.shape)), copy=False)
    assert np.corrcoef(fwt_map.ravel(), dens.ravel())[0, 1] > 0.5
    fc_map = np.array(mtz.transform_f_phi_to_map("FC", "PHIC", exact_size=list(dens.shape)), copy=False)
    assert np.corrcoef(fc_map.ravel(), dens.ravel())[0, 1] > 0.999


def test_evaluate_against_truth(data):
    """The shipped model's phases are better than random on a held-out dialanine."""
    if not (data / "data_p2d.mtz").exists():
        assert_clean_exit(run_script("ml_phasing.patterson_to_density", "data.mtz", "--overwrite", cwd=data))
    proc = run_script(
        "ml_phasing.evaluate",
        "reference.file=data.mtz",
        "reference.labels=FC,PHIC",
        "prediction.file=data_p2d.mtz",
        "prediction.labels=FWT,PHWT",
        "--json",
        "--overwrite",
        cwd=data,
    )
    assert_clean_exit(proc)
    r = json.loads((data / "evaluate_result.json").read_text())["predictions"][0]
    assert r["phases"]["overall"]["f_weighted_phase_error"] < 80  # random phases read ~90
    # the dipeptide model, and a model file of one's own, get 20 charge-flipping cycles by default
    import shutil

    from ml_phasing.models.model_file import load_bundle, shipped_models
    from ml_phasing.prediction.density_prediction import default_refinement_cycles

    assert default_refinement_cycles(load_bundle(DEFAULT_MODEL, task="patterson_to_density")) == 0
    assert default_refinement_cycles(load_bundle(shipped_models()["dipeptide_12A"])) == 20
    shutil.copy(DEFAULT_MODEL, data / "mine.pt")
    assert default_refinement_cycles(load_bundle(str(data / "mine.pt"))) == 20


def test_space_group_data_are_expanded_and_symmetrised(tmp_path):
    """P21 data in an orthogonal 9.5 A cell: expanded to P1 for the network, symmetrised back."""
    from cctbx import crystal, xray
    from cctbx.array_family import flex
    from ml_phasing.io.map_io import write_mtz

    cs = crystal.symmetry((9.5, 9.0, 9.8, 90, 90, 90), "P21")
    sites = [("C1", (0.1, 0.2, 0.3)), ("N2", (0.25, 0.3, 0.15)), ("O3", (0.3, 0.05, 0.4)), ("C4", (0.05, 0.1, 0.1))]
    xs = xray.structure(
        crystal_symmetry=cs,
        scatterers=flex.xray_scatterer(
            [xray.scatterer(label, site, u=0.1, scattering_type=label[0]) for label, site in sites]
        ),
    )
    fc = xs.structure_factors(d_min=1.5, algorithm="direct").f_calc()
    f = fc.as_amplitude_array()
    f = f.customized_copy(sigmas=f.data() * 0.01 + 0.1)
    write_mtz(str(tmp_path / "p21.mtz"), [(f, "F"), (fc, "FC")], rename={"PHIFC": "PHIC"})
    proc = run_script("ml_phasing.patterson_to_density", "p21.mtz", "--json", cwd=tmp_path)
    assert_clean_exit(proc)
    assert "Origin consistent with P 1 21 1" in proc.stdout
    # solve=Auto: one dialanine per P1 cell is what the model knows; in P21 nothing is assumed
    assert "Phasing engine" not in proc.stdout and not list(tmp_path.glob("p21_p2d_solve*"))
    assert "No structure refined (solve=Auto)" in proc.stdout
    res = json.loads((tmp_path / "patterson_to_density_result.json").read_text())
    assert -1 <= res["symmetry_cc"] <= 1 and res["grid"] == [20, 18, 20]
    import iotbx.mtz

    out = {a.info().label_string(): a for a in iotbx.mtz.object(str(tmp_path / "p21_p2d.mtz")).as_miller_arrays()}
    fwt = out["FWT,PHWT"]
    assert str(fwt.space_group_info()) == "P 1 21 1" and fwt.size() == f.size()
    # Symmetrised phases obey the space group: centric reflections have phases 0 or 180 (+ shift).
    assert fwt.centric_flags().data().count(True) > 0


@pytest.fixture(scope="module")
def bad_files(data):
    full = (data / "data.mtz").read_bytes()
    (data / "truncated.mtz").write_bytes(full[: len(full) // 2])
    import iotbx.mtz
    from ml_phasing.io.map_io import write_mtz

    arrays = {a.info().label_string(): a for a in iotbx.mtz.object(str(data / "data.mtz")).as_miller_arrays()}
    f = arrays["F,SIGF"]
    write_mtz(str(data / "phases_only.mtz"), [(arrays["FC,PHIC"], "FC")], rename={"PHIFC": "PHIC"})
    neg = f.customized_copy(data=f.data() * -1.0)
    write_mtz(str(data / "negative.mtz"), [(neg, "F")])
    nan = f.data().deep_copy()
    nan[3] = float("nan")
    write_mtz(str(data / "nan.mtz"), [(f.customized_copy(data=nan), "F")])
    from cctbx import crystal

    big = f.customized_copy(crystal_symmetry=crystal.symmetry((20, 20, 20, 90, 90, 90), "P1"))
    write_mtz(str(data / "big.mtz"), [(big, "F")])
    low = f.resolution_filter(d_min=2.5)
    write_mtz(str(data / "lowres.mtz"), [(low, "F")])
    with open(data / "data.hkl", "w") as fh:
        f.f_as_f_sq().export_as_shelx_hklf(fh, normalise_if_format_overflow=True)
    return data


@pytest.mark.parametrize(
    "args, message",
    [
        (["phases_only.mtz"], "No amplitude or intensity columns"),
        (["truncated.mtz"], "Cannot read"),
        (["negative.mtz"], "negative amplitudes"),
        (["nan.mtz"], "NaN"),
        (["big.mtz"], "too large for this model"),
        (["lowres.mtz"], "model needs 1.50 A"),
        (["data.hkl"], "no cell or space group"),
        (["data.mtz", "input.labels=FOO,SIGFOO"], "available: F,SIGF"),
        (["missing.mtz"], "missing.mtz"),
    ],
)
def test_bad_input_gives_one_sorry_and_no_files(bad_files, args, message):
    prefix = "bad_" + args[0].split(".")[0]
    proc = run_script("ml_phasing.patterson_to_density", *args, f"output.prefix={prefix}", cwd=bad_files)
    assert_clean_exit(proc, 1)
    assert proc.stderr.lstrip().startswith("Sorry:") and message in proc.stderr, proc.stderr
    assert not list(bad_files.glob(f"{prefix}*"))


def test_model_for_another_task(bad_files, tmp_path):
    import torch
    from ml_phasing.models.model_file import save_model
    from ml_phasing.models import MLP

    net = MLP(in_shape=(1, 3, 3, 3), out_shape=(1, 3, 3, 3), hidden=(2,))
    save_model(
        str(tmp_path / "other.pt"),
        net,
        "mlp",
        {"in_shape": [1, 3, 3, 3], "out_shape": [1, 3, 3, 3], "hidden": [2], "dropout": 0.0},
        {"task": "extend_resolution"},
    )
    proc = run_script(
        "ml_phasing.patterson_to_density",
        "data.mtz",
        f"model={tmp_path / 'other.pt'}",
        "output.prefix=other",
        cwd=bad_files,
    )
    assert_clean_exit(proc, 1)
    assert "not 'patterson_to_density'" in proc.stderr
    del torch


def test_shelx_hkl_with_symmetry(bad_files):
    proc = run_script(
        "ml_phasing.patterson_to_density",
        "data.hkl",
        "symmetry.unit_cell=10,10,10,90,90,90",
        "symmetry.space_group=P1",
        "output.prefix=hkl",
        "--overwrite",
        cwd=bad_files,
    )
    assert_clean_exit(proc)
    assert "French-Wilson" in proc.stdout  # SHELX HKLF 4 holds intensities


def _help_examples():
    from ml_phasing.programs.patterson_to_density import Program

    text = Program.description.replace("\\\n", " ")
    return [ln.strip() for ln in text.splitlines() if ln.strip().startswith("ml_phasing.patterson_to_density ")]


@pytest.mark.parametrize("command", _help_examples())
def test_help_examples_validate(bad_files, command, tmp_path):
    shutil.copy(bad_files / "data.mtz", tmp_path / "data.mtz")
    shutil.copy(bad_files / "data.hkl", tmp_path / "data.hkl")
    shutil.copy(DEFAULT_MODEL, tmp_path / "my_model.pt")
    if "dipeptide.mtz" in command:
        from ml_phasing.models.model_file import shipped_models

        if not os.path.isfile(shipped_models()["dipeptide_12A"]):
            pytest.skip("no shipped dipeptide model in this checkout")
        assert_clean_exit(
            run_script(
                "ml_phasing.simulate",
                "source=peptides",
                "peptides.kind=dipeptide",
                "peptides.cell_edge=12",
                "n_examples=1",
                "write_examples=1",
                "d_min_low=1.5",
                "d_min_high=1.5",
                "output.directory=dp",
                cwd=tmp_path,
            )
        )
        shutil.copy(tmp_path / "dp" / "examples" / "example_00000.mtz", tmp_path / "dipeptide.mtz")
    command = command.replace("input.labels=FP,SIGFP", "input.labels=F,SIGF")  # our file's labels
    proc = run_script("ml_phasing.patterson_to_density", *shlex.split(command)[1:], "--dry-run", cwd=tmp_path)
    assert_clean_exit(proc)


def _rotation_matrix(rotation):
    perm, flips = rotation
    m = np.zeros((3, 3), int)
    for new_axis, old_axis in enumerate(perm):
        m[new_axis, old_axis] = -1 if new_axis in flips else 1
    return m


@pytest.mark.parametrize("shape, n", [((6, 6, 6), 24), ((6, 6, 8), 8), ((4, 6, 8), 4)])
def test_grid_rotations_are_proper_and_map_the_grid_onto_itself(shape, n):
    from ml_phasing.prediction.density_prediction import grid_rotations, rotate_grid, unrotate_grid

    rots = grid_rotations(shape)
    assert len(rots) == n and rots[0] == ((0, 1, 2), ())
    rng = np.random.default_rng(0)
    a = rng.normal(size=shape)
    mats = [_rotation_matrix(r) for r in rots]
    assert len({m.tobytes() for m in mats}) == n and all(round(np.linalg.det(m)) == 1 for m in mats)
    idx = np.stack(np.meshgrid(*[np.arange(k) for k in shape], indexing="ij"), -1).reshape(-1, 3)
    for r, m in zip(rots, mats):
        b = rotate_grid(a, r)
        assert b.shape == a.shape
        new = (idx @ m.T) % np.array(shape)  # b[R i mod N] = a[i]: a rotation about the grid origin
        np.testing.assert_array_equal(b[tuple(new.T)], a[tuple(idx.T)])
        np.testing.assert_array_equal(unrotate_grid(b, r), a)
        # The Patterson (autocorrelation) of the rotated map is the rotated Patterson: what
        # makes rotating the network's input and back-rotating its output consistent.
        patt = np.fft.ifftn(np.abs(np.fft.fftn(a)) ** 2).real
        patt_b = np.fft.ifftn(np.abs(np.fft.fftn(b)) ** 2).real
        np.testing.assert_allclose(patt_b, rotate_grid(patt, r), atol=1e-9 * np.abs(patt).max())


def test_test_time_rotation_averaging(data):
    from ml_phasing.models import model_file

    proc = run_script(
        "ml_phasing.patterson_to_density",
        "data.mtz",
        "ensemble.rotations=24",
        "refinement.cycles=0",
        "output.prefix=rot",
        "--overwrite",
        cwd=data,
    )
    assert_clean_exit(proc)
    summary = json.loads((data / "rot.json").read_text())
    assert summary["ensemble_rotations"] == 24
    # recycling.passes=Auto: the shipped model's benchmarked number of passes, rotations
    # averaged after every pass (ensemble.every_pass=True, the default)
    passes = model_file.SHIPPED_INFERENCE_PASSES[os.path.basename(DEFAULT_MODEL)]
    assert model_file.SHIPPED_EVERY_PASS[os.path.basename(DEFAULT_MODEL)]
    assert summary["recycling_passes"] == passes and summary["rotations_averaged_every_pass"]
    log = (data / "rot.log").read_text()
    assert f"{passes} recycling passes, averaged over 24 grid rotations after every pass" in log

    proc = run_script(
        "ml_phasing.patterson_to_density",
        "data.mtz",
        "ensemble.rotations=4",
        "ensemble.every_pass=False",
        "recycling.passes=2",
        "refinement.cycles=0",
        "output.prefix=rot_end",
        "--overwrite",
        cwd=data,
    )
    assert_clean_exit(proc)
    summary = json.loads((data / "rot_end.json").read_text())
    assert summary["recycling_passes"] == 2 and not summary["rotations_averaged_every_pass"]
    assert "2 recycling passes, averaged over 4 grid rotations\n" in (data / "rot_end.log").read_text()


def test_inference_defaults_per_model():
    """recycling.passes=Auto and ensemble.every_pass=Auto: the shipped models' benchmarked
    choices (docs/models.md); a model of the user's own runs the passes it was trained with
    and averages after every pass."""
    from types import SimpleNamespace

    from ml_phasing.models.model_file import shipped_models
    from ml_phasing.prediction.density_prediction import every_pass_default, recycling_passes

    models = shipped_models("patterson_to_density")
    task = SimpleNamespace(passes=3)
    dialanine = SimpleNamespace(info={"path": models["dialanine_10A"]}, task=task)
    dipeptide = SimpleNamespace(info={"path": models["dipeptide_12A"]}, task=task)
    own = SimpleNamespace(info={"path": "/somewhere/model.pt"}, task=task)
    assert (recycling_passes(dialanine), every_pass_default(dialanine)) == (8, True)
    assert (recycling_passes(dipeptide), every_pass_default(dipeptide)) == (6, False)
    assert (recycling_passes(own), every_pass_default(own)) == (3, True)
    assert (recycling_passes(own, 5), every_pass_default(own, False)) == (5, False)  # what the user set


@pytest.fixture(scope="module")
def recycling_bundle_and_patterson():
    """The shipped model (trained with 3 recycling passes) and the Patterson of a held-out
    example of its recipe (seed 1 000 003, example 0) on its grid."""
    from ml_phasing.examples import simulation
    from ml_phasing.models.model_file import load_bundle

    bundle = load_bundle(DEFAULT_MODEL, task="patterson_to_density")
    assert bundle.task.passes > 1
    recipe = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "phil", "dialanine_10A_simulate.eff")
    config = simulation.SimulationConfig.from_recipe(recipe, 1_000_003, False)
    example = simulation.make_example(config, 0, simulation.StructureSource(config), keep_objects=True)
    f_calc = example["objects"]["xray_structure"].structure_factors(d_min=bundle.task.config["map_d_min"]).f_calc()
    return bundle, bundle.task.network_input(abs(f_calc).set_observation_type_xray_amplitude())[0]


def test_rotations_averaged_after_every_pass_are_rotation_equivariant(recycling_bundle_and_patterson):
    """Averaging over all 24 rotations after every recycling pass is a mean over the whole
    group at each step, so the prediction from a rotated Patterson is the rotated prediction.
    The one exception is the hand of the first pass: the Patterson is centrosymmetric and
    carries no hand, the 24 first-pass predictions may split 12/12 between the hands, and
    the mean then takes the hand of the first rotation. So: after one pass, the rotated
    prediction or its inverse; after three, wherever the first pass chose the same hand, the
    rotated prediction itself. (Each member's hand is decided against the first member; for
    a member that fits both hands about equally the decision can depend on that reference,
    so the example is one whose first-pass predictions are all clearly of one hand.) A
    mistake in rotating the estimate or back-rotating the outputs breaks this; float32
    arithmetic limits it to ~1e-5."""
    from ml_phasing.prediction.density_prediction import _flip_periodic, grid_rotations, rotate_grid, run_network

    bundle, patt = recycling_bundle_and_patterson
    first, n = run_network(bundle, patt, "cpu", rotations=24, passes=1, every_pass=True)
    density, _ = run_network(bundle, patt, "cpu", rotations=24, passes=3, every_pass=True)
    assert n == 24
    same_hand = 0
    for r in grid_rotations(patt.shape)[1:24:3]:
        rotated_first, _ = run_network(bundle, rotate_grid(patt, r), "cpu", rotations=24, passes=1, every_pass=True)
        expected = rotate_grid(first, r)
        diffs = [np.abs(rotated_first - e).max() for e in (expected, _flip_periodic(expected, (0, 1, 2)))]
        assert min(diffs) < 1e-4, (r, diffs)
        if diffs[0] < 1e-4:
            same_hand += 1
            rotated, _ = run_network(bundle, rotate_grid(patt, r), "cpu", rotations=24, passes=3, every_pass=True)
            assert np.abs(rotated - rotate_grid(density, r)).max() < 1e-3, r
    assert same_hand >= 1


def test_one_pass_is_the_same_whether_rotations_are_averaged_every_pass_or_at_the_end(
    recycling_bundle_and_patterson,
):
    """With one pass nothing is recycled, so the two ways of averaging must agree; with three
    they differ (the averaged estimate is what the passes after the first see)."""
    from ml_phasing.prediction.density_prediction import run_network

    bundle, patt = recycling_bundle_and_patterson
    every, _ = run_network(bundle, patt, "cpu", rotations=8, passes=1, every_pass=True)
    end, _ = run_network(bundle, patt, "cpu", rotations=8, passes=1, every_pass=False)
    np.testing.assert_allclose(every, end, atol=1e-5)
    every, _ = run_network(bundle, patt, "cpu", rotations=8, passes=3, every_pass=True)
    end, _ = run_network(bundle, patt, "cpu", rotations=8, passes=3, every_pass=False)
    assert np.abs(every - end).max() > 1e-3


def test_reflections_handed_over_in_memory_through_the_data_manager(data, tmp_path, monkeypatch):
    """Issue 13: a Phenix GUI or run_program caller fills the DataManager itself, with no file
    on disk under that name; the program reads the reflections from it, as from a file."""
    import iotbx.phil
    from iotbx.data_manager import DataManager
    from libtbx.utils import null_out

    from ml_phasing.io import file_formats
    from ml_phasing.programs.patterson_to_density import Program

    dm = DataManager(["miller_array", "phil"])
    dm.add_miller_array("handed_over_by_the_gui", file_formats.reflection_file(str(data / "data.mtz")))
    from ml_phasing.program_support import Parser

    master = Parser(program_class=Program, logger=null_out()).master_phil  # the program's PHIL, as run_program has it
    params = master.fetch(iotbx.phil.parse("output.prefix=gui\nensemble.rotations=2\nrefinement.cycles=0")).extract()
    monkeypatch.chdir(tmp_path)
    assert not os.path.exists("handed_over_by_the_gui")
    program = Program(dm, params, logger=null_out())
    program.validate()
    program.run()
    result = program.get_results()
    assert result["input"]["file"] == "handed_over_by_the_gui"
    assert result["input"]["n_reflections"] == len(
        file_formats.reflection_file(str(data / "data.mtz")).as_miller_arrays()[0].indices()
    )
    assert (tmp_path / "gui.mtz").stat().st_size > 0
