"""One real subprocess run per console script (the other program tests run in-process through
run_program): the installed entry point, its exit status, its output files, and a user's
mistake as one Sorry line with exit 1."""

import json

import pytest

from conftest import assert_clean_exit, run_console_script


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    base = tmp_path_factory.mktemp("scripts")
    proc = run_console_script(
        "ml_phasing.simulate",
        "source=peptides",
        "n_examples=8",
        "write_examples=1",
        "d_min_low=1.5",
        "d_min_high=1.5",
        "random_seed=7",
        "output.directory=sim",
        cwd=base,
    )
    assert_clean_exit(proc)
    return base


def test_simulate_and_evaluate(example):
    mtz = example / "sim" / "examples" / "example_00000.mtz"
    assert mtz.stat().st_size > 0
    proc = run_console_script(
        "ml_phasing.evaluate",
        f"reference.file={mtz}",
        "reference.labels=FC,PHIC",
        f"prediction.file={mtz}",
        "prediction.labels=FC,PHIC",
        "--json",
        cwd=example,
    )
    assert_clean_exit(proc)
    result = json.loads((example / "evaluate_result.json").read_text())
    assert result["predictions"][0]["phases"]["overall"]["mean_phase_error"] < 1e-6


def test_patterson_to_density_and_solve(example):
    mtz = example / "sim" / "examples" / "example_00000.mtz"
    assert_clean_exit(run_console_script("ml_phasing.patterson_to_density", mtz, "output.prefix=p2d", cwd=example))
    assert (example / "p2d.mtz").stat().st_size > 0 and (example / "p2d_density.ccp4").stat().st_size > 0
    proc = run_console_script(
        "ml_phasing.solve", mtz, "composition=C6 N2 O2", "engine.max_starts=2", "output.prefix=s", cwd=example
    )
    assert_clean_exit(proc)
    assert (example / "s.res").read_text().startswith("TITL")


def test_train_and_extend_resolution(tmp_path):
    proc = run_console_script(
        "ml_phasing.simulate",
        "n_examples=12",
        "write_examples=1",
        "d_min_low=1.2",
        "d_min_high=1.0",
        "random_atoms.space_groups=P21",
        "random_atoms.n_atoms_max=10",
        "output.directory=ext",
        cwd=tmp_path,
    )
    assert_clean_exit(proc)
    proc = run_console_script(
        "ml_phasing.train",
        "train.data.train=ext",
        "task=extend_resolution",
        "model.architecture=fft_unet",
        "model.fft_unet.base_channels=2",
        "model.fft_unet.depth=1",
        "epochs=1",
        "batch_size=4",
        "output.directory=run",
        cwd=tmp_path,
    )
    assert_clean_exit(proc)
    assert (tmp_path / "run" / "model.pt").stat().st_size > 0
    proc = run_console_script(
        "ml_phasing.extend_resolution",
        tmp_path / "ext" / "examples" / "example_00000.mtz",
        "output.prefix=x",
        cwd=tmp_path,
    )
    assert_clean_exit(proc)
    assert (tmp_path / "x.hkl").stat().st_size > 0


@pytest.mark.parametrize(
    "script", ["simulate", "evaluate", "train", "patterson_to_density", "extend_resolution", "solve", "interpret"]
)
def test_a_mistake_is_one_sorry_line(script, tmp_path):
    proc = run_console_script(f"ml_phasing.{script}", "no_such_parameter=3", cwd=tmp_path)
    assert_clean_exit(proc, 1)
    assert proc.stderr.strip().startswith("Sorry:") and len(proc.stderr.strip().splitlines()) == 1
