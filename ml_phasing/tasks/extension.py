"""Amplitudes to d_min_low in, amplitudes to d_min_high out (Khaibrakhmanov)."""

from __future__ import annotations

import numpy as np
import torch
from libtbx.utils import Sorry

from ml_phasing.examples.hkl_box import CHANNELS, dense_amplitudes, outside_box
from ml_phasing.tasks.base import Task

REFLECTION_FIELDS = ("reflections/indices", "reflections/f", "reflections/measured", "reflections/d")


def space_group_symbols(numbers) -> str:
    """Space groups by symbol, as crystallographers name them (P 1 21/c 1, not 14)."""
    from cctbx import sgtbx

    return ", ".join(str(sgtbx.space_group_info(int(n))) for n in numbers)


class ExtendResolution(Task):
    """Amplitudes to d_min_low in, amplitudes to d_min_high out.

    Dense models see a box of hkl with channels |F_measured|/s, 1/d^2, measured
    and not-measured masks (s = the largest measured amplitude of the example,
    as in the thesis); tokens models see each reflection. The loss and the R
    factor cover only reflections that were not measured and are not absent;
    measured amplitudes pass through unchanged.
    """

    name = "extend_resolution"
    fields = REFLECTION_FIELDS
    default_architecture = "fft_unet"
    unet3d_padding = "zeros"
    out_activation = "softplus"

    def __init__(self, config: dict):
        super().__init__(config)
        self.tokens = config.get("representation") == "tokens"
        self.needs_meta = self.tokens

    @classmethod
    def open_dataset(cls, path: str, tokens: bool = False):
        from ml_phasing.dataset import SimulatedDataset

        return SimulatedDataset(path, fields=list(REFLECTION_FIELDS), dense_amplitudes=not tokens)

    @classmethod
    def config_from_dataset(cls, dataset, tokens: bool = False) -> dict:
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

    @classmethod
    def fine_tuning_config(cls, config: dict, model_config: dict) -> dict:
        """The task config of fine-tuning a model (``model_config``) on a dataset (``config``, from
        :meth:`config_from_dataset`). The model's hkl box and largest index are kept: a dataset
        whose reflections fit inside the box is laid out in it (the trainer calls the dataset's
        ``lay_out_in_hkl_box``), as the smaller cells of the model's own training set were; one
        whose reflections do not fit is refused (a dense model sees nothing outside its box)."""
        if "hkl_box_min" not in model_config:
            return config
        lo, hi = model_config["hkl_box_min"], model_config["hkl_box_max"]
        why = outside_box(config["hkl_box_min"], config["hkl_box_max"], lo, hi)
        if why:
            raise Sorry(
                f"The dataset's reflections span hkl {config['hkl_box_min']}..{config['hkl_box_max']}, outside "
                f"the model's box {lo}..{hi} ({why}). Fine-tuning keeps the model's box: use structures "
                f"whose reflections to {config['d_min_high']} A fit inside it."
            )
        return {
            **config,
            "hkl_box_min": list(lo),
            "hkl_box_max": list(hi),
            "max_index": model_config.get("max_index", config["max_index"]),
        }

    # ------------------------------------------------------------------ examples and batches
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

    @staticmethod
    def token_args(batch) -> tuple:
        """The transformer's arguments from a token batch, in its signature's order."""
        return batch["indices"], batch["values"], batch["measured"], batch["inv_d_sq"], batch["cell"], batch["padding"]

    def forward(self, model, batch):
        if self.tokens:
            pred = model(*self.token_args(batch))
            return torch.where(batch["measured"], batch["values"], pred)
        x = batch["x"]
        y = self.apply(model, x)[..., : x.shape[2], : x.shape[3], : x.shape[4]]
        measured = x[:, 2:3] > 0.5
        return torch.where(measured, x[:, 0:1], y)

    def predicted_mask(self, batch):
        """The reflections the model predicts (neither measured nor absent, nor padding)."""
        if self.tokens:
            return ~batch["measured"] & ~batch["padding"]
        return batch["x"][:, 3:4] > 0.5

    def loss(self, pred, batch, loss_params):
        target = batch["target"] if self.tokens else batch["y"]
        mask = self.predicted_mask(batch).to(pred.dtype)
        return (((pred - target) ** 2) * mask).sum() / mask.sum().clamp(min=1)

    def metrics(self, pred, batch, metas):
        target = (batch["target"] if self.tokens else batch["y"]).detach().cpu().double()
        mask = self.predicted_mask(batch).cpu()
        p = pred.detach().cpu().double()
        out = []
        for b in range(p.shape[0]):
            m = mask[b]
            t = target[b][m]
            r = float((p[b][m] - t).abs().sum() / t.sum()) if t.sum() > 0 else float("nan")
            out.append({"r_factor": r})
        return out

    # ------------------------------------------------------------------ a user's data
    def supports(self) -> str:
        cfg = self.config
        numbers = cfg.get("space_group_numbers")
        return (
            f"The model extends data measured to {cfg['d_min_low']:.2f} A to {cfg['d_min_high']:.2f} A"
            + (f" in space groups {space_group_symbols(numbers)}" if numbers else "")
            + "."
        )

    def check_supported(self, f_obs, d_min_target: float | None = None) -> float:
        """The target resolution for these data, or a Sorry that says what the model supports."""
        cfg = self.config
        low, high = cfg["d_min_low"], cfg["d_min_high"]
        target = d_min_target or high
        if target < high - 1e-6:
            raise Sorry(f"d_min_target={target:.2f} A is finer than the model was trained for. {self.supports()}")
        if f_obs.d_min() <= target * (1 + 1e-3):
            raise Sorry(
                f"The data already reach {f_obs.d_min():.2f} A, as far as the target {target:.2f} A: "
                f"there is nothing to predict. {self.supports()}"
            )
        if f_obs.d_min() > low * 1.02:
            raise Sorry(
                f"The data stop at {f_obs.d_min():.2f} A; the model needs them to {low:.2f} A. {self.supports()}"
            )
        numbers = cfg.get("space_group_numbers")
        if numbers and f_obs.space_group_info().type().number() not in numbers:
            raise Sorry(f"The model has not seen space group {f_obs.space_group_info()}. {self.supports()}")
        return target

    def inputs(self, f_obs, d_min_target: float | None = None) -> tuple:
        """(target resolution, the complete miller set to it, the measured amplitudes the network
        sees: cut to the model's d_min_low, as in training) for a user's data."""
        from cctbx import miller

        target = self.check_supported(f_obs, d_min_target)
        complete = miller.build_set(f_obs.crystal_symmetry(), anomalous_flag=False, d_min=target)
        return target, complete, f_obs.resolution_filter(d_min=self.config["d_min_low"])

    def build_batch(self, complete, target: float, f_input, max_index=None, device: str = "cpu") -> tuple:
        """(batch, example, Miller indices of ``complete``) laid out exactly as in training: the
        dense hkl box or the reflection tokens, from the measured amplitudes ``f_input``."""
        from ml_phasing.examples import observables

        pairs = complete.match_indices(f_input).pairs()
        measured = np.zeros(complete.size(), bool)
        values = np.zeros(complete.size())
        measured[pairs.column(0).as_numpy_array()] = True
        values[pairs.column(0).as_numpy_array()] = f_input.data().select(pairs.column(1)).as_numpy_array()
        indices = observables.indices_as_numpy(complete.indices())
        d = complete.d_spacings().data().as_numpy_array().astype(np.float32)
        if self.tokens:
            if max_index is not None and np.abs(indices).max() > max_index:
                raise Sorry(
                    f"Miller indices up to {np.abs(indices).max()} exceed the model's {max_index}; "
                    "the cell is too large for this model."
                )
            item = {
                "reflections/f": values.astype(np.float32),
                "reflections/measured": measured,
                "reflections/indices": indices,
                "reflections/d": d,
            }
            example = self.example(item, {"unit_cell": list(complete.unit_cell().parameters())})
        else:
            lo, hi = np.array(self.config["hkl_box_min"]), np.array(self.config["hkl_box_max"])
            if np.any(indices.min(0) < lo) or np.any(indices.max(0) > hi):
                raise Sorry(
                    f"The reflections span hkl {indices.min(0).tolist()}..{indices.max(0).tolist()}, outside the "
                    f"model's box {lo.tolist()}..{hi.tolist()}: the cell is too large for this model."
                )
            refl = {
                "indices": indices,
                "f": values.astype(np.float32),
                "measured": measured,
                "d": d,
                "e": np.zeros(complete.size(), np.float32),
                "absent_indices": observables.absent_indices(complete.crystal_symmetry(), target),
            }
            example = self.example(dense_amplitudes(refl, lo, hi), None)
        example["index"] = 0
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.collate([example]).items()}
        return batch, example, indices

    def predict_amplitudes(
        self, model, complete, target: float, f_input, max_index=None, device: str = "cpu"
    ) -> np.ndarray:
        """Predicted |F| for every reflection of ``complete`` (the miller set to the ``target``
        resolution) from the measured amplitudes ``f_input`` (to the model's d_min_low)."""
        batch, example, indices = self.build_batch(complete, target, f_input, max_index, device)
        with torch.no_grad():
            return self.amplitudes_from_output(self.forward(model, batch), example, indices)

    def amplitudes_from_output(self, output, example: dict, indices) -> np.ndarray:
        """|F| per reflection (in the order of ``indices``) from the network's output for one
        example (the box read at each hkl, or the tokens), on the data's scale."""
        pred = output[0].detach().cpu().numpy()
        if not self.tokens:
            rel = indices - np.array(self.config["hkl_box_min"])
            pred = pred[0][rel[:, 0], rel[:, 1], rel[:, 2]]
        return pred * example["scale"]
