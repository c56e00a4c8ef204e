"""No input file is ever unpickled (issue: code ran from pickled input files).

A pickle whose ``__reduce__`` writes a marker file is handed to every entry point
in every role a file can take; the program must refuse it with a Sorry (exit 1)
and the marker must never appear.
"""

import os
import pickle

import pytest

from ml_phasing.program_support import run_cli


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / "MARKER"

    def make(name, protocol=4):
        path = tmp_path / name
        with open(path, "wb") as f:
            pickle.dump(_Payload(str(marker)), f, protocol=protocol)
        return str(path)

    make.marker = marker
    make.dir = tmp_path
    return make


def _programs():
    import importlib
    import importlib.util

    names = ("patterson_to_density", "extend_resolution", "evaluate", "simulate", "train", "solve")
    return {
        n: importlib.import_module(f"ml_phasing.programs.{n}").Program
        for n in names
        if importlib.util.find_spec(f"ml_phasing.programs.{n}")
    }


@pytest.fixture(scope="module")
def good_mtz(tmp_path_factory):
    from cctbx.development import random_structure
    from cctbx import sgtbx

    xs = random_structure.xray_structure(
        sgtbx.space_group_info("P1"), elements=["C"] * 6, unit_cell=(10, 10, 10, 90, 90, 90), random_u_iso=False
    )
    f = xs.structure_factors(d_min=1.5).f_calc()
    path = tmp_path_factory.mktemp("good") / "good.mtz"
    mtz = f.as_mtz_dataset(column_root_label="FC")
    mtz.add_miller_array(abs(f).set_observation_type_xray_amplitude(), column_root_label="F")
    mtz.mtz_object().write(str(path))
    return str(path)


CASES = [
    # (program, args with {evil} standing for the pickle's path, name of the pickle file)
    ("patterson_to_density", ["{evil}"], "data.mtz"),
    ("patterson_to_density", ["{evil}"], "data.hkl"),
    ("patterson_to_density", ["{evil}"], "params.eff"),
    ("patterson_to_density", ["{good}", "model={evil}", "output.prefix={dir}/out"], "model.pt"),
    ("extend_resolution", ["{evil}"], "data.mtz"),
    ("extend_resolution", ["{good}", "model={evil}", "output.prefix={dir}/out"], "model.pt"),
    ("evaluate", ["reference.file={good}", "prediction.file={evil}", "output.directory={dir}/ev"], "pred.mtz"),
    ("evaluate", ["reference.file={good}", "prediction.file={evil}", "output.directory={dir}/ev"], "pred.ccp4"),
    ("evaluate", ["reference.file={evil}", "prediction.file={good}", "output.directory={dir}/ev"], "ref.pdb"),
    (
        "simulate",
        ["source=structures", "structures.file={evil}", "n_examples=1", "output.directory={dir}/sim"],
        "model.pdb",
    ),
    (
        "simulate",
        ["source=structures", "structures.file={evil}", "n_examples=1", "output.directory={dir}/sim"],
        "model.cif",
    ),
    ("train", ["train.init_model={evil}", "train.data.train={dir}", "output.directory={dir}/tr"], "init.pt"),
    ("solve", ["{evil}"], "data.mtz"),
    ("solve", ["{good}", "seed=phases", "phases.file={evil}", "output.prefix={dir}/out"], "start.mtz"),
    ("solve", ["{dir}/data.hkl"], "data.ins"),  # the .ins beside a SHELX .hkl gives its symmetry
]


@pytest.mark.parametrize("program,args,name", CASES, ids=[f"{c[0]}-{c[2]}-{i}" for i, c in enumerate(CASES)])
@pytest.mark.parametrize("protocol", [0, 4])
def test_pickled_input_never_runs(program, args, name, protocol, evil, good_mtz, capsys):
    path = evil(name, protocol=protocol)
    if name == "data.ins":  # a real HKLF 4 file beside the pickled .ins
        (evil.dir / "data.hkl").write_text(
            "   1   0   0  123.45   2.10\n   0   1   0   12.00   1.00\n   0   0   0    0.00   0.00\n"
        )
    argv = [a.format(evil=path, good=good_mtz, dir=str(evil.dir)) for a in args]
    cwd = os.getcwd()
    os.chdir(evil.dir)
    try:
        status = run_cli(_programs()[program], argv)
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert not evil.marker.exists(), f"{program} ran code from a pickled {name}"
    assert status == 1, err
    assert err.strip().startswith("Sorry:") and "Traceback" not in err


