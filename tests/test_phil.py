"""Every PHIL parameter of every program has a .type and a .help."""

import importlib
import os
import pkgutil

import pytest

import ml_phasing.programs
from libtbx.program_template import ProgramTemplate
from iotbx import phil as iphil

PROGRAMS = [
    importlib.import_module(f"ml_phasing.programs.{m.name}") for m in pkgutil.iter_modules(ml_phasing.programs.__path__)
]


def test_programs_found():
    assert any(p.Program.program_name == "ml_phasing.simulate" for p in PROGRAMS)


@pytest.mark.parametrize("module", PROGRAMS, ids=lambda m: m.__name__)
def test_every_parameter_has_type_and_help(module):
    program = module.Program
    text = program.master_phil_str + ProgramTemplate.output_phil_str
    master = iphil.parse(text, process_includes=True)
    missing_help = [d.path for d in master.all_definitions() if not d.object.help]
    missing_type = [d.path for d in master.all_definitions() if d.object.type is None]
    assert not missing_help, f"parameters without .help: {missing_help}"
    assert not missing_type, f"parameters without .type: {missing_type}"


@pytest.mark.parametrize("module", PROGRAMS, ids=lambda m: m.__name__)
def test_program_identity(module):
    program = module.Program
    assert program.program_name.startswith("ml_phasing.")
    assert program.version == ml_phasing.__version__
    assert "Examples:" in program.description


def test_entry_points_match_command_line_files():
    here = os.path.dirname(os.path.abspath(__file__))
    stems = sorted(
        f[:-3]
        for f in os.listdir(os.path.join(here, "..", "command_line"))
        if f.endswith(".py") and not f.startswith("_")
    )
    names = sorted(p.Program.program_name.split(".", 1)[1] for p in PROGRAMS)
    assert stems == names


def test_setup_installs_every_subpackage():
    """setup.py lists its packages: a new subpackage missing there would be absent from a
    regular (non-editable) install."""
    import re

    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    listed = set(re.findall(r'"(ml_phasing(?:\.\w+)*)"', open(os.path.join(here, "setup.py")).read()))
    on_disk = {
        os.path.relpath(root, here).replace(os.sep, ".")
        for root, _, files in os.walk(os.path.join(here, "ml_phasing"))
        if "__init__.py" in files
    }
    assert on_disk <= listed, f"not in setup.py packages: {sorted(on_disk - listed)}"


def test_dispatcher_names_in_entry_points():
    here = os.path.dirname(os.path.abspath(__file__))
    folder = os.path.join(here, "..", "command_line")
    for f in os.listdir(folder):
        if f.endswith(".py") and not f.startswith("_"):
            text = open(os.path.join(folder, f)).read()
            assert f"# LIBTBX_SET_DISPATCHER_NAME ml_phasing.{f[:-3]}" in text


@pytest.mark.parametrize("module", PROGRAMS, ids=lambda m: m.__name__)
def test_citations(module, capsys):
    """--citations prints the program's papers (the seed works, SHELXD, ...) and cctbx's."""
    from ml_phasing.program_support import run_cli

    try:
        status = run_cli(module.Program, ["--citations"])
    except SystemExit as e:  # iotbx ends --citations with sys.exit(0)
        status = e.code or 0
    out = capsys.readouterr().out
    assert status == 0
    assert f"Citation(s) for {module.Program.program_name}" in out and "cctbx" in out.lower()


@pytest.mark.parametrize("module", PROGRAMS, ids=lambda m: m.__name__)
def test_template_output_parameters_that_are_not_used_are_hidden_and_refused(module, capsys):
    """Issue 13: iotbx adds output.filename/suffix/serial/target_output_format to every program;
    ours name their outputs from output.prefix or output.directory, so those are not shown by
    --show-defaults and setting one is a Sorry, not silently ignored."""
    from ml_phasing.program_support import run_cli

    with pytest.raises(SystemExit) as e:  # iotbx's parser exits after --show-defaults
        run_cli(module.Program, ["--show-defaults"])
    assert e.value.code in (0, None)
    shown = capsys.readouterr().out
    assert "overwrite" in shown and "target_output_format" not in shown and "serial_format" not in shown
    assert run_cli(module.Program, ["suffix=_x"]) == 1
    assert "output.suffix is not used" in capsys.readouterr().err


def test_help_only_runs_do_not_import_torch():
    """Issue 13: --help and --show-defaults took 2-2.8 s, mostly importing torch. A console
    script asked only for its help, defaults or citations does not import it (and a run that
    may run a network still imports it first, before cctbx: see ml_phasing/__init__.py)."""
    import subprocess
    import sys

    from ml_phasing import help_only

    assert help_only(["/usr/bin/ml_phasing.solve", "--help"])
    assert help_only(["ml_phasing.train", "--show-defaults=2"]) and help_only(["ml_phasing.train", "--citations"])
    assert not help_only(["ml_phasing.solve", "data.mtz", "--help"]) and not help_only(["ml_phasing.solve"])
    assert not help_only(["pytest", "--help"]) and not help_only([])
    for name in ("solve", "patterson_to_density", "extend_resolution", "train", "simulate", "evaluate"):
        code = (
            f"import sys; sys.argv = ['ml_phasing.{name}', '--show-defaults']\n"
            f"from ml_phasing.command_line.{name} import run\n"
            "try:\n    status = run(sys.argv[1:])\nexcept SystemExit as e:\n    status = e.code or 0\n"
            "print('TORCH', 'torch' in sys.modules, status)"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert "TORCH False 0" in proc.stdout, (name, proc.stdout[-500:], proc.stderr[-2000:])
