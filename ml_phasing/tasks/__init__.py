"""What goes in, what comes out and what is scored, for each learning task.

A task turns examples of a simulated dataset, or a user's data, into tensors (with
the normalisation it declares), runs a model on a batch, computes the loss and the
validation metrics, turns the output back into crystallographic data and checks
what it supports. Its ``config`` (grid or hkl box, normalisation, data resolution,
cell, pad_multiple) is stored in the model file, so inference prepares data
exactly as training did, and :func:`make_task` restores the task from it.
"""

from __future__ import annotations

from libtbx.utils import Sorry

from ml_phasing.tasks.base import Task
from ml_phasing.tasks.extension import ExtendResolution
from ml_phasing.tasks.maps import IntensityToDensity, MapTask, PattersonToDensity

TASK_CLASSES = {cls.name: cls for cls in (PattersonToDensity, IntensityToDensity, ExtendResolution)}
TASKS = tuple(TASK_CLASSES)


def task_class(name: str):
    if name not in TASK_CLASSES:
        raise Sorry(f"Unknown task {name!r}; choose one of {', '.join(TASKS)}.")
    return TASK_CLASSES[name]


def make_task(name: str, config: dict) -> Task:
    return task_class(name)(config)


__all__ = [
    "TASKS",
    "Task",
    "MapTask",
    "PattersonToDensity",
    "IntensityToDensity",
    "ExtendResolution",
    "task_class",
    "make_task",
]
