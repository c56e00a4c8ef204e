"""Quality guard per shipped model (issue 14): a few held-out examples, never trained on, run
through the model as the programs run it, against the figures in docs/models.md with a margin.
No number stored in the model file is read. A broken model (weights lost, a changed input
convention) reads random phases (90 degrees) or R near 1 and fails here.

Held-out data: the models' own recipes (phil/*_simulate.eff) with seed 1 000 003; training
used random_seed 0 and validation 1 (benchmarks/patterson_to_density.py and
benchmarks/extend_resolution.py use the same seed for the figures in docs/models.md).
"""

import os

import numpy as np
import pytest
import torch

from ml_phasing.prediction import density_prediction
from ml_phasing.prediction import resolution_extension
from ml_phasing.examples import simulation
from ml_phasing.metrics.phases import phase_statistics
from ml_phasing.models.model_file import load_bundle, shipped_models

HELD_OUT_SEED = 1_000_003
RECIPES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "phil")


def _config(recipe: str, amplitudes_only: bool = False):
    return simulation.SimulationConfig.from_recipe(os.path.join(RECIPES, recipe), HELD_OUT_SEED, amplitudes_only)


def _examples(config, n):
    source = simulation.StructureSource(config)
    return [simulation.make_example(config, i, source, keep_objects=True)["objects"] for i in range(n)]


@pytest.mark.parametrize(
    "name, recipe, documented, margin",
    [
        # docs/models.md: default pipeline (24 rotations, recycling.passes and ensemble.every_pass Auto,
        # and the charge-flipping cycles that
        # refinement.cycles=Auto picks: none after dialanine, 20 after dipeptide), median phase error
        ("dialanine_10A", "dialanine_10A_simulate.eff", 14.2, 10.0),
        # slow: 110 s on 2 cores since the dipeptide model runs 6 recycling passes over 24
        # rotations (run with -m slow; it passed with version 3 on 2026-11-25). 42.7 deg is
        # the benchmark on every reflection, as this test counts them (38.8 on FWT/PHWT, which
        # leaves out the reflections whose calibrated FOM is 0)
        pytest.param("dipeptide_12A", "dipeptide_12A_simulate.eff", 42.7, 12.0, marks=pytest.mark.slow),
    ],
)
def test_patterson_to_density_model_reads_near_its_documented_phase_error(name, recipe, documented, margin):
    torch.manual_seed(0)
    bundle = load_bundle(shipped_models()[name], task="patterson_to_density")
    errors, fom, cos = [], [], []
    for objects in _examples(_config(recipe), 8):
        f_true = objects["xray_structure"].structure_factors(d_min=bundle.task.config["map_d_min"]).f_calc()
        f_obs = abs(f_true).set_observation_type_xray_amplitude()
        cycles = density_prediction.default_refinement_cycles(bundle)  # as the program runs it
        r = density_prediction.predict(bundle, f_obs, refinement_cycles=cycles, rotations=24)
        common = f_true.common_set(r["phases"])
        pred = r["phases"].common_set(common)
        stats = phase_statistics(
            np.array(common.indices()),
            common.d_spacings().data().as_numpy_array(),
            common.data().as_numpy_array(),
            pred.data().as_numpy_array(),
            common.space_group_info(),
            n_bins=1,
        )
        errors.append(stats["overall"]["mean_phase_error"])
        # issue 12: the FOMs are calibrated (fitted on another held-out seed, benchmarks/calibrate_fom.py)
        assert r["fom_calibrated"]
        lookup = dict(zip(r["phases"].indices(), r["fom"]))
        fom += [lookup[h] for h in common.indices()]
        cos += list(np.cos(np.angle(stats["aligned_f_pred"] / common.data().as_numpy_array())))
    assert np.median(errors) <= documented + margin, (name, errors)
    assert abs(np.mean(fom) - np.mean(cos)) <= 0.1, (name, np.mean(fom), np.mean(cos))