def test_detect_recognises_formats(tmp_path, good_mtz):
    from ml_phasing.io import file_formats

    assert file_formats.detect(good_mtz) == "mtz"
    for protocol in [0, 1, 2, 3, 4, 5]:  # a code-running pickle in every protocol
        p = tmp_path / f"x{protocol}.bin"
        p.write_bytes(pickle.dumps(_Payload("/nonexistent"), protocol=protocol))
        assert file_formats.detect(str(p)) == "pickle", protocol
    (tmp_path / "d.bin").write_bytes(pickle.dumps({"a": 1}, protocol=1))  # unknown, still never unpickled
    assert file_formats.detect(str(tmp_path / "d.bin")) in ("pickle", "unknown")
    (tmp_path / "a.eff").write_text("simulate { n_examples = 3 }\n")
    assert file_formats.detect(str(tmp_path / "a.eff")) == "phil"
    (tmp_path / "a.hkl").write_text("   1   0   0  123.45   2.10\n   0   1   0   12.00   1.00\n")
    assert file_formats.detect(str(tmp_path / "a.hkl")) == "shelx_hkl"


def test_wrong_input_is_refused(tmp_path, good_mtz, capsys):
    """Inputs that used to be accepted with exit 0 or a misleading message (issue 12)."""
    from ml_phasing.programs import patterson_to_density, simulate

    cases = []
    bad_eff = tmp_path / "broken.eff"
    bad_eff.write_text("simulate {\n  n_examples = 3\n")  # unclosed scope
    cases.append((simulate.Program, [str(bad_eff), f"output.directory={tmp_path}/sim"], "Cannot parse PHIL"))
    fom_mtz = tmp_path / "fom.mtz"
    import iotbx.mtz
    from cctbx import miller

    f = iotbx.mtz.object(good_mtz).as_miller_arrays()[0]
    mtz = abs(f).set_observation_type_xray_amplitude().as_mtz_dataset(column_root_label="F")
    mtz.add_miller_array(miller.array(abs(f), abs(f).data() * 0 + 0.5), column_root_label="FOM", column_types="W")
    mtz.mtz_object().write(str(fom_mtz))
    cases.append(
        (
            patterson_to_density.Program,
            [str(fom_mtz), "input.labels=FOM", f"output.prefix={tmp_path}/a"],
            "not amplitudes",
        )
    )
    cases.append(
        (
            patterson_to_density.Program,
            [good_mtz, "model=extend_1.2_to_1.0A", f"output.prefix={tmp_path}/b"],
            "extend_resolution",
        )
    )
    from ml_phasing.programs import evaluate

    cases.append(  # flags or FOMs scored as amplitudes (issue 12: prediction.labels=FreeR_flag)
        (
            evaluate.Program,
            [
                f"reference.file={good_mtz}",
                "reference.labels=FC,PHIFC",
                f"prediction.file={fom_mtz}",
                "prediction.labels=FOM",
                f"output.prefix={tmp_path}/ev",
            ],
            "MTZ column types W",
        )
    )
    for program, args, message in cases:
        status = run_cli(program, args)
        err = capsys.readouterr().err
        assert status == 1 and err.startswith("Sorry:") and message in err, (args, err)
    assert not (tmp_path / "sim").exists()


@pytest.mark.parametrize(
    "args",
    [["nproc=0"], ["simulate.n_examples=-5"], ["simulate.d_min_low=0"], ["nproc=abc"], ["simulate.source=nonsense"]],
)
def test_phil_type_and_range_errors_are_one_sorry(args, tmp_path, capsys):
    from ml_phasing.programs import simulate

    status = run_cli(simulate.Program, args + [f"output.directory={tmp_path}/sim"])
    err = capsys.readouterr().err
    assert status == 1 and err.startswith("Sorry:") and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_second_run_on_the_same_prefix_is_refused(tmp_path, good_mtz, capsys):
    """While one run holds <prefix>.log.lock, another with the same prefix gets a Sorry and writes nothing."""
    import fcntl

    from ml_phasing.programs import solve

    lock = open(tmp_path / "busy.log.lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        status = run_cli(
            solve.Program,
            [good_mtz, "composition=C6", "engine.max_starts=1", "engine.cycles=1", f"output.prefix={tmp_path}/busy"],
        )
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
    err = capsys.readouterr().err
    assert status == 1 and "Another run is writing" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy.log.lock"]
    status = run_cli(
        solve.Program,
        [
            good_mtz,
            "composition=C6",
            "engine.max_starts=1",
            "engine.cycles=1",
            "engine.molecule=False",
            f"output.prefix={tmp_path}/busy",
        ],
    )
    assert status == 0 and (tmp_path / "busy.json").exists() and not (tmp_path / "busy.log.lock").exists()


