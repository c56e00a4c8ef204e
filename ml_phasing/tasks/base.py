"""What every task shares: the dataset fields it reads, padding to the network's multiple,
and the checks that a simulated dataset has what the task needs."""

from __future__ import annotations

import numpy as np
import torch
from libtbx.utils import Sorry
from torch.nn import functional as F

# simulate's output switch (outputs.<name>=True) that writes each dataset field
SIMULATE_OUTPUT = {
    "patterson": "patterson",
    "density": "density",
    "intensity_grid": "intensity_grid",
    "voxel_atoms": "voxel_atoms",
    "reflections/f": "amplitudes",
    "reflections/indices": "amplitudes",
    "reflections/measured": "amplitudes",
    "reflections/d": "amplitudes",
}


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad the last three dimensions at the high end to multiples of ``multiple``."""
    pads = []
    for n in reversed(x.shape[-3:]):
        pads += [0, (-n) % multiple]
    return F.pad(x, pads) if any(pads) else x


def scale_max_abs(m: np.ndarray) -> np.ndarray:
    s = float(np.abs(m).max())
    return m / s if s > 0 else m


class Task:
    """One learning task: what goes in, what comes out and what is scored.

    A task reads ``fields`` of a simulated dataset, turns an example (in training) or a
    user's data (at inference) into tensors, runs a batch through a network (padding the
    grid to the network's ``pad_multiple`` and cropping the output back), computes the
    loss and the validation metrics, turns the output back into crystallographic data and
    says what it supports. Its ``config`` (grid or hkl box, normalisation, resolution,
    cell, pad_multiple) is stored in the model file and restores the task with it.
    """

    name = ""
    fields: tuple = ()
    default_architecture = ""
    periodic = False
    needs_meta = False

    def __init__(self, config: dict):
        self.config = config

    @property
    def pad_multiple(self) -> int:
        return int(self.config.get("pad_multiple", 1))

    # ------------------------------------------------------------------ datasets
    @classmethod
    def dataset_fields(cls, tokens: bool = False) -> tuple:
        return cls.fields

    @classmethod
    def check_dataset(cls, manifest: dict, path: str) -> None:
        """A Sorry naming the simulate outputs the dataset at ``path`` lacks."""
        outputs = manifest.get("outputs", [])
        missing = sorted({SIMULATE_OUTPUT[f] for f in cls.dataset_fields()} - set(outputs))
        if missing:
            raise Sorry(f"task={cls.name} needs simulate outputs {missing}, which {path} lacks (it has {outputs}).")

    @classmethod
    def open_dataset(cls, path: str, tokens: bool = False):
        from ml_phasing.dataset import SimulatedDataset

        return SimulatedDataset(path, fields=list(cls.dataset_fields(tokens)))

    @classmethod
    def config_from_dataset(cls, dataset, tokens: bool = False) -> dict:
        raise NotImplementedError

    @classmethod
    def fine_tuning_config(cls, config: dict, model_config: dict) -> dict:
        """The task config of fine-tuning a model (``model_config``) on a dataset (``config``);
        tasks whose layout the model fixes override it (the extension task keeps its hkl box)."""
        return config

    # ------------------------------------------------------------------ networks
    def apply(self, model, x: torch.Tensor) -> torch.Tensor:
        """The network on a batch, padded to its multiple (output not yet cropped)."""
        multiple = self.pad_multiple
        return model(pad_to_multiple(x, multiple) if multiple > 1 else x)

    def shape_key(self, meta, dataset, index) -> tuple:
        return ()
