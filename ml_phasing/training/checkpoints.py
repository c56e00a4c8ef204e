"""Checkpoints: the model, optimiser, scheduler, scaler and every RNG state after each
epoch, as plain tensors and values (``torch.load(weights_only=True)`` reads them), so on
CPU a resumed run ends with the same weights as an uninterrupted one."""

from __future__ import annotations

import os
import random

import numpy as np
import torch
from libtbx.utils import Sorry

from ml_phasing.io.atomic_io import torch_save

CHECKPOINT = "checkpoint.pt"


def set_determinism(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every RNG state as tensors and plain values (so checkpoints load with weights_only)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))


def save_checkpoint(trainer, epoch: int, complete: bool = True) -> None:
    """Everything a resumed run needs after ``epoch`` (rank 0 only)."""
    if not trainer.dist.is_main:
        return
    state = {
        "epoch": epoch,
        "complete": complete,
        "step": trainer.step,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
        "scaler": trainer.scaler.state_dict() if trainer.scaler is not None else None,
        "rng": rng_state(),
        "history": trainer.history,
        "best": trainer.best,
        "architecture": trainer.arch,
        "model_kwargs": trainer.kwargs,
        "task_config": trainer.task_config,
        "training_phil": trainer.training_phil,
        "compute": trainer.compute,
    }
    torch_save(state, checkpoint_path(trainer.directory))


def checkpoint_path(directory: str) -> str:
    return os.path.join(directory, CHECKPOINT)


def load_checkpoint(trainer) -> int:
    """Restore a trainer from its directory's checkpoint; returns the last epoch saved."""
    path = checkpoint_path(trainer.directory)
    if not os.path.exists(path):
        raise Sorry(f"resume=True but there is no checkpoint {path}.")
    try:
        # on the CPU: RNG states must be CPU tensors; load_state_dict moves weights to the device
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise Sorry(f"Cannot read checkpoint {path}: {str(e).splitlines()[0][:200]}") from None

    def same(kwargs):  # norm_passes may be new: a checkpoint without it loads (PassBatchNorm3d)
        return {k: v for k, v in kwargs.items() if k != "norm_passes"}

    if state["architecture"] != trainer.arch or same(state["model_kwargs"]) != same(trainer.kwargs):
        raise Sorry(
            f"{path} was made with another model ({state['architecture']} {state['model_kwargs']}); "
            "use the same parameters to resume, or another output.directory."
        )
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    if trainer.scheduler is not None and state["scheduler"] is not None:
        trainer.scheduler.load_state_dict(state["scheduler"])
    if trainer.scaler is not None and state["scaler"] is not None:
        trainer.scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    trainer.history = state["history"]
    trainer.best = state["best"]
    trainer.step = state["step"]
    trainer.compute = state.get("compute", trainer.compute)
    trainer.start_epoch = state["epoch"] + 1 if state["complete"] else state["epoch"]
    return state["epoch"]