def test_silent_changes_are_said_in_the_log(tmp_path, capsys):
    """Issue 12: data cut to the model's resolution, a space group from symmetry= replacing the
    file's, and an abbreviated parameter name are each one 'Note:' in the log; a cell that does
    not fit the space group is refused instead of being averaged to fit."""
    from cctbx import sgtbx
    from cctbx.development import random_structure

    from ml_phasing.programs import patterson_to_density

    xs = random_structure.xray_structure(
        sgtbx.space_group_info("P1"), elements=["C"] * 6, unit_cell=(10, 10, 10, 90, 90, 90), random_u_iso=False
    )
    f = abs(xs.structure_factors(d_min=1.2).f_calc()).set_observation_type_xray_amplitude()
    data = tmp_path / "d12.mtz"
    f.as_mtz_dataset(column_root_label="F").mtz_object().write(str(data))
    status = run_cli(patterson_to_density.Program, [str(data), "refinement.cycle=2", f"output.prefix={tmp_path}/a"])
    assert status == 0, capsys.readouterr().err
    log = (tmp_path / "a.log").read_text()
    assert "Note: refinement.cycle= was taken as refinement.cycles=" in log
    assert f"Note: the model works to 1.50 A: 618 of the {f.size()} reflections are used" in log
    from ml_phasing.programs import solve

    status = run_cli(
        solve.Program,
        [
            str(data),
            "composition=C6",
            "symmetry.space_group=P2",
            "engine.max_starts=1",
            "engine.cycles=2",
            f"output.prefix={tmp_path}/s",
        ],
    )
    assert status == 0, capsys.readouterr().err
    log = (tmp_path / "s.log").read_text()
    assert "Note: space group P 1 2 1 (symmetry.space_group) replaces P 1 from the file" in log
    assert f"Note: {f.size()} reflections in the file" in log and "after merging symmetry equivalents" in log
    status = run_cli(
        patterson_to_density.Program,
        [
            str(data),
            "symmetry.space_group=P432",
            "symmetry.unit_cell=9.5,10,10.5,90,90,90",
            f"output.prefix={tmp_path}/b",
        ],
    )
    err = capsys.readouterr().err
    assert status == 1 and err.startswith("Sorry: symmetry.unit_cell=(9.5, 10, 10.5, 90, 90, 90) does not fit"), err
    assert not (tmp_path / "b.mtz").exists()


def test_more_user_errors_are_one_sorry(tmp_path, good_mtz, capsys):
    """Issue 12's list: elements written with commas, a zero cell edge, a CIF with a cell and no
    atoms, an output directory that cannot be made."""
    from ml_phasing.programs import simulate, solve

    hkl = tmp_path / "z.hkl"
    hkl.write_text("   1   0   0  123.45   2.10\n   0   1   0   12.00   1.00\n")
    no_atoms = tmp_path / "noatoms.cif"
    no_atoms.write_text(
        "data_x\n_cell_length_a 10\n_cell_length_b 10\n_cell_length_c 10\n_cell_angle_alpha 90\n"
        "_cell_angle_beta 90\n_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\n"
    )
    cases = [
        (simulate.Program, ["random_atoms.elements=C,N", f"output.directory={tmp_path}/a"], 'elements="C N"'),
        (
            solve.Program,
            [str(hkl), "symmetry.unit_cell=0,10,10,90,90,90", "symmetry.space_group=P1", "composition=C6"],
            "zero or negative",
        ),
        (
            simulate.Program,
            ["source=structures", f"structures.file={no_atoms}", f"output.directory={tmp_path}/b"],
            "No atoms",
        ),
        (solve.Program, [good_mtz, "composition=C6", "output.prefix=/proc/no/such/dir/x"], "Cannot create"),
        (simulate.Program, ["output.directory=/proc/no/such"], "Cannot create"),
    ]
    for program, args, message in cases:
        status = run_cli(program, args)
        err = capsys.readouterr().err
        assert status == 1 and err.startswith("Sorry:") and message in err and len(err.strip().splitlines()) == 1, (
            args,
            err,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noatoms.cif", "z.hkl"]
