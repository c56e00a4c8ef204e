"""CCP4i2 tasks for the ml_phasing programs (docs/ccp4i2.md).

Four tasks, one per user-facing program:

=================================== ==================================
task                                program
=================================== ==================================
``ml_phasing_patterson_to_density`` ``ml_phasing.patterson_to_density``
``ml_phasing_extend_resolution``    ``ml_phasing.extend_resolution``
``ml_phasing_solve``                ``ml_phasing.solve``
``ml_phasing_evaluate``             ``ml_phasing.evaluate``
=================================== ==================================

Each has a ``<task>.def.xml`` beside this file, a plugin script in :mod:`.plugins` and a report
in :mod:`.reports`. CCP4i2 (3.0) finds tasks in the ``TASKS`` dictionary of
``ccp4i2.core.tasks``; :func:`register` adds these four to it in the running process, and
``python -m ml_phasing.ccp4i2 tasks-py`` prints the entries for pasting into that file.

This module imports neither ccp4i2 nor cctbx until :func:`register` is called.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True)
class TaskInfo:
    name: str
    title: str
    short_title: str
    description: str


TASK_INFO = [
    TaskInfo(
        "ml_phasing_patterson_to_density",
        "Patterson to density (ml_phasing)",
        "ML Patterson to density",
        "Predict electron density, phases and figures of merit from observed amplitudes with a neural "
        "network (small cells); optionally solve the structure from the prediction.",
    ),
    TaskInfo(
        "ml_phasing_extend_resolution",
        "Extend resolution (ml_phasing)",
        "ML resolution extension",
        "Predict amplitudes beyond the measured resolution with a neural network; optionally solve the "
        "structure from the extended data.",
    ),
    TaskInfo(
        "ml_phasing_solve",
        "Solve a small structure (ml_phasing)",
        "ML phasing: solve",
        "Solve a small-molecule or peptide structure: network, charge-flipping or user phase starts, "
        "dual-space recycling and least squares; writes the model, map coefficients and phases.",
    ),
    TaskInfo(
        "ml_phasing_evaluate",
        "Evaluate phases against the truth (ml_phasing)",
        "ML phasing: evaluate",
        "Phase errors (after origin and hand search), map correlation and amplitude R of a prediction "
        "against known phases or a model, by resolution shell.",
    ),
]

TASK_NAMES = [t.name for t in TASK_INFO]


def def_xml_path(task_name: str) -> str:
    """Absolute path of a task's .def.xml (shipped in this package)."""
    return os.path.join(HERE, f"{task_name}.def.xml")


def task_entries():
    """(task name, keyword arguments of ccp4i2.core.tasks.Task) for each task."""
    entries = []
    for t in TASK_INFO:
        entries.append(
            (
                t.name,
                dict(
                    title=t.title,
                    description=t.description,
                    shortTitle=t.short_title,
                    pluginPath=f"ml_phasing.ccp4i2.plugins:{t.name}",
                    defXmlPath=def_xml_path(t.name),
                    reportPath=f"ml_phasing.ccp4i2.reports:{t.name}_report",
                    ccp4_free=True,
                ),
            )
        )
    return entries


def register(tasks=None) -> list:
    """Add the four tasks to CCP4i2's task registry (``ccp4i2.core.tasks.TASKS``) in this process.

    Call it before CCP4i2 looks tasks up (before ``ccp4i2.api.views`` is imported in a server,
    or before ``i2run`` parses its arguments). ``defXmlPath`` is absolute: ``locate_def_xml``
    joins it to ccp4i2's own folder, which leaves an absolute path as it is. Returns the names.
    """
    import ml_phasing  # noqa: F401  (boost_adaptbx and torch before anything loads gemmi: docs/ccp4i2.md)

    from ccp4i2.core import tasks as i2tasks

    registry = i2tasks.TASKS if tasks is None else tasks
    for name, kwargs in task_entries():
        registry[name] = i2tasks.Task(**kwargs)
    for cached in (i2tasks.get_plugin_class, i2tasks.get_report_class):
        cache_clear = getattr(cached, "cache_clear", None)
        if cache_clear is not None:  # a failed lookup before registration must not stick
            cache_clear()
    return list(TASK_NAMES)


def tasks_py_entries() -> str:
    """The entries for ccp4i2/core/tasks.py's TASKS dictionary, as Python source."""
    lines = []
    for name, kwargs in task_entries():
        lines.append(f'    "{name}": Task(')
        for key, value in kwargs.items():
            lines.append(f"        {key}={value!r},")
        lines.append("    ),")
    return "\n".join(lines)
