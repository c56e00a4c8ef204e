"""Shared fixtures. Import order matters: boost_adaptbx, then torch, then the rest
(see ml_phasing/__init__.py): a test module importing gemmi first would otherwise
kill the whole run with a segfault."""

import boost_adaptbx.boost.python  # noqa: F401
import torch  # noqa: F401

import os
import shutil
import subprocess
import sys

import pytest

import ml_phasing  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.abspath(os.path.join(HERE, "..", "..", "shared", "realdata"))


@pytest.fixture(scope="session")
def realdata():
    """Path to ../shared/realdata; tests that need it skip when it is absent."""
    if not os.path.isdir(SHARED):
        pytest.skip("../shared/realdata is not present (users' clones do not have it)")
    return SHARED


def console_script(name):
    """Path of an installed console script (next to the running python)."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.exists(path):
        path = shutil.which(name)
    assert path, f"console script {name} is not installed"
    return path


def run_script(name, *args, cwd=None, timeout=600):
    """Run a program as its console script would, in this process (through ``run_program``,
    as Phenix and run_program callers do): the exit status, stdout and stderr come back as a
    CompletedProcess. An exception that escapes the program (a bug) is printed with its
    traceback to stderr and gives exit 1, as the console script would. tests/test_console_scripts.py
    keeps one real subprocess run per program."""
    import contextlib
    import importlib
    import io
    import traceback

    module = importlib.import_module("ml_phasing.command_line." + name.split(".", 1)[1])
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = module.run(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except Exception:  # noqa: BLE001 - a bug: its traceback, as the console script prints it
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess([name, *argv], code, out.getvalue(), err.getvalue())


def run_console_script(name, *args, cwd=None, timeout=600):
    """Run an installed console script in a subprocess; return CompletedProcess with text output."""
    return subprocess.run(
        [console_script(name), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def assert_clean_exit(proc, code=0):
    assert proc.returncode == code, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )
    assert "Traceback" not in proc.stderr, proc.stderr


def make_params(**simulate):
    """A working PHIL extract of ml_phasing.simulate with simulate.* overrides."""
    from iotbx import phil as iphil

    from ml_phasing.programs.simulate import Program

    master = iphil.parse(Program.master_phil_str, process_includes=True)
    lines = []
    for key, value in simulate.items():
        if key in ("random_seed", "nproc"):
            lines.append(f"{key} = {value}")
        else:
            lines.append(f"simulate.{key.replace('__', '.')} = {value}")
    return master.fetch(iphil.parse("\n".join(lines))).extract()


@pytest.fixture(scope="session")
def realdata_or_none():
    return SHARED if os.path.isdir(SHARED) else None


def scripps_cell(name: str, path) -> tuple:
    """A held-out cell (seed 1 000 003, example 0) of the shipped Scripps model ``name``'s recipe,
    its amplitudes (real form factors) to the finest d of the model's hkl cube in that cell,
    written to ``path`` as an MTZ: (the model's bundle, the amplitudes, the composition as
    {element: count}, the composition as a composition= string)."""
    import dataclasses

    from ml_phasing.examples import simulation
    from ml_phasing.models.model_file import load_bundle, shipped_models

    bundle = load_bundle(shipped_models()[name], task="intensity_to_density")
    sim = dataclasses.replace(bundle.task.simulation_config(), random_seed=1_000_003)
    xs = simulation.make_example(sim, 0, simulation.StructureSource(sim), keep_objects=True)["objects"]
    xs = xs["xray_structure"]
    d_min = bundle.task.cube_d_min(xs.unit_cell()) * 0.999
    f = abs(xs.structure_factors(d_min=d_min).f_calc()).set_observation_type_xray_amplitude()
    f.as_mtz_dataset(column_root_label="F").mtz_object().write(str(path))
    counts = {}
    for sc in xs.scatterers():
        counts[sc.scattering_type] = counts.get(sc.scattering_type, 0) + 1
    return bundle, f, counts, " ".join(f"{e}{n}" for e, n in counts.items())
