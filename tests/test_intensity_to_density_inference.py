"""ml_phasing.patterson_to_density with an intensity_to_density (Scripps) model: the network
input made from a user's amplitudes equals the training input, and the program runs."""

import json

import numpy as np
import pytest
import torch

from conftest import assert_clean_exit, run_script

SIMULATE = [
    "n_examples=8",
    "d_min_low=0.9",
    "d_min_high=0.9",
    "random_atoms.space_groups=P1",
    "random_atoms.n_atoms_min=6",
    "random_atoms.n_atoms_max=8",
    "random_atoms.volume_per_atom_min=20",
    "outputs.patterson=False",
    "outputs.density=False",
    "outputs.intensity_grid=True",
    "outputs.voxel_atoms=True",
    "intensity_grid.h_max=2",
    "voxel_atoms.grid_points=8",
    "write_examples=1",
    "output.directory=small",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny dataset (one example written as MTZ) and an MLP trained on it for one epoch."""
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("i2d")
    assert_clean_exit(run_script("ml_phasing.simulate", *SIMULATE, cwd=base))
    assert_clean_exit(
        run_script(
            "ml_phasing.train",
            "train.data.train=small",
            "task=intensity_to_density",
            "model.architecture=mlp",
            "model.mlp.hidden=8",
            "epochs=1",
            "batch_size=4",
            "output.directory=run",
            "--overwrite",
            cwd=base,
        )
    )
    return base


@pytest.mark.parametrize("space_group", ["P1", "P21", "C2"])
@pytest.mark.parametrize("form_factor", ["xray", "atomic_number"])
def test_inference_input_equals_training_input(space_group, form_factor):
    from cctbx import sgtbx
    from cctbx.development import random_structure

    from ml_phasing.examples import observables
    from ml_phasing.tasks.maps import IntensityToDensity

    h_max = 3
    xs = random_structure.xray_structure(
        sgtbx.space_group_info(space_group),
        elements=["C"] * 5 + ["N", "O", "S"],
        volume_per_atom=18,
        random_u_iso=True,
    )
    task = IntensityToDensity({"task": "intensity_to_density", "input_shape": [2 * h_max + 1] * 3})
    grid = observables.intensity_grid(xs, h_max, form_factor)
    training = task.example({"intensity_grid": grid, "voxel_atoms": grid}, {})["x"][0].numpy()

    d_min = task.cube_d_min(xs.unit_cell()) * 0.999
    if form_factor == "xray":
        f = xs.structure_factors(d_min=d_min, algorithm="direct").f_calc()
        f000 = xs.f_000()
    else:  # the point atoms of weight Z that training uses, as a user's "measured" amplitudes
        work = observables.intensity_grid_structure(xs, form_factor)
        f = work.structure_factors(d_min=d_min, algorithm="direct").f_calc()
        f000 = work.f_000()
    inference = task.network_input(f.as_amplitude_array(), f000)
    assert inference.shape == training.shape == (2 * h_max + 1,) * 3
    assert np.abs(inference - training).max() < 1e-6
    assert np.count_nonzero(training) > 100


@pytest.mark.parametrize("space_group", ["P1", "P212121"])
def test_wilson_scale_recovers_a_known_scale_and_b(space_group):
    """Amplitudes of a structure with one B for every atom, multiplied by sqrt(k): the Wilson fit
    (cctbx.statistics.wilson_plot) gives back k and B. Tolerances: for 40 atoms at 0.8 A the fit
    over 10 shells read k within 4 % and B within 0.08 A^2 on three seeds in P1 and P212121
    (the shells' means are of a few hundred exponentially distributed intensities); checked to
    10 % and 0.3 A^2."""
    from cctbx import sgtbx
    from cctbx.development import random_structure

    from ml_phasing.prediction.intensity_prediction import absolute_amplitudes, wilson_scale

    import random

    from scitbx.array_family import flex

    random.seed(3)
    flex.set_random_seed(3)
    composition = {"C": 30, "N": 5, "O": 5}
    xs = random_structure.xray_structure(
        sgtbx.space_group_info(space_group),
        elements=[e for e, n in composition.items() for _ in range(n)],
        volume_per_atom=18,
    )
    b_true, k_true = 3.0, 250.0
    xs.set_b_iso(value=b_true)
    f = xs.structure_factors(d_min=0.8, algorithm="direct").f_calc().amplitudes()
    f_obs = f.customized_copy(data=f.data() * k_true**0.5).set_observation_type_xray_amplitude()
    k, b = wilson_scale(f_obs, composition)
    assert k == pytest.approx(k_true, rel=0.10)
    assert b == pytest.approx(b_true, abs=0.3)
    f_abs, f_000, note = absolute_amplitudes(f_obs, composition, "xray")
    ratio = f_abs.data() / f.data()
    assert ratio.all_approx_equal(ratio[0]) and ratio[0] == pytest.approx(1.0, rel=0.05)
    assert f_000 == pytest.approx(xs.f_000(), rel=1e-4)  # sum Z against the WK1995 f(0)
    assert "Wilson scale" in note


def test_program_runs_an_intensity_model(trained):
    from iotbx import mtz

    proc = run_script(
        "ml_phasing.patterson_to_density",
        "small/examples/example_00000.mtz",
        "model=run/model.pt",
        "refinement.cycles=2",
        "output.prefix=i2d",
        cwd=trained,
    )
    assert_clean_exit(proc)
    for name in ("i2d.mtz", "i2d.json", "i2d_density.ccp4", "i2d.log"):
        assert (trained / name).stat().st_size > 0, name
    result = json.loads((trained / "i2d.json").read_text())
    assert result["model"]["task"] == "intensity_to_density"
    assert result["intensity_input"]["form_factor"] == "atomic_number"
    assert 0 <= result["mean_fom"] <= 1
    labels = set(mtz.object(str(trained / "i2d.mtz")).column_labels())
    assert {"F", "FWT", "PHWT", "PHIB", "FOM", "FC", "PHIC"} <= labels
    assert "hkl cube -2..2" in (trained / "i2d.log").read_text()


def test_engine_runs_from_an_intensity_model(trained):
    """With composition= (solve=Auto) the phasing engine starts from the intensity model's
    phases (the rest of the data's phases random) and random starts in turn, and writes its
    structure; its flag is checked against the example's true atoms (euclidean model matching)."""
    from iotbx import cif

    from ml_phasing.metrics.atoms import atom_recovery

    truth = cif.reader(str(trained / "small/examples/example_00000.cif")).build_crystal_structures()
    truth = list(truth.values())[0]
    counts = {}
    for sc in truth.scatterers():
        counts[sc.scattering_type] = counts.get(sc.scattering_type, 0) + 1
    composition = " ".join(f"{e}{n}" for e, n in sorted(counts.items()))
    proc = run_script(
        "ml_phasing.patterson_to_density",
        "small/examples/example_00000.mtz",
        "model=run/model.pt",
        f"composition={composition}",
        "engine.max_starts=8",
        "output.prefix=i2d_solve",
        cwd=trained,
    )
    assert_clean_exit(proc)
    log = (trained / "i2d_solve.log").read_text()
    assert "Phasing engine from the network's predictions" in log and "phases predicted" in log
    solution = json.loads((trained / "i2d_solve.json").read_text())["solution"]
    assert (trained / "i2d_solve_solve.res").stat().st_size > 0
    model = cif.reader(str(trained / "i2d_solve_solve.cif")).build_crystal_structures()
    model = list(model.values())[0]
    matched = atom_recovery(truth, np.array(model.sites_frac()), tolerance=0.5)["fraction_matched"]
    assert solution["solved"] == (matched == 1.0), (solution["solved"], matched)
    assert matched == 1.0  # 6-8 atoms at 0.9 A with the composition known: solved (seen: 1.0)


def _one_sorry(proc, *words):
    assert_clean_exit(proc, 1)
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].lstrip().startswith("Sorry:"), proc.stderr
    for w in words:
        assert w in lines[0], proc.stderr


def _run_model(trained, model, prefix):
    """ml_phasing.patterson_to_density on the fixture's example with ``model``."""
    return run_script(
        "ml_phasing.patterson_to_density",
        "small/examples/example_00000.mtz",
        f"model={model}",
        f"output.prefix={prefix}",
        cwd=trained,
    )


def test_extend_resolution_model_is_refused(trained, tmp_path):
    from ml_phasing.models import MLP
    from ml_phasing.models.model_file import save_model

    net = MLP(in_shape=(1, 3, 3, 3), out_shape=(1, 3, 3, 3), hidden=(2,))
    kwargs = {"in_shape": [1, 3, 3, 3], "out_shape": [1, 3, 3, 3], "hidden": [2], "dropout": 0.0}
    save_model(str(tmp_path / "ext.pt"), net, "mlp", kwargs, {"task": "extend_resolution"})
    proc = _run_model(trained, tmp_path / "ext.pt", "ext")
    _one_sorry(proc, "'extend_resolution'")
    assert not list(trained.glob("ext*"))


def test_a_cartesian_voxel_model_runs_and_a_cell_outside_its_cube_is_refused(trained, tmp_path):
    """A model whose targets were Cartesian voxels (a cube that holds the cell): its cube is put back
    on the unit cell's grid; with a fixed cube edge smaller than the cell, one Sorry."""
    from ml_phasing.io.atomic_io import torch_save

    blob = torch.load(trained / "run" / "model.pt", weights_only=True)
    cfg = blob["task_config"]
    cfg["dataset_parameters"] = cfg["dataset_parameters"].replace(
        "frame = *fractional cartesian", "frame = fractional *cartesian"
    )
    assert "*cartesian" in cfg["dataset_parameters"]
    torch_save(blob, str(tmp_path / "cart.pt"))
    assert_clean_exit(_run_model(trained, tmp_path / "cart.pt", tmp_path / "cart"))
    assert (tmp_path / "cart.mtz").stat().st_size > 0 and (tmp_path / "cart_density.ccp4").stat().st_size > 0
    cfg["dataset_parameters"] = cfg["dataset_parameters"].replace("box_edge = None", "box_edge = 3")
    assert "box_edge = 3" in cfg["dataset_parameters"]
    torch_save(blob, str(tmp_path / "cart3.pt"))
    proc = _run_model(trained, tmp_path / "cart3.pt", "cart3")
    _one_sorry(proc, "does not fit in this model's Cartesian cube")
    assert not list(trained.glob("cart3*"))


@pytest.mark.parametrize("cell", [(9.0, 10.0, 11.0, 90, 90, 90), (9.0, 10.0, 11.0, 83, 109, 129)])
def test_cartesian_cube_resampled_on_the_cell_equals_the_fractional_voxels(cell):
    """Physics: the same atoms as Cartesian voxels, put back on the cell's grid, give the
    fractional-voxel map (atoms away from the cell's faces, where the cube does not wrap), in a
    rectangular cell and in an obtuse triclinic one (the angles of the Scripps recipes' random
    cells, where a cube from the origin left most atoms out: negative x)."""
    from cctbx import crystal, xray
    from cctbx.array_family import flex

    from ml_phasing.examples import observables

    cs = crystal.symmetry(cell, "P1")
    sites = [(0.3, 0.4, 0.5), (0.6, 0.35, 0.45), (0.45, 0.62, 0.38), (0.52, 0.5, 0.66)]
    xs = xray.structure(
        crystal_symmetry=cs,
        scatterers=flex.xray_scatterer([xray.scatterer("C", s, u=0.02, scattering_type="C") for s in sites]),
    )
    n = 32
    frac = observables.voxel_atoms(xs, n, 0.6, "fractional", "atomic_number")
    cube = observables.voxel_atoms(xs, n, 0.6, "cartesian", "atomic_number")
    corner, edge = observables.cartesian_box(cs.unit_cell())
    orth = np.array(cs.unit_cell().orthogonalization_matrix()).reshape(3, 3)
    cart = np.array(sites) @ orth.T - corner
    assert (cart > 0).all() and (cart < edge).all()  # every atom inside the cube
    voxel = (edge / n) ** 3  # each atom's Gaussian, whole in the cube, integrates to Z (2 pi s^2)^(3/2)
    assert cube.sum() * voxel == pytest.approx(6 * len(sites) * (2 * np.pi * 0.36) ** 1.5, rel=0.02)
    back = observables.cartesian_cube_to_cell(cube, cs.unit_cell())
    assert back.shape == frac.shape
    cc = np.corrcoef(back.ravel(), frac.ravel())[0, 1]
    assert cc > 0.97, cc  # trilinear interpolation of 0.34 A voxels onto 0.28-0.34 A voxels
    # the peaks sit on the atoms: the highest voxel of the resampled map is next to an atom
    top = np.array(np.unravel_index(np.argmax(back), back.shape)) / n
    assert min(cs.unit_cell().distance(tuple(top), s) for s in sites) < 0.5


def test_coarse_data_are_refused(trained, tmp_path):
    from iotbx import mtz

    f = [a for a in mtz.object(str(trained / "small/examples/example_00000.mtz")).as_miller_arrays()]
    f = [a for a in f if a.info().labels[0] == "F"][0].resolution_filter(d_min=2.0)
    f.as_mtz_dataset(column_root_label="F").mtz_object().write(str(tmp_path / "coarse.mtz"))
    proc = run_script(
        "ml_phasing.patterson_to_density",
        str(tmp_path / "coarse.mtz"),
        "model=run/model.pt",
        "output.prefix=coarse",
        cwd=trained,
    )
    _one_sorry(proc, "hkl cube needs")
