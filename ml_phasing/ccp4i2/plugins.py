"""CCP4i2 plugin scripts for the ml_phasing programs (``ccp4i2.core.PhilPluginScript``).

Each task follows ccp4i2's PHIL task design (``ccp4i2/wrappers/PHIL_TASK_GUIDE.md``):

* its ``.def.xml`` (beside this file) declares only ``inputData`` and ``outputData`` with
  CCP4i2's rich file types;
* ``controlParameters`` are built at run time from the program's own master PHIL (what
  ``ml_phasing.<program> --show-defaults`` prints), less the scopes the task fills itself;
* shims turn the input files into ``input.file=``/``input.labels=`` and friends, and
  ``PhilPluginScript.build_working_phil`` writes ``working.phil``, which the program's
  console script runs in the job directory;
* :meth:`MlPhasingTask.processOutputFiles` splits the program's MTZ into CCP4i2 mini-MTZ
  files (map coefficients FWT,PHWT -> F,PHI; PHIB,FOM -> PHI,FOM; ...), points the model and
  map outputs at the program's files, fills the performance indicator and writes
  ``program.xml`` for the report (:mod:`ml_phasing.ccp4i2.reports`).

Nothing here needs a CCP4 installation: the programs are pure Python (cctbx, gemmi, torch).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import xml.etree.ElementTree as ET

import ml_phasing  # noqa: F401  (boost_adaptbx, then torch; gemmi must not be loaded before: docs/ccp4i2.md)

from ccp4i2.core.PhilPluginScript import PhilPluginScript
from ccp4i2.utils.phil_shims import PhilShim

logger = logging.getLogger(__name__)

# The output scope every ml_phasing program gets from ProgramTemplate, plus the two the task sets
# itself; the program-specific output switches (write_map, plots) stay visible.
MANAGED_OUTPUT = [
    "output.prefix",
    "output.overwrite",
    "output.filename",
    "output.file_name",
    "output.suffix",
    "output.serial",
    "output.serial_format",
    "output.target_output_format",
]

PROGRAM_XML = "program.xml"


def phil_quote(value: str) -> str:
    """A PHIL string literal (paths with spaces, labels with commas)."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def mini_mtz_labels(file_obj) -> list:
    """The column labels of a CCP4i2 mini-MTZ file: the signature of its content flag.

    The content flag is read from the file when it is not set yet (CCP4i2 sets it when a file is
    imported; a file given by path in a script may not have it).
    """
    signatures = type(file_obj).CONTENT_SIGNATURE_LIST
    flag = None
    try:
        flag = int(file_obj.contentFlag)
    except (TypeError, ValueError, AttributeError):
        flag = None
    if not flag:
        flag = file_obj._introspect_content_flag()
    if not flag or not 1 <= flag <= len(signatures):
        raise ValueError(
            f"{file_obj.getFullPath()} has none of the columns a {type(file_obj).__name__} needs "
            f"({'; '.join(','.join(s) for s in signatures)})"
        )
    return list(signatures[flag - 1])


class FileShim(PhilShim):
    """An input data file -> its path as a PHIL parameter and, for a mini-MTZ, its column labels."""

    def __init__(self, input_name, path_param, labels_param=None):
        self.input_name = input_name
        self.path_param = path_param
        self.labels_param = labels_param

    def convert(self, container, work_directory):
        obj = getattr(container.inputData, self.input_name, None)
        if obj is None or not obj.isSet():
            return []
        result = [(self.path_param, phil_quote(obj.getFullPath()))]
        if self.labels_param:
            result.append((self.labels_param, phil_quote(",".join(mini_mtz_labels(obj)))))
        return result


class ValueShim(PhilShim):
    """Fixed PHIL values the task sets itself (output names, overwrite)."""

    def __init__(self, *pairs):
        self.pairs = list(pairs)

    def convert(self, container, work_directory):
        return list(self.pairs)


