"""The CCP4i2 tasks (ml_phasing/ccp4i2, docs/ccp4i2.md), through ccp4i2's own classes.

Skipped where ccp4i2 (pip install ccp4i2==3.0.1) is not installed. The runs go through the
plugin scripts' ``process()`` (no CCP4i2 database: outputs are named in the job directory) on a
1.5 A dialanine example made by ml_phasing.simulate.
"""

import boost_adaptbx.boost.python  # noqa: F401
import torch  # noqa: F401

import os

import pytest

pytest.importorskip(
    "ccp4i2.core.PhilPluginScript", reason="ccp4i2 is not installed (pip install ccp4i2==3.0.1)", exc_type=ImportError
)

import gemmi
from lxml import etree

from conftest import assert_clean_exit, run_script

import ml_phasing.ccp4i2 as mli2
from ml_phasing.ccp4i2 import plugins

TASKS = mli2.TASK_NAMES

# task -> ({input: class}, {output: class}) as the def.xml must declare them
EXPECTED = {
    "ml_phasing_patterson_to_density": (
        {"HKLIN": "CObsDataFile"},
        {
            "FPHIOUT": "CMapCoeffsDataFile",
            "PHSOUT": "CPhsDataFile",
            "MAPOUT": "CMapDataFile",
            "XYZOUT": "CPdbDataFile",
            "SOLVE_FPHIOUT": "CMapCoeffsDataFile",
            "SOLVE_PHSOUT": "CPhsDataFile",
            "HKLOUT": "CMtzDataFile",
            "PERFORMANCE": "CExpPhasPerformance",
        },
    ),
    "ml_phasing_extend_resolution": (
        {"HKLIN": "CObsDataFile"},
        {
            "F_SIGF_OUT": "CObsDataFile",
            "XYZOUT": "CPdbDataFile",
            "FPHIOUT": "CMapCoeffsDataFile",
            "PHSOUT": "CPhsDataFile",
            "HKLOUT": "CMtzDataFile",
            "PERFORMANCE": "CExpPhasPerformance",
        },
    ),
    "ml_phasing_solve": (
        {"HKLIN": "CObsDataFile", "PHSIN": "CPhsDataFile", "FPHIIN": "CMapCoeffsDataFile"},
        {
            "XYZOUT": "CPdbDataFile",
            "FPHIOUT": "CMapCoeffsDataFile",
            "PHSOUT": "CPhsDataFile",
            "HKLOUT": "CMtzDataFile",
            "PERFORMANCE": "CExpPhasPerformance",
        },
    ),
    "ml_phasing_evaluate": (
        {
            "FPHIREF": "CMapCoeffsDataFile",
            "XYZREF": "CPdbDataFile",
            "FPHIIN": "CMapCoeffsDataFile",
            "PHSIN": "CPhsDataFile",
            "F_SIGF": "CObsDataFile",
        },
        {"PERFORMANCE": "CPhaseErrorPerformance"},
    ),
}

PROGRAM = {t: t[len("ml_phasing_") :] for t in TASKS}


@pytest.fixture(scope="module")
def registered():
    return mli2.register()


def plugin(task, work_dir=None):
    from ccp4i2.core.tasks import get_plugin_class

    cls = get_plugin_class(task)
    assert cls is not None, f"ccp4i2 could not import the plugin of {task}"
    if work_dir is not None:
        os.makedirs(work_dir, exist_ok=True)
    return cls(workDirectory=str(work_dir) if work_dir else None)


def phil_param(control_parameters, path):
    """The controlParameters entry of a PHIL path (scope a.b, parameter a.b.c -> a__b__c in a__b)."""
    obj = control_parameters
    parts = path.split(".")
    for i in range(len(parts)):
        obj = getattr(obj, "__".join(parts[: i + 1]))
    return obj


def columns(path):
    mtz = gemmi.read_mtz_file(str(path))
    return [c.label for c in mtz.columns], mtz


