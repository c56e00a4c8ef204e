"""What goes in, what comes out and what is scored, for each learning task.

A task turns examples of a simulated dataset into tensors (with the
normalisation it declares), runs a model on a batch, computes the loss and the
validation metrics. Its ``config`` (grid or hkl box, normalisation, data
resolution and cell) is stored in the model file, so inference prepares data
exactly as training did.
"""

from __future__ import annotations

import numpy as np
import torch
from libtbx.utils import Sorry
from torch.nn import functional as F

from ml_phasing.hkl_box import CHANNELS

TASKS = ("patterson_to_density", "intensity_to_density", "extend_resolution")


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad the last three dimensions at the high end to multiples of ``multiple``."""
    pads = []
    for n in reversed(x.shape[-3:]):
        pads += [0, (-n) % multiple]
    return F.pad(x, pads) if any(pads) else x


def _scale_max_abs(m: np.ndarray) -> np.ndarray:
    s = float(np.abs(m).max())
    return m / s if s > 0 else m


def pearson_per_example(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson CC over all but the batch dimension."""
    a = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-12)


def invert_map(x: torch.Tensor) -> torch.Tensor:
    """rho(-x) on a periodic grid (index i -> -i mod n) for (batch, c, nx, ny, nz)."""
    return torch.roll(torch.flip(x, dims=(2, 3, 4)), shifts=(1, 1, 1), dims=(2, 3, 4))