def _console_script(name):
    """The program's console script beside this Python, on PATH, or None."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.isfile(here) and os.access(here, os.X_OK):
        return here
    return shutil.which(name)


def write_mini_mtz(src, dst, mapping):
    """Copy of MTZ ``src`` with only the columns in ``mapping`` (old label -> new label), renamed."""
    import gemmi

    mtz = gemmi.read_mtz_file(src)
    missing = [c for c in mapping if mtz.column_with_label(c) is None]
    if missing:
        raise RuntimeError(f"{os.path.basename(src)} has no column {', '.join(missing)}")
    for index in reversed(range(3, len(mtz.columns))):
        if mtz.columns[index].label not in mapping:
            mtz.remove_column(index)
    for old, new in mapping.items():
        mtz.column_with_label(old).label = new
    mtz.history = [f"ml_phasing.ccp4i2: {', '.join(f'{a}->{b}' for a, b in mapping.items())} from {src}"]
    mtz.write_to_file(dst)


class MlPhasingTask(PhilPluginScript):
    """What the four ml_phasing tasks share. Subclasses set PROGRAM, PREFIX and the shims."""

    PROGRAM = None  # stem of ml_phasing.programs.<stem> and of the console script ml_phasing.<stem>
    PREFIX = None  # output.prefix inside the job directory
    PERFORMANCECLASS = "CExpPhasPerformance"
    PHIL_EXCLUDE_SCOPES = ["input"] + MANAGED_OUTPUT

    # -- PhilPluginScript contract -------------------------------------------------------------
    def get_master_phil(self):
        import importlib

        from ml_phasing.program_support import Parser

        module = importlib.import_module(f"ml_phasing.programs.{self.PROGRAM}")
        return Parser(program_class=module.Program, logger=None, parse_phil=False).master_phil

    def get_shim_definitions(self):
        return [
            FileShim("HKLIN", "input.file", "input.labels"),
            ValueShim(("output.prefix", self.PREFIX), ("output.overwrite", "True")),
        ]

    def get_command_target(self):
        return _console_script(f"ml_phasing.{self.PROGRAM}")

    def makeCommandAndScript(self):
        os.makedirs(str(self.getWorkDirectory()), exist_ok=True)
        phil_path = self.build_working_phil()
        script = self.get_command_target()
        if script:
            self.TASKCOMMAND = script
            self.appendCommandLine([phil_path])
        else:  # no console script (an unusual install): the same entry point through this Python
            self.TASKCOMMAND = sys.executable
            self.appendCommandLine(["-m", f"ml_phasing.command_line.{self.PROGRAM}", phil_path])
        return self.SUCCEEDED

    # -- outputs ---------------------------------------------------------------------------------
    def job_file(self, name):
        return os.path.join(str(self.getWorkDirectory()), name)

    def fail(self, code, details):
        self.appendErrorReport(code, details)
        logger.error(details)
        return self.FAILED

    def program_result(self):
        """The program's JSON (what it computed; its files), or None."""
        path = self.job_file(f"{self.PREFIX}.json")
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            return json.load(f)

    def split_columns(self, mtz, outputs):
        """Write mini-MTZ files for outputData entries: {name: {program column: CCP4i2 column}}.

        Every reflection of the program's MTZ is kept. (ccp4i2 3.0.1's ``splitHklout`` rebuilds
        the reflection list from the header's resolution limits and drops the reflections at the
        high-resolution edge, which matters to the resolution checks of the networks.)
        """
        for name, mapping in outputs.items():
            obj = getattr(self.container.outputData, name)
            path = str(obj.getFullPath())
            if not os.path.isabs(path):
                path = self.job_file(path)
            write_mini_mtz(mtz, path, mapping)
            obj.setFullPath(path)

    def split_map_and_phases(self, mtz, fphi_name, phs_name):
        """FWT,PHWT -> <fphi_name> (F,PHI) and PHIB,FOM -> <phs_name> (PHI,FOM) from the program's MTZ."""
        self.split_columns(mtz, {fphi_name: {"FWT": "F", "PHWT": "PHI"}, phs_name: {"PHIB": "PHI", "FOM": "FOM"}})
        out = self.container.outputData
        getattr(out, fphi_name).annotation = f"Map coefficients from {os.path.basename(mtz)}"
        getattr(out, phs_name).annotation = f"Phases and figures of merit from {os.path.basename(mtz)}"

    def set_output_file(self, name, path, annotation):
        obj = getattr(self.container.outputData, name)
        obj.setFullPath(path)
        obj.annotation = annotation

    def set_performance(self, **values):
        perf = getattr(self.container.outputData, "PERFORMANCE", None)
        if perf is None:
            return
        for key, value in values.items():
            if value is not None:
                setattr(perf, key, float(value))

    def write_program_xml(self, summary, tables=()):
        """program.xml for the report: (key, label, value) items and titled tables of row dicts."""
        root = ET.Element("ML_PHASING", program=f"ml_phasing.{self.PROGRAM}")
        s = ET.SubElement(root, "Summary")
        for key, label, value in summary:
            if value is None:
                continue
            item = ET.SubElement(s, "Item", key=key, label=label)
            item.text = _fmt(value)
        for title, rows in tables:
            if not rows:
                continue
            t = ET.SubElement(root, "Table", title=title)
            for row in rows:
                r = ET.SubElement(t, "Row")
                for name, value in row.items():
                    cell = ET.SubElement(r, "Cell", name=name)
                    cell.text = _fmt(value)
        ET.indent(root)
        ET.ElementTree(root).write(self.job_file(PROGRAM_XML), encoding="utf-8", xml_declaration=True)

    def processOutputFiles(self):
        result = self.program_result()
        if result is None:
            return self.fail(201, f"ml_phasing.{self.PROGRAM} wrote no {self.PREFIX}.json in {self.getWorkDirectory()}")
        try:
            self.harvest(result)
        except Exception as e:  # noqa: BLE001 - reported to CCP4i2 as this job's failure
            return self.fail(202, f"Could not harvest the outputs of ml_phasing.{self.PROGRAM}: {e}")
        self.unset_missing_outputs()
        return self.SUCCEEDED

    def unset_missing_outputs(self):
        """Outputs this run did not write (the solution without solve=True, ...) are left unset."""
        from ccp4i2.core.base_object.base_classes import CDataFile

        for name in self.container.outputData.dataOrder():
            obj = getattr(self.container.outputData, name)
            if isinstance(obj, CDataFile) and obj.isSet():
                path = str(obj.getFullPath())
                if not os.path.isfile(path if os.path.isabs(path) else self.job_file(path)):
                    obj.baseName.unSet()

    def harvest(self, result):
        raise NotImplementedError

    def harvest_solution(self, prefix, xyz, fphi, phs):
        """The files ``solve=True`` (or ml_phasing.solve itself) writes as <prefix>.pdb/.mtz."""
        pdb, mtz = self.job_file(f"{prefix}.pdb"), self.job_file(f"{prefix}.mtz")
        for path in (pdb, mtz):
            if not os.path.isfile(path):
                raise RuntimeError(f"{os.path.basename(path)} was not written")
        self.set_output_file(xyz, pdb, "Structure from the ml_phasing phasing engine")
        self.split_map_and_phases(mtz, fphi, phs)


