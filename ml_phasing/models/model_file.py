"""Model files: one file that carries everything inference needs, loadable without pickled code.

The file is a ``torch.save`` of a dict holding only tensors, strings, numbers,
booleans, lists, dicts and None, so ``torch.load(weights_only=True)`` reads it:
no code from the file is ever run. Keys:

format_version, kind ("ml_phasing.model"), task, task_config (grid or hkl box,
resolution, normalisation, ...), architecture, model_kwargs, state_dict,
training_phil, versions, metrics (final validation), dataset (manifest summary).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from libtbx.utils import Sorry

from ml_phasing.io.atomic_io import torch_save

FORMAT_VERSION = 1
KIND = "ml_phasing.model"
SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

# The one registry of shipped models, for every program: name -> (file in models/data, task).
SHIPPED = {
    "dialanine_10A": ("patterson_dialanine_10A.pt", "patterson_to_density"),
    "dipeptide_12A": ("patterson_dipeptide_12A.pt", "patterson_to_density"),
    "extend_1.2_to_1.0A": ("extend_1.2_to_1.0A.pt", "extend_resolution"),
    "extend_1.5_to_0.8A": ("extend_1.5_to_0.8A.pt", "extend_resolution"),
    # Scripps, Cumby and Seth (2021), small random P1 cells (docs/models.md): reproductions of
    # their setting, run by patterson_to_density with composition= (no better than zero phases)
    "scripps_mlp": ("intensity_scripps_mlp.pt", "intensity_to_density"),
    "scripps_unet": ("intensity_scripps_unet.pt", "intensity_to_density"),
    "scripps_mlp_xray_cartesian": ("intensity_scripps_mlp_xray_cartesian.pt", "intensity_to_density"),
    "scripps_unet_xray_cartesian": ("intensity_scripps_unet_xray_cartesian.pt", "intensity_to_density"),
}


# Charge-flipping cycles after each shipped Patterson model when the user sets none
# (refinement.cycles=Auto), the better choice of benchmarks/patterson_to_density.py
# --cycles 0,20 --rotations 24 (30 held-out examples per set, docs/models.md): after the
# dialanine model 20 cycles raised the median phase error (real fragments 16.3 -> 25.1 deg
# with the default inference of 2026-11-25), after the dipeptide model they lowered it
# (version 2: 60.8 -> 47.4 deg; version 3: 47.2 -> 38.8 deg).
SHIPPED_REFINEMENT_CYCLES = {"patterson_dialanine_10A.pt": 0, "patterson_dipeptide_12A.pt": 20}
# and after any other model
DEFAULT_REFINEMENT_CYCLES = 20

# Recycling passes at inference for the shipped Patterson models with recycling: dialanine
# was trained with 3 and runs 8 (the median phase error by pass, rotations averaged after
# every pass, on 30 examples of a tuning set, seed 2000001, not the benchmark's; scratch runs
# recorded in docs/models.md); dipeptide version 2 was trained with 3 and ran 6 by the same
# measure, and version 3 was fine-tuned with those 6. Any other model runs as many passes
# as it was trained with.
SHIPPED_INFERENCE_PASSES = {"patterson_dialanine_10A.pt": 8, "patterson_dipeptide_12A.pt": 6}
# Whether the rotations are averaged after every pass (else at the end) by default, from the
# same benchmark: after every pass for dialanine (real fragments 16.3 against 16.6 deg), at
# the end for dipeptide (version 2, the default pipeline, with 20 charge-flipping cycles: 47.4
# against 50.5 deg; the network alone 60.8 against 60.9; version 3 keeps the choice). Any
# other model: after every pass.
SHIPPED_EVERY_PASS = {"patterson_dialanine_10A.pt": True, "patterson_dipeptide_12A.pt": False}


def shipped(filename: str) -> str:
    """Path of a model file shipped inside the package (ml_phasing/models/data/)."""
    return os.path.join(SHIPPED_DIR, filename)


def shipped_models(task: str | None = None) -> dict:
    """Shipped models (name -> path), all of them or those of one task."""
    return {name: shipped(f) for name, (f, t) in SHIPPED.items() if task is None or t == task}


def default_model(task: str, d_min_data: float | None = None, d_min_target: float | None = None) -> str:
    """The shipped model a program uses when model= is not given. Patterson to density: the
    dialanine 10 A model. Extension: 1.2 -> 1.0 A when the data reach 1.2 A and no finer
    target is asked for, otherwise 1.5 -> 0.8 A."""
    if task == "extend_resolution":
        coarse_data = d_min_data is not None and d_min_data > 1.2 * 1.02
        fine_target = d_min_target is not None and d_min_target < 1.0 - 1e-6
        return shipped_models()["extend_1.5_to_0.8A" if coarse_data or fine_target else "extend_1.2_to_1.0A"]
    return shipped_models()["dialanine_10A"]


def resolve(name_or_path: str | None, task: str, **hints) -> str:
    """A model file path from model=: None (the task's default for the data, see
    :func:`default_model`), a shipped model's name (of any task, so that loading it names
    the wrong task), or a path."""
    if name_or_path is None:
        return default_model(task, **hints)
    return shipped_models().get(name_or_path, name_or_path)


@dataclass
class ModelConfig:
    """How to rebuild the network, and the task's layout of the data."""

    task: str
    architecture: str
    model_kwargs: dict
    task_config: dict