def best_translation(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Roll each target by the grid translation that best overlaps the prediction (no gradient)."""
    with torch.no_grad():
        fp = torch.fft.rfftn(pred.float(), dim=(2, 3, 4))
        ft = torch.fft.rfftn(target.float(), dim=(2, 3, 4))
        xc = torch.fft.irfftn(fp * torch.conj(ft), s=pred.shape[2:], dim=(2, 3, 4)).sum(1)
        flat = xc.flatten(1).argmax(1)
    out = []
    n = pred.shape[2:]
    for b in range(pred.shape[0]):
        k = np.unravel_index(int(flat[b]), n)
        out.append(torch.roll(target[b], shifts=tuple(int(i) for i in k), dims=(1, 2, 3)))
    return torch.stack(out)


class MapTask:
    """Map in, map out (Patterson -> density; |F|^2 grid -> voxel atoms)."""

    input_field = target_field = None
    periodic = True
    needs_meta = False

    def __init__(self, config: dict):
        self.config = config

    @classmethod
    def from_dataset(cls, dataset) -> dict:
        raise NotImplementedError

    def example(self, item: dict, meta: dict) -> dict:
        x = _scale_max_abs(np.asarray(item[self.input_field], np.float32))
        y = _scale_max_abs(np.asarray(item[self.target_field], np.float32))
        return {"x": torch.from_numpy(x)[None], "y": torch.from_numpy(y)[None]}

    def shape_key(self, meta: dict, dataset, index) -> tuple:
        return tuple(meta.get("map_grid") or ())

    def collate(self, items: list) -> dict:
        shapes = {tuple(it["x"].shape) for it in items}
        if len(shapes) > 1:
            raise RuntimeError(f"batch mixes grid shapes {shapes}")
        return {
            "x": torch.stack([it["x"] for it in items]),
            "y": torch.stack([it["y"] for it in items]),
            "index": torch.tensor([it["index"] for it in items]),
        }

    def forward(self, model, batch):
        x = batch["x"]
        multiple = self.config.get("pad_multiple", 1)
        y = model(_pad_to_multiple(x, multiple) if multiple > 1 else x)
        if y.shape[2:] != batch["y"].shape[2:]:
            y = y[..., : batch["y"].shape[2], : batch["y"].shape[3], : batch["y"].shape[4]]
        return y

    def loss(self, pred, batch, loss_params):
        target = batch["y"]
        candidates = [target]
        if loss_params.invariance in ("hand", "origin_and_hand"):
            candidates.append(invert_map(target))
        if loss_params.invariance == "origin_and_hand":
            candidates = [best_translation(pred, t) for t in candidates]
        losses = []
        for t in candidates:
            mse = ((pred - t) ** 2).flatten(1).mean(1)
            if loss_params.kind in ("mse_cc", "auto"):
                mse = mse + loss_params.cc_weight * (1 - pearson_per_example(pred, t))
            losses.append(mse)
        return torch.stack(losses).min(0).values.mean()

    def metrics(self, pred, batch, metas) -> list:
        from cctbx import sgtbx

        from ml_phasing.metrics import compare_maps

        out = []
        p = pred.detach().float().cpu().numpy()[:, 0]
        t = batch["y"].cpu().numpy()[:, 0]
        for b, meta in enumerate(metas):
            sgi = (
                sgtbx.space_group_info(group=sgtbx.space_group(meta["hall_symbol"]))
                if self.periodic and self.target_field == "density"
                else sgtbx.space_group_info("P1")
            )
            r = compare_maps(t[b], p[b], sgi, meta["unit_cell"] if self.target_field == "density" else None)
            row = {
                "map_cc": r["map_cc"],
                "map_cc_aligned": r["map_cc_aligned"],
                "inverted_hand": float(r["inverted_hand"]),
            }
            if "phases" in r:
                # a flat prediction has no phases: it counts as random phases (90 degrees), so a
                # validation pass goes on and its mean says how bad the epoch was
                overall = r["phases"]["overall"]
                row["phase_error"] = _or_random(overall["mean_phase_error"])
                row["f_weighted_phase_error"] = _or_random(overall["f_weighted_phase_error"])
            out.append(row)
        return out


def _or_random(phase_error):
    return 90.0 if phase_error is None else phase_error


class PattersonToDensity(MapTask):
    """Patterson map (scaled to [-1, 1]) in, electron density (scaled to [-1, 1]) out (Pan et al.)."""

    name = "patterson_to_density"
    input_field, target_field = "patterson", "density"
    fields = ("patterson", "density")

    @classmethod
    def from_dataset(cls, dataset) -> dict:
        meta = dataset.meta(0)
        params = dataset.manifest["parameters"]
        return {
            "task": cls.name,
            "normalisation": "max_abs",
            "map_d_min": meta["map_d_min"],
            "grid": meta["map_grid"],
            "unit_cell": meta["unit_cell"],
            "source": meta["source"],
            "dataset_parameters": params,
            "in_channels": 1,
            "out_channels": 1,
        }


class IntensityToDensity(MapTask):
    """|F|^2 on integer hkl (scaled to max 1) in, Gaussian voxel atoms (scaled to max 1) out (Scripps)."""

    name = "intensity_to_density"
    input_field, target_field = "intensity_grid", "voxel_atoms"
    fields = ("intensity_grid", "voxel_atoms")

    @classmethod
    def from_dataset(cls, dataset) -> dict:
        item = dataset[0]
        return {
            "task": cls.name,
            "normalisation": "max_abs",
            "input_shape": list(item["intensity_grid"].shape),
            "output_shape": list(item["voxel_atoms"].shape),
            "dataset_parameters": dataset.manifest["parameters"],
            "in_channels": 1,
            "out_channels": 1,
        }

    def shape_key(self, meta, dataset, index):
        return ()


class ExtendResolution:
    """Amplitudes to d_min_low in, amplitudes to d_min_high out (Khaibrakhmanov).

    Dense models see a box of hkl with channels |F_measured|/s, 1/d^2, measured
    and not-measured masks (s = the largest measured amplitude of the example,
    as in the thesis); tokens models see each reflection. The loss and the R
    factor cover only reflections that were not measured and are not absent;
    measured amplitudes pass through unchanged.
    """

    name = "extend_resolution"
    fields = None
    periodic = False

    def __init__(self, config: dict):
        self.config = config
        self.tokens = config.get("representation") == "tokens"
        self.needs_meta = self.tokens

    @classmethod
    def from_dataset(cls, dataset, tokens: bool = False) -> dict:
        lo, hi = dataset.hkl_box
        meta = dataset.meta(0)
        numbers = sorted({int(dataset.meta(i)["space_group_number"]) for i in range(len(dataset))})
        return {
            "task": cls.name,
            "space_group_numbers": numbers,
            "normalisation": "max_measured",
            "representation": "tokens" if tokens else "dense",
            "hkl_box_min": [int(x) for x in lo],
            "hkl_box_max": [int(x) for x in hi],
            "d_min_low": meta["d_min_low"],
            "d_min_high": meta["d_min_high"],
            "dataset_parameters": dataset.manifest["parameters"],
            "in_channels": 4,
            "out_channels": 1,
            "max_index": int(max(np.abs(lo).max(), np.abs(hi).max())),
        }

    def shape_key(self, meta, dataset, index):
        return ()

    def example(self, item: dict, meta: dict) -> dict:
        if self.tokens:
            f = item["reflections/f"].astype(np.float32)
            measured = item["reflections/measured"].astype(bool)
            scale = float(f[measured].max()) if measured.any() else 1.0
            return {
                "indices": torch.from_numpy(item["reflections/indices"].astype(np.int64)),
                "values": torch.from_numpy(np.where(measured, f, 0) / scale),
                "measured": torch.from_numpy(measured),
                "inv_d_sq": torch.from_numpy((1.0 / item["reflections/d"].astype(np.float32) ** 2)),
                "target": torch.from_numpy(f / scale),
                "scale": scale,
                "cell": meta["unit_cell"],
            }
        box = item["hkl_box"]
        fm = box[CHANNELS.index("f_measured")]
        scale = float(fm.max()) or 1.0
        x = np.stack(
            [
                fm / scale,
                box[CHANNELS.index("inv_d_sq")],
                box[CHANNELS.index("mask_measured")],
                box[CHANNELS.index("mask_unmeasured")],
            ]
        ).astype(np.float32)
        return {"x": torch.from_numpy(x), "y": torch.from_numpy(box[CHANNELS.index("f")][None] / scale), "scale": scale}

    def collate(self, items):
        index = torch.tensor([it["index"] for it in items])
        if not self.tokens:
            return {
                "x": torch.stack([it["x"] for it in items]),
                "y": torch.stack([it["y"] for it in items]),
                "scale": torch.tensor([it["scale"] for it in items]),
                "index": index,
            }
        n = max(len(it["values"]) for it in items)
        b = len(items)
        out = {
            "indices": torch.zeros(b, n, 3, dtype=torch.long),
            "values": torch.zeros(b, n),
            "measured": torch.zeros(b, n, dtype=torch.bool),
            "inv_d_sq": torch.zeros(b, n),
            "target": torch.zeros(b, n),
            "padding": torch.ones(b, n, dtype=torch.bool),
            "cell": torch.tensor([it["cell"] for it in items], dtype=torch.float32),
            "scale": torch.tensor([it["scale"] for it in items]),
            "index": index,
        }
        for i, it in enumerate(items):
            k = len(it["values"])
            for key in ("indices", "values", "measured", "inv_d_sq", "target"):
                out[key][i, :k] = it[key]
            out["padding"][i, :k] = False
        return out

    def forward(self, model, batch):
        if self.tokens:
            pred = model(
                batch["indices"], batch["values"], batch["measured"], batch["inv_d_sq"], batch["cell"], batch["padding"]
            )
            return torch.where(batch["measured"], batch["values"], pred)
        x = batch["x"]
        multiple = self.config.get("pad_multiple", 1)
        y = model(_pad_to_multiple(x, multiple) if multiple > 1 else x)
        y = y[..., : x.shape[2], : x.shape[3], : x.shape[4]]
        measured = x[:, 2:3] > 0.5
        return torch.where(measured, x[:, 0:1], y)

    def _predicted_mask(self, batch):
        if self.tokens:
            return ~batch["measured"] & ~batch["padding"]
        return batch["x"][:, 3:4] > 0.5

    def loss(self, pred, batch, loss_params):
        target = batch["target"] if self.tokens else batch["y"]
        mask = self._predicted_mask(batch).to(pred.dtype)
        return (((pred - target) ** 2) * mask).sum() / mask.sum().clamp(min=1)

    def metrics(self, pred, batch, metas):
        target = (batch["target"] if self.tokens else batch["y"]).detach().cpu().double()
        mask = self._predicted_mask(batch).cpu()
        p = pred.detach().cpu().double()
        out = []
        for b in range(p.shape[0]):
            m = mask[b]
            t = target[b][m]
            r = float((p[b][m] - t).abs().sum() / t.sum()) if t.sum() > 0 else float("nan")
            out.append({"r_factor": r})
        return out


def make_task(name: str, config: dict):
    return task_class(name)(config)


def task_class(name: str):
    if name not in TASKS:
        raise Sorry(f"Unknown task {name!r}; choose one of {', '.join(TASKS)}.")
    return {
        "patterson_to_density": PattersonToDensity,
        "intensity_to_density": IntensityToDensity,
        "extend_resolution": ExtendResolution,
    }[name]