def _fmt(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _input_items(result):
    i = result.get("input") or {}
    return [
        ("reflections", "Reflections read", i.get("n_reflections")),
        ("labels", "Columns", i.get("labels")),
        ("space_group", "Space group", i.get("space_group")),
        ("unit_cell", "Unit cell", i.get("unit_cell")),
        ("d_min", "Resolution (A)", i.get("d_min")),
    ]


def _solution_items(solution):
    best = (solution or {}).get("best") or {}
    return [
        ("solved", "Solved", solution.get("solved")),
        ("best_start", "Best start", best.get("start")),
        ("cc", "CC(Eo^2,Ec^2) (%)", best.get("cc")),
        ("r1", "R1", best.get("r1")),
        ("n_atoms", "Atoms", best.get("n_atoms")),
        ("mean_fom", "Mean FOM", best.get("mean_fom")),
    ]


def _starts_table(solution):
    keys = ("start", "label", "cc", "r1", "seconds", "solved")
    return [{k: s.get(k) for k in keys if k in s} for s in (solution or {}).get("starts") or []]


class ml_phasing_patterson_to_density(MlPhasingTask):
    TASKNAME = "ml_phasing_patterson_to_density"
    TASKCOMMAND = "ml_phasing.patterson_to_density"
    PROGRAM = "patterson_to_density"
    PREFIX = "p2d"
    WHATNEXT = ["ml_phasing_solve", "ml_phasing_evaluate"]

    def harvest(self, result):
        mtz = self.job_file(f"{self.PREFIX}.mtz")
        if not os.path.isfile(mtz):
            raise RuntimeError(f"{self.PREFIX}.mtz was not written")
        self.split_map_and_phases(mtz, "FPHIOUT", "PHSOUT")
        self.set_output_file("HKLOUT", mtz, "Predicted phases with the input amplitudes")
        density = self.job_file(f"{self.PREFIX}_density.ccp4")
        if os.path.isfile(density):
            self.set_output_file("MAPOUT", density, "Predicted density")
        solution = result.get("solution")
        if solution:
            self.harvest_solution(f"{self.PREFIX}_solve", "XYZOUT", "SOLVE_FPHIOUT", "SOLVE_PHSOUT")
            best = solution.get("best") or {}
            self.set_performance(FOM=best.get("mean_fom"), CC=best.get("cc"), RFactor=best.get("r1"))
        else:
            self.set_performance(FOM=result.get("mean_fom"))
        summary = _input_items(result) + [
            ("model", "Network", os.path.basename(str((result.get("model") or {}).get("file", "")))),
            ("r_factor_network", "R(|Fobs|, |F(prediction)|)", result.get("r_factor_network")),
            ("mean_fom_network", "Mean FOM (network)", result.get("mean_fom_network")),
            ("mean_fom", "Mean FOM (after refinement)", result.get("mean_fom")),
            ("seconds", "Prediction time (s)", result.get("seconds")),
        ]
        if solution:
            summary += _solution_items(solution)
        self.write_program_xml(summary, [("Phasing starts", _starts_table(solution))])


class ml_phasing_extend_resolution(MlPhasingTask):
    TASKNAME = "ml_phasing_extend_resolution"
    TASKCOMMAND = "ml_phasing.extend_resolution"
    PROGRAM = "extend_resolution"
    PREFIX = "ext"
    WHATNEXT = ["ml_phasing_solve", "ml_phasing_evaluate"]

    def harvest(self, result):
        mtz = self.job_file(f"{self.PREFIX}.mtz")
        if not os.path.isfile(mtz):
            raise RuntimeError(f"{self.PREFIX}.mtz was not written")
        self.split_columns(mtz, {"F_SIGF_OUT": {"F_EXT": "F", "SIGF_EXT": "SIGF"}})
        self.container.outputData.F_SIGF_OUT.annotation = (
            f"Amplitudes extended to {_fmt(result.get('d_min_target'))} A (measured and predicted)"
        )
        self.set_output_file("HKLOUT", mtz, "Measured and extended amplitudes, PREDICTED flag")
        solution = result.get("solution")
        if solution:
            self.harvest_solution(f"{self.PREFIX}_solve", "XYZOUT", "FPHIOUT", "PHSOUT")
            best = solution.get("best") or {}
            self.set_performance(FOM=best.get("mean_fom"), CC=best.get("cc"), RFactor=best.get("r1"))
        summary = _input_items(result) + [
            ("model", "Network", os.path.basename(str(result.get("model", "")))),
            ("d_min_target", "Extended to (A)", result.get("d_min_target")),
            ("n_measured", "Measured reflections", result.get("n_measured")),
            ("n_predicted", "Predicted reflections", result.get("n_predicted")),
        ]
        if solution:
            summary += _solution_items(solution)
        self.write_program_xml(summary, [("Phasing starts", _starts_table(solution))])


class ml_phasing_solve(MlPhasingTask):
    TASKNAME = "ml_phasing_solve"
    TASKCOMMAND = "ml_phasing.solve"
    PROGRAM = "solve"
    PREFIX = "solve"
    PHIL_EXCLUDE_SCOPES = MlPhasingTask.PHIL_EXCLUDE_SCOPES + ["phases"]
    WHATNEXT = ["ml_phasing_evaluate"]

    def get_shim_definitions(self):
        shims = super().get_shim_definitions()
        inputs = self.container.inputData
        for name in ("PHSIN", "FPHIIN"):
            obj = getattr(inputs, name, None)
            if obj is not None and obj.isSet():
                shims.append(FileShim(name, "phases.file", "phases.labels"))
                seed = self.container.controlParameters.seed
                if not seed.isSet(allowDefault=False):  # starting phases given: use them unless told otherwise
                    shims.append(ValueShim(("seed", "phases")))
                break
        return shims

    def validity(self):
        error = super().validity()
        inputs = self.container.inputData
        if all(getattr(inputs, n).isSet() for n in ("PHSIN", "FPHIIN")):
            error.append(
                klass=self.__class__.__name__,
                code=203,
                details="Give starting phases (PHSIN) or starting map coefficients (FPHIIN), not both",
                name="PHSIN",
                severity=4,
            )
        return error

    def harvest(self, result):
        self.harvest_solution(self.PREFIX, "XYZOUT", "FPHIOUT", "PHSOUT")
        self.set_output_file("HKLOUT", self.job_file(f"{self.PREFIX}.mtz"), "F,SIGF; FWT,PHWT; PHIB,FOM; FC,PHIC")
        best = result.get("best") or {}
        self.set_performance(FOM=best.get("mean_fom"), CC=best.get("cc"), RFactor=best.get("r1"))
        comp = result.get("composition") or {}
        summary = _input_items(result) + [
            ("composition", "Composition", " ".join(f"{k}{v:g}" for k, v in comp.items()) if comp else None),
            ("seed", "Starts from", result.get("seed")),
        ]
        summary += _solution_items(result)
        summary += [("seconds", "Time (s)", result.get("seconds"))]
        self.write_program_xml(summary, [("Phasing starts", _starts_table(result))])


class ml_phasing_evaluate(MlPhasingTask):
    TASKNAME = "ml_phasing_evaluate"
    TASKCOMMAND = "ml_phasing.evaluate"
    PROGRAM = "evaluate"
    PREFIX = "evaluate"
    PERFORMANCECLASS = "CPhaseErrorPerformance"
    PHIL_EXCLUDE_SCOPES = ["reference", "prediction"] + MANAGED_OUTPUT
    REFERENCES = ("FPHIREF", "XYZREF")
    PREDICTIONS = ("FPHIIN", "PHSIN", "F_SIGF")

    def get_shim_definitions(self):
        inputs = self.container.inputData
        shims = [ValueShim(("output.prefix", self.PREFIX), ("output.overwrite", "True"))]
        if inputs.FPHIREF.isSet():
            shims.append(FileShim("FPHIREF", "reference.file", "reference.labels"))
        elif inputs.XYZREF.isSet():
            shims.append(FileShim("XYZREF", "reference.file"))
        if inputs.FPHIIN.isSet():
            shims.append(FileShim("FPHIIN", "prediction.file", "prediction.labels"))
        elif inputs.PHSIN.isSet():
            shims.append(FileShim("PHSIN", "prediction.file"))
            shims.append(ValueShim(("prediction.phase_label", "PHI"), ("prediction.fom_label", "FOM")))
        elif inputs.F_SIGF.isSet():
            shims.append(FileShim("F_SIGF", "prediction.file", "prediction.labels"))
        return shims

    def validity(self):
        error = super().validity()
        inputs = self.container.inputData
        for names, what in ((self.REFERENCES, "one reference"), (self.PREDICTIONS, "one prediction")):
            given = [n for n in names if getattr(inputs, n).isSet()]
            if len(given) != 1:
                error.append(
                    klass=self.__class__.__name__,
                    code=204,
                    details=f"Give exactly {what} ({' or '.join(names)}); given: {', '.join(given) or 'none'}",
                    name=names[0],
                    severity=4,
                )
        return error

    def harvest(self, result):
        predictions = result.get("predictions") or []
        if not predictions:
            raise RuntimeError("evaluate.json holds no prediction")
        p = predictions[0]
        overall = (p.get("phases") or {}).get("overall") or {}
        self.set_performance(
            phaseError=overall.get("mean_phase_error"),
            weightedPhaseError=overall.get("fom_weighted_phase_error"),
            reflectionCorrelation=p.get("map_cc_aligned"),
        )
        amplitudes = p.get("amplitudes") or {}
        summary = [
            ("prediction_kind", "Prediction", p.get("prediction_kind")),
            ("reference_kind", "Reference", p.get("reference_kind")),
            ("n_common", "Common reflections", p.get("n_common")),
            ("d_min", "Resolution (A)", p.get("d_min")),
            ("mean_phase_error", "Mean phase error (deg)", overall.get("mean_phase_error")),
            ("fom_weighted_phase_error", "FOM-weighted phase error (deg)", overall.get("fom_weighted_phase_error")),
            ("f_weighted_phase_error", "F-weighted phase error (deg)", overall.get("f_weighted_phase_error")),
            ("fraction_below_60", "Fraction within 60 deg", overall.get("fraction_below_60")),
            ("map_cc", "Map CC", p.get("map_cc")),
            ("map_cc_aligned", "Map CC after origin/hand alignment", p.get("map_cc_aligned")),
            ("r_factor", "Amplitude R", amplitudes.get("r_factor") if isinstance(amplitudes, dict) else None),
        ]
        shells = (p.get("phases") or {}).get("shells") or []
        keys = ("d_max", "d_min", "n", "mean_phase_error", "fom_weighted_phase_error", "fraction_below_60")
        self.write_program_xml(summary, [("Phase error by resolution", [{k: s.get(k) for k in keys} for s in shells])])