@dataclass
class ModelBundle:
    """A loaded model file: the network (in eval mode), its config, its Task (restored from
    the file) and its provenance (versions, training PHIL, metrics, dataset, compute)."""

    network: torch.nn.Module
    config: ModelConfig
    task: object
    provenance: dict = field(default_factory=dict)
    path: str = ""

    @property
    def info(self) -> dict:
        """Everything in the file but the weights, plus its path (for logs and JSON)."""
        return {
            "task": self.config.task,
            "task_config": self.config.task_config,
            "architecture": self.config.architecture,
            "model_kwargs": self.config.model_kwargs,
            **self.provenance,
            "path": self.path,
        }

    @property
    def metrics(self) -> dict:
        return self.provenance.get("metrics") or {}

    def check_supported(self, f_obs, **kwargs):
        """The task's check that it serves these data (a Sorry saying what it supports)."""
        return self.task.check_supported(f_obs, **kwargs)

    def fom_calibration(self) -> dict | None:
        return fom_calibration(self.info)


def save_model(
    path: str,
    model,
    architecture: str,
    model_kwargs: dict,
    task_config: dict,
    training_phil: str = "",
    metrics: dict | None = None,
    extra: dict | None = None,
) -> None:
    from ml_phasing.program_support import package_versions

    state = {k: v.detach().cpu().clone() for k, v in _unwrap(model).state_dict().items()}
    blob = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "task": task_config["task"],
        "task_config": task_config,
        "architecture": architecture,
        "model_kwargs": _plain(model_kwargs),
        "state_dict": state,
        "training_phil": training_phil,
        "versions": package_versions(),
        "metrics": _plain(metrics or {}),
        **_plain(extra or {}),
    }
    torch_save(blob, path)


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def _plain(obj):
    """Keep only what weights_only loading accepts (tuples become lists)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None or isinstance(obj, torch.Tensor):
        return obj
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def read_model_file(path: str) -> dict:
    """The raw dict of a model file, with clear errors for missing or damaged files."""
    if not os.path.isfile(path):
        raise Sorry(f"Model file not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for damaged files
        raise Sorry(
            f"Cannot read model file {path} (truncated, corrupt or not an ml_phasing model): "
            f"{str(e).splitlines()[0][:200]}"
        ) from None
    if not isinstance(blob, dict) or blob.get("kind") != KIND:
        raise Sorry(f"{path} is not an ml_phasing model file.")
    if blob.get("format_version", 0) > FORMAT_VERSION:
        raise Sorry(f"{path} was written by a newer ml_phasing (format {blob['format_version']}); upgrade.")
    return blob


def load_bundle(path: str, task: str | None = None, device: str = "cpu") -> ModelBundle:
    """Rebuild the network and the Task of a model file."""
    from ml_phasing.models import ARCHITECTURES
    from ml_phasing.tasks import make_task

    blob = read_model_file(path)
    if task is not None and blob["task"] != task:
        raise Sorry(f"{path} is a model for the task {blob['task']!r}, not {task!r}.")
    arch = blob["architecture"]
    if arch not in ARCHITECTURES:
        raise Sorry(f"{path} uses an unknown architecture {arch!r}.")
    try:
        model = ARCHITECTURES[arch](**blob["model_kwargs"])
        model.load_state_dict(blob["state_dict"], strict=True)
    except (TypeError, RuntimeError) as e:
        raise Sorry(
            f"{path} does not match the {arch} network of this ml_phasing version: {str(e).splitlines()[0][:200]}"
        ) from None
    model.to(device).eval()
    config = ModelConfig(blob["task"], arch, blob["model_kwargs"], blob["task_config"])
    skip = ("state_dict", "task", "task_config", "architecture", "model_kwargs")
    provenance = {k: v for k, v in blob.items() if k not in skip}
    return ModelBundle(model, config, make_task(blob["task"], blob["task_config"]), provenance, os.path.abspath(path))


def shipped_file(info: dict) -> str | None:
    """The file name (in models/data) of a shipped model, from a model's info; None for any
    other model."""
    path = info.get("path", "")
    return os.path.basename(path) if os.path.dirname(path) == os.path.abspath(SHIPPED_DIR) else None


def refinement_cycles(info: dict) -> int:
    """Charge-flipping cycles after a model's prediction by default (SHIPPED_REFINEMENT_CYCLES
    for a shipped model, else DEFAULT_REFINEMENT_CYCLES)."""
    return SHIPPED_REFINEMENT_CYCLES.get(shipped_file(info), DEFAULT_REFINEMENT_CYCLES)


def inference_passes(info: dict) -> int | None:
    """Recycling passes at inference for a shipped model (SHIPPED_INFERENCE_PASSES); None for
    any other model (which then runs as many as in training)."""
    return SHIPPED_INFERENCE_PASSES.get(shipped_file(info))


def rotations_every_pass(info: dict) -> bool:
    """Whether a model's rotations are averaged after every recycling pass by default
    (SHIPPED_EVERY_PASS for a shipped model, True for any other)."""
    return SHIPPED_EVERY_PASS.get(shipped_file(info), True)


def fom_calibration(info: dict) -> dict | None:
    """Per-shell FOM calibration tables ({'network': ..., 'refined': ...}) of a shipped model
    (models/data/fom_calibration.json, written by benchmarks/calibrate_fom.py); None for any
    other model file."""
    import json

    name = shipped_file(info)
    table_file = os.path.join(SHIPPED_DIR, "fom_calibration.json")
    if name is None or not os.path.isfile(table_file):
        return None
    with open(table_file) as f:
        return json.load(f).get(name)
