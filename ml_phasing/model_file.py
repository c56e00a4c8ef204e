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

import torch
from libtbx.utils import Sorry

from ml_phasing.atomic_io import torch_save

FORMAT_VERSION = 1
KIND = "ml_phasing.model"
SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "data")


def shipped(filename: str) -> str:
    """Path of a model file shipped inside the package (ml_phasing/models/data/)."""
    return os.path.join(SHIPPED_DIR, filename)


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


def load_model(path: str, task: str | None = None, device: str = "cpu"):
    """Rebuild the network of a model file; returns (model in eval mode, info dict)."""
    from ml_phasing.models import ARCHITECTURES

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
    info = {k: v for k, v in blob.items() if k != "state_dict"}
    info["path"] = os.path.abspath(path)
    return model, info


def fom_calibration(info: dict) -> dict | None:
    """Per-shell FOM calibration tables ({'network': ..., 'refined': ...}) of a shipped model
    (models/data/fom_calibration.json, written by benchmarks/calibrate_fom.py); None for any
    other model file."""
    import json

    path = info.get("path", "")
    if os.path.dirname(path) != os.path.abspath(SHIPPED_DIR):
        return None
    table_file = os.path.join(SHIPPED_DIR, "fom_calibration.json")
    if not os.path.isfile(table_file):
        return None
    with open(table_file) as f:
        return json.load(f).get(os.path.basename(path))