def run(task, work_dir, inputs, params=None):
    p = plugin(task, work_dir)
    for name, path in inputs.items():
        getattr(p.container.inputData, name).setFullPath(str(path))
    for path, value in (params or {}).items():
        phil_param(p.container.controlParameters, path).set(value)
    status = p.process()
    assert status == p.SUCCEEDED, f"{task} failed: {p.errorReport}\n{_tail(work_dir, 'stderr.txt')}"
    return p


def _tail(work_dir, name):
    path = os.path.join(str(work_dir), name)
    return open(path).read()[-3000:] if os.path.exists(path) else ""


def output_path(p, name):
    obj = getattr(p.container.outputData, name)
    assert obj.isSet(), f"{name} is not set"
    path = str(obj.getFullPath())
    return path if os.path.isabs(path) else os.path.join(str(p.getWorkDirectory()), path)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The dialanine example and CCP4i2-style mini-MTZ inputs made from it."""
    d = tmp_path_factory.mktemp("i2example")
    proc = run_script(
        "ml_phasing.simulate",
        "source=peptides",
        "n_examples=1",
        "write_examples=1",
        "d_min_low=1.5",
        "d_min_high=1.5",
        "random_seed=7",
        "output.directory=example",
        cwd=d,
    )
    assert_clean_exit(proc)
    full = d / "example" / "examples" / "example_00000.mtz"
    obs, ref = d / "obs.mtz", d / "ref.mtz"
    plugins.write_mini_mtz(str(full), str(obs), {"F": "F", "SIGF": "SIGF"})
    plugins.write_mini_mtz(str(full), str(ref), {"FC": "F", "PHIC": "PHI"})
    return {"dir": d, "full": full, "obs": obs, "ref": ref, "pdb": d / "example" / "examples" / "example_00000.pdb"}


# -- definitions -------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_def_xml_declares_the_inputs_and_outputs(task):
    from ccp4i2.core.task_manager.def_xml_handler import DefXmlParser

    path = mli2.def_xml_path(task)
    root = etree.parse(path).getroot()
    assert root.findtext("ccp4i2_header/pluginName") == task
    container = DefXmlParser().parse_def_xml(path)  # ccp4i2's own DEF parser
    inputs, outputs = EXPECTED[task]
    for sub, expected in ((container.inputData, inputs), (container.outputData, outputs)):
        assert list(sub.dataOrder()) == list(expected)
        for name, cls in expected.items():
            assert type(getattr(sub, name)).__name__ == cls, name
    for name in inputs:  # every input but the one reflection file of a task is optional
        qualifier = getattr(container.inputData, name).get_qualifier("allowUndefined")
        assert qualifier is (name not in ("HKLIN",)), name
    # controlParameters come from the program's PHIL, not from the def.xml
    assert list(container.controlParameters.dataOrder()) == []


@pytest.mark.parametrize("task", TASKS)
def test_registration(task, registered):
    from ccp4i2.core.tasks import TASKS as I2_TASKS, get_report_class, locate_def_xml

    assert task in registered
    assert I2_TASKS[task].ccp4_free
    assert str(locate_def_xml(task)) == os.path.realpath(mli2.def_xml_path(task))
    assert get_report_class(task).TASKNAME == task


@pytest.mark.parametrize("task", TASKS)
def test_control_parameters_are_the_programs_phil(task, registered):
    p = plugin(task)
    master = p.get_master_phil()
    excluded = tuple(p.get_phil_exclude_scopes())
    cp = p.container.controlParameters
    find = lambda path: phil_param(cp, path)  # noqa: E731
    shown = 0
    for d in master.all_definitions():
        hidden = any(d.path == e or d.path.startswith(e + ".") for e in excluded)
        if hidden:
            with pytest.raises(AttributeError):
                find(d.path)
            continue
        obj = find(d.path)
        assert obj.get_qualifier("philPath") == d.path
        if d.object.type.phil_type == "choice":
            words = [str(w).lstrip("*") for w in d.object.words]
            assert list(obj.get_qualifier("enumerators")) == words, d.path
        shown += 1
    assert shown >= 3
    assert not hasattr(cp, "input") and not hasattr(cp, "output__prefix")


# -- runs ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def p2d_run(example, registered, tmp_path_factory):
    wd = tmp_path_factory.mktemp("p2d_job")
    return run("ml_phasing_patterson_to_density", wd, {"HKLIN": example["obs"]})


def assert_split(p, mtz_name, name, program_columns, i2_columns):
    """The mini-MTZ has CCP4i2's column names and every reflection and value of the program's MTZ."""
    import numpy as np

    labels, mini = columns(output_path(p, name))
    assert labels == ["H", "K", "L"] + i2_columns
    _, full = columns(os.path.join(str(p.getWorkDirectory()), mtz_name))
    assert mini.nreflections == full.nreflections
    for a, b in zip(program_columns, i2_columns):
        assert np.array_equal(
            np.asarray(full.column_with_label(a).array), np.asarray(mini.column_with_label(b).array), equal_nan=True
        )


def test_patterson_to_density_task(p2d_run, example):
    p = p2d_run
    assert_split(p, "p2d.mtz", "FPHIOUT", ["FWT", "PHWT"], ["F", "PHI"])
    assert_split(p, "p2d.mtz", "PHSOUT", ["PHIB", "FOM"], ["PHI", "FOM"])
    assert columns(example["obs"])[1].nreflections == columns(output_path(p, "HKLOUT"))[1].nreflections
    assert os.path.getsize(output_path(p, "MAPOUT")) > 1000
    out = p.container.outputData
    # solve=Auto: the dialanine model fixes the cell's contents, so the engine runs and its
    # structure and map coefficients are harvested too
    for name in ("XYZOUT", "SOLVE_FPHIOUT", "SOLVE_PHSOUT"):
        assert getattr(out, name).isSet(), name
    assert os.path.isfile(str(out.XYZOUT))
    assert 0 < float(out.PERFORMANCE.FOM) <= 1
    phil = open(os.path.join(str(p.getWorkDirectory()), "working.phil")).read()
    assert f'file = "{example["obs"]}"' in phil and 'labels = "F,SIGF"' in phil


def test_report_renders_program_xml(p2d_run, registered):
    from ccp4i2.core.tasks import get_report_class

    node = etree.parse(os.path.join(str(p2d_run.getWorkDirectory()), "program.xml")).getroot()
    report = get_report_class("ml_phasing_patterson_to_density")(xmlnode=node, jobInfo={}, jobStatus="Finished")
    text = etree.tostring(etree.fromstring(_as_bytes(report.as_data_etree()))).decode()
    assert "Mean FOM (after refinement)" in text and "patterson_dialanine_10A.pt" in text


def _as_bytes(tree):
    import xml.etree.ElementTree as ET

    return ET.tostring(tree) if isinstance(tree, ET.Element) else etree.tostring(tree)


def test_solve_task_from_predicted_map_coefficients(p2d_run, example, tmp_path):
    p = run(
        "ml_phasing_solve",
        tmp_path / "job",
        {"HKLIN": example["obs"], "FPHIIN": output_path(p2d_run, "FPHIOUT")},
        {"composition": "C6 N2 O2", "engine.max_starts": 3},
    )
    phil = open(tmp_path / "job" / "working.phil").read()
    assert "*phases" in phil and 'labels = "F,PHI"' in phil  # the map coefficients set seed=phases
    assert_split(p, "solve.mtz", "FPHIOUT", ["FWT", "PHWT"], ["F", "PHI"])
    assert_split(p, "solve.mtz", "PHSOUT", ["PHIB", "FOM"], ["PHI", "FOM"])
    st = gemmi.read_structure(output_path(p, "XYZOUT"))
    assert st[0].count_atom_sites() == 10
    perf = p.container.outputData.PERFORMANCE
    assert float(perf.CC) > 90 and float(perf.RFactor) < 0.2
    node = etree.parse(str(tmp_path / "job" / "program.xml")).getroot()
    assert node.find("Summary/Item[@key='solved']").text == "yes"


def test_extend_resolution_task(example, registered, tmp_path):
    p = run("ml_phasing_extend_resolution", tmp_path / "job", {"HKLIN": example["obs"]})
    assert_split(p, "ext.mtz", "F_SIGF_OUT", ["F_EXT", "SIGF_EXT"], ["F", "SIGF"])
    n_in = columns(example["obs"])[1].nreflections
    assert columns(output_path(p, "F_SIGF_OUT"))[1].nreflections > 2 * n_in
    assert not p.container.outputData.XYZOUT.isSet()


def test_evaluate_task(p2d_run, example, tmp_path):
    import json

    p = run(
        "ml_phasing_evaluate", tmp_path / "job", {"FPHIREF": example["ref"], "FPHIIN": output_path(p2d_run, "FPHIOUT")}
    )
    result = json.load(open(tmp_path / "job" / "evaluate.json"))["predictions"][0]
    perf = p.container.outputData.PERFORMANCE
    assert float(perf.phaseError) == pytest.approx(result["phases"]["overall"]["mean_phase_error"], abs=1e-6)
    assert 0 < float(perf.phaseError) < 70
    node = etree.parse(str(tmp_path / "job" / "program.xml")).getroot()
    assert len(node.findall("Table/Row")) == 10  # phase error in 10 resolution shells


def test_evaluate_refuses_two_predictions(p2d_run, example, tmp_path):
    p = plugin("ml_phasing_evaluate", tmp_path / "job")
    inputs = p.container.inputData
    inputs.FPHIREF.setFullPath(str(example["ref"]))
    inputs.FPHIIN.setFullPath(output_path(p2d_run, "FPHIOUT"))
    inputs.PHSIN.setFullPath(output_path(p2d_run, "PHSOUT"))
    assert p.process() == p.FAILED
    assert "exactly one prediction" in str(p.errorReport)
    assert not os.path.exists(tmp_path / "job" / "evaluate.json")  # refused before running


def test_i2run_headless_registers_files_and_kpis(example, tmp_path):
    """ccp4i2's own i2run (Django, SQLite in CCP4I2_HOME): the job, its files and KPIs land in the database."""
    import sqlite3
    import subprocess
    import sys

    env = dict(os.environ, CCP4I2_HOME=str(tmp_path / "home"))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("DATABASE_URL", None)
    env.pop("CCP4I2_DB_FILE", None)
    env.pop("CCP4I2_PROJECTS_DIR", None)
    args = ["i2run", "ml_phasing_solve", "--HKLIN", str(example["obs"]), "--composition", "C6 N2 O2"]
    proc = subprocess.run(
        [sys.executable, "-m", "ml_phasing.ccp4i2", *args, "--project_name", "mltest"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    db = sqlite3.connect(tmp_path / "home" / "db.sqlite3")
    assert list(db.execute("select task_name, status from ccp4i2_job")) == [("ml_phasing_solve", 6)]  # 6: finished
    files = dict(db.execute("select job_param_name, type_id from ccp4i2_file"))
    assert files == {
        "HKLIN": "application/CCP4-mtz-observed",
        "XYZOUT": "chemical/x-pdb",
        "FPHIOUT": "application/CCP4-mtz-map",
        "PHSOUT": "application/CCP4-mtz-phases",
        "HKLOUT": "application/CCP4-mtz",
    }
    kpis = {k: v for v, k in db.execute("select value, key_id from ccp4i2_jobfloatvalue")}
    assert set(kpis) == {"FOM", "CC", "RFactor"} and kpis["CC"] > 90
    job_dir = tmp_path / "home" / "CCP4X_PROJECTS" / "mltest" / "CCP4_JOBS" / "job_1"
    assert columns(job_dir / "FPHIOUT.mtz")[0] == ["H", "K", "L", "F", "PHI"]