@pytest.mark.parametrize(
    "name, documented",
    [("extend_1.2_to_1.0A", 0.453), ("extend_1.5_to_0.8A", 0.463)],  # docs/models.md: median R, predicted
)
def test_extension_model_reads_near_its_documented_r(name, documented):
    bundle = load_bundle(shipped_models()[name], task="extend_resolution")
    config = _config(f"{name}_simulate.eff", amplitudes_only=True)
    rs = []
    for objects in _examples(config, 8):
        f_true = objects["f_calc_high"].as_amplitude_array()
        low = f_true.resolution_filter(d_min=config.d_min_low)
        ext = resolution_extension.extend(bundle, low, f_true.d_min())["extended"].common_set(f_true)
        sel = f_true.d_spacings().data() < config.d_min_low * (1 - 1e-9)
        t = f_true.select(sel)
        p = ext.common_set(t)
        t = t.common_set(p)
        a, b = p.data().as_numpy_array(), t.data().as_numpy_array()
        rs.append(float(np.abs(a - b).sum() / b.sum()))
    assert np.median(rs) <= documented + 0.1, (name, rs)


def _scripps_map_cc(name, n):
    """Aligned map CC (origin and hand searched, metrics.maps.compare_maps) of a shipped Scripps
    model's voxel map against the atoms' fractional voxels, on n held-out examples of its recipe,
    as benchmarks/scripps.py reads it (a Cartesian cube is first put back on the cell's grid)."""
    import dataclasses

    from ml_phasing.examples import observables
    from ml_phasing.metrics.maps import compare_maps

    bundle = load_bundle(shipped_models()[name], task="intensity_to_density")
    sim = dataclasses.replace(bundle.task.simulation_config(), random_seed=HELD_OUT_SEED)
    frame, grid, sigma, weight, edge = sim.voxel
    source = simulation.StructureSource(sim)
    ccs = []
    for i in range(n):
        example = simulation.make_example(sim, i, source, keep_objects=True)
        xs = example["objects"]["xray_structure"]
        cube = np.asarray(example["fields"]["intensity_grid"], np.float32)
        pred = bundle.task.predict_maps(bundle.network, (cube / np.abs(cube).max())[None])[0].astype(np.float64)
        if frame == "cartesian":
            pred = observables.cartesian_cube_to_cell(pred, xs.unit_cell(), edge)
        truth = observables.voxel_atoms(xs, grid, sigma, "fractional", weight)
        ccs.append(compare_maps(truth, pred, None, xs.unit_cell())["map_cc_aligned"])
    return float(np.mean(ccs))


@pytest.mark.parametrize(
    "name, documented",
    # docs/models.md: benchmarks/scripps.py, network row, aligned map CC (mean of 30)
    [
        ("scripps_mlp", 0.817),
        ("scripps_unet", 0.776),
        ("scripps_mlp_xray_cartesian", 0.643),
        ("scripps_unet_xray_cartesian", 0.621),
    ],
)
def test_scripps_model_reads_near_its_documented_map_cc(name, documented):
    assert _scripps_map_cc(name, 8) >= documented - 0.05


def test_the_program_runs_a_shipped_scripps_model_by_name(tmp_path):
    """ml_phasing.patterson_to_density model=scripps_mlp on a held-out cell of its recipe, its
    amplitudes (real form factors) to the finest d of the model's hkl cube in that cell."""
    import json

    from conftest import assert_clean_exit, run_script, scripps_cell

    _, _, _, composition = scripps_cell("scripps_mlp", tmp_path / "cell.mtz")
    proc = run_script(
        "ml_phasing.patterson_to_density",
        "cell.mtz",
        "model=scripps_mlp",
        f"composition={composition}",
        "solve=False",
        cwd=tmp_path,
    )
    assert_clean_exit(proc)
    result = json.loads((tmp_path / "cell_p2d.json").read_text())
    assert result["model"]["task"] == "intensity_to_density" and result["model"]["architecture"] == "mlp"
    assert (tmp_path / "cell_p2d.mtz").stat().st_size > 0
