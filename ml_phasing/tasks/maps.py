"""Map in, map out: Patterson -> density (Pan et al.) and |F|^2 grid -> voxel atoms (Scripps)."""

from __future__ import annotations

import numpy as np
import torch
from libtbx.utils import Sorry

from ml_phasing.tasks.base import Task, scale_max_abs


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


class MapTask(Task):
    """Map in, map out (Patterson -> density; |F|^2 grid -> voxel atoms)."""

    input_field = target_field = None
    periodic = True
    default_architecture = "unet3d"
    unet3d_padding = "zeros"
    out_activation = "none"

    @classmethod
    def dataset_fields(cls, tokens: bool = False) -> tuple:
        return (cls.input_field, cls.target_field)

    def training_simulation(self):
        """The simulate configuration (``SimulationConfig``) the training data were made with,
        read from the model's ``dataset_parameters``; None where the model file has none."""
        text = self.config.get("dataset_parameters")
        if not isinstance(text, str):
            return None
        from libtbx import phil

        from ml_phasing.examples.simulation import SimulationConfig
        from ml_phasing.phil.simulate import phil_str

        master = phil.parse(phil_str, process_includes=True)
        return SimulationConfig.from_params(master.fetch(sources=[phil.parse(text)]).extract())

    def example(self, item: dict, meta: dict) -> dict:
        x = scale_max_abs(np.asarray(item[self.input_field], np.float32))
        y = scale_max_abs(np.asarray(item[self.target_field], np.float32))
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
        y = self.apply(model, batch["x"])
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


def impose_amplitudes(estimate: torch.Tensor, patterson: torch.Tensor) -> torch.Tensor:
    """The density with the estimate's phases and the observed amplitudes, scaled to [-1, 1].

    The amplitudes come from the network's own input: the Patterson is the Fourier transform
    of |F|^2, so |F| = sqrt(FT(Patterson)) on the same grid (up to a scale, which the final
    scaling removes). Training and inference therefore impose exactly what the input holds,
    noise included. Shapes (batch, 1, nx, ny, nz)."""
    dims = (2, 3, 4)
    amplitudes = torch.sqrt(torch.clamp(torch.fft.rfftn(patterson.float(), dim=dims).real, min=0.0))
    f = torch.fft.rfftn(estimate.float(), dim=dims)
    f = amplitudes * f / (f.abs() + 1e-12)
    out = torch.fft.irfftn(f, s=estimate.shape[2:], dim=dims)
    return out / out.flatten(1).abs().max(1).values.clamp(min=1e-12).view(-1, 1, 1, 1, 1)


class PattersonToDensity(MapTask):
    """Patterson map (scaled to [-1, 1]) in, electron density (scaled to [-1, 1]) out (Pan et al.).

    With recycling (``config["recycling_passes"]`` > 1, as PhAI and RecCrysFormer do) the
    network sees the Patterson and a current density estimate (zero on the first pass); each
    pass's output, with the observed amplitudes imposed (:func:`impose_amplitudes`), is the
    next pass's estimate. Training runs 1 to that many passes at random, with gradients
    through the last one only; inference and validation run all of them.

    At inference the user's amplitudes are cut to the model's resolution, expanded to P1
    and turned into a Patterson on the model's grid spacing exactly as the training data
    were (:meth:`network_input`); :meth:`predict_maps` runs the network on a stack of such
    grids (padded and cropped as in training)."""

    name = "patterson_to_density"
    input_field, target_field = "patterson", "density"
    fields = ("patterson", "density")
    default_architecture = "patterson_unet"
    unet3d_padding = "circular"
    out_activation = "tanh"

    @property
    def passes(self) -> int:
        return int(self.config.get("recycling_passes", 1))

    def apply_passes(self, model, x: torch.Tensor, passes: int) -> torch.Tensor:
        """The network's output after ``passes`` passes (recycling; gradients through the last)."""
        if self.passes <= 1:
            return self.apply(model, x)
        from ml_phasing.models.blocks import set_recycling_pass

        estimate = torch.zeros_like(x)
        with torch.no_grad():
            for i in range(passes - 1):
                set_recycling_pass(model, i)
                estimate = self.next_estimate(model, x, estimate)
        set_recycling_pass(model, passes - 1)
        return self.apply(model, torch.cat([x, estimate], 1))

    def next_estimate(self, model, x: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
        """One recycling pass: the network's output on (Patterson, estimate), cropped to the
        input's grid, with the observed amplitudes imposed: the next pass's estimate."""
        return impose_amplitudes(self._on_estimate(model, x, estimate), x)

    def _on_estimate(self, model, x: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
        """The network's output on (Patterson, estimate), cropped to the input's grid."""
        y = self.apply(model, torch.cat([x, estimate], 1))
        return y[..., : x.shape[2], : x.shape[3], : x.shape[4]]

    def pass_output(self, model, x: torch.Tensor, estimate: torch.Tensor, index: int) -> torch.Tensor:
        """Recycling pass ``index`` (0-based; passes beyond the trained ones use the last
        pass's batch-norm statistics) on (Patterson, estimate), cropped to the input's grid,
        without gradients: inference's building block when something is done to the
        outputs between passes (rotation averaging, ``density_prediction.run_network``)."""
        from ml_phasing.models.blocks import set_recycling_pass

        set_recycling_pass(model, index)
        with torch.no_grad():
            return self._on_estimate(model, x, estimate)

    def forward(self, model, batch):
        passes = self.passes
        if passes > 1 and model.training:
            passes = int(torch.randint(1, passes + 1, (1,)))
        y = self.apply_passes(model, batch["x"], passes)
        return y[..., : batch["y"].shape[2], : batch["y"].shape[3], : batch["y"].shape[4]]

    @classmethod
    def config_from_dataset(cls, dataset, tokens: bool = False) -> dict:
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

    def supports(self) -> str:
        cfg = self.config
        trained_cell, grid = cfg["unit_cell"], cfg["grid"]
        step = trained_cell[0] / grid[0]
        return (
            f"The model supports orthogonal cells with edges up to {max(trained_cell[:3]):.1f} A "
            f"(trained on {trained_cell[0]:.1f} x {trained_cell[1]:.1f} x {trained_cell[2]:.1f} A, "
            f"grid {step:.2f} A) and data to at least {cfg['map_d_min']:.2f} A."
        )

    def check_supported(self, f_obs) -> tuple:
        """The grid for these data and the model's resolution, or a Sorry that says what the
        model supports."""
        cfg = self.config
        trained_cell = cfg["unit_cell"]
        step = trained_cell[0] / cfg["grid"][0]
        d_model = cfg["map_d_min"]
        cell = f_obs.unit_cell().parameters()
        if any(abs(a - 90.0) > 0.01 for a in cell[3:]):
            raise Sorry(f"The cell {tuple(round(x, 2) for x in cell)} is not orthogonal. {self.supports()}")
        if any(a > t * 1.02 for a, t in zip(cell[:3], trained_cell[:3])):
            raise Sorry(
                f"The cell {tuple(round(x, 2) for x in cell[:3])} is too large for this model. {self.supports()}"
            )
        if f_obs.d_min() > d_model * 1.01:
            raise Sorry(
                f"The data stop at {f_obs.d_min():.2f} A but the model needs {d_model:.2f} A. {self.supports()}"
            )
        n = tuple(int(round(a / step)) for a in cell[:3])
        n = tuple(k + (k % 2) for k in n)  # an even grid, as the simulated maps
        return n, d_model

    def network_input(self, f_obs) -> tuple:
        """(Patterson scaled to [-1, 1] on the model's grid spacing, the data cut to the
        model's resolution, those data expanded to P1) for a user's amplitudes."""
        from cctbx import crystal, maptbx, sgtbx

        from ml_phasing.examples import observables

        n_real, d_model = self.check_supported(f_obs)
        f_cut = f_obs.resolution_filter(d_min=d_model)
        p1 = crystal.symmetry(f_cut.unit_cell(), space_group_info=sgtbx.space_group_info("P1"))
        f_p1 = f_cut.expand_to_p1().customized_copy(crystal_symmetry=p1)
        gridding = maptbx.crystal_gridding(
            unit_cell=f_p1.unit_cell(), space_group_info=f_p1.space_group_info(), pre_determined_n_real=n_real
        )
        patterson = observables.scale_to_unit(observables.patterson_map(f_p1, gridding))[0]
        return patterson, f_cut, f_p1

    def predict_maps(self, model, grids: np.ndarray, device: str = "cpu", passes: int | None = None) -> np.ndarray:
        """The network's output maps for a stack of input grids (n, nx, ny, nz), after
        ``passes`` recycling passes (default: as many as in training)."""
        x = torch.from_numpy(np.ascontiguousarray(grids, dtype=np.float32))[:, None].to(device)
        with torch.no_grad():
            y = self.apply_passes(model, x, passes or self.passes)
        return y[:, 0, : grids.shape[1], : grids.shape[2], : grids.shape[3]].float().cpu().numpy()

    @staticmethod
    def structure_factors(density: np.ndarray, miller_set_p1):
        """The structure factors of a predicted density on the P1 set of the data."""
        from cctbx.array_family import flex

        data = flex.double(np.ascontiguousarray(density))
        data.reshape(flex.grid(density.shape))
        return miller_set_p1.structure_factors_from_map(map=data, use_scale=True, anomalous_flag=False, use_sg=False)


class IntensityToDensity(MapTask):
    """|F|^2 on integer hkl (scaled to max 1) in, Gaussian voxel atoms (scaled to max 1) out (Scripps)."""

    name = "intensity_to_density"
    input_field, target_field = "intensity_grid", "voxel_atoms"
    fields = ("intensity_grid", "voxel_atoms")

    @classmethod
    def config_from_dataset(cls, dataset, tokens: bool = False) -> dict:
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

    # ------------------------------------------------------------------ inference
    def simulation_config(self):
        """The simulate configuration of the training data (``dataset_parameters``), or a Sorry
        when the model file lacks it."""
        sim = self.training_simulation()
        if sim is None or "input_shape" not in self.config or "output_shape" not in self.config:
            raise Sorry(
                "This intensity_to_density model file lacks the layout of its training data "
                "(task_config input_shape, output_shape and dataset_parameters); retrain it with ml_phasing.train."
            )
        return sim

    @property
    def h_max(self) -> int:
        return (int(self.config["input_shape"][0]) - 1) // 2

    def trained_volumes(self, sim) -> tuple | None:
        """(smallest, largest) unit-cell volume of the training structures, or None when the
        recipe does not say (structures read from files)."""
        if sim.source == "peptides":
            return (sim.peptides.cell_edge**3,) * 2
        if sim.source == "random_atoms":
            from ml_phasing.sources.random_atoms import space_group_info

            r = sim.random_atoms
            z = [space_group_info(s).group().order_z() for s in r.space_groups]
            return (r.n_atoms_min * r.volume_per_atom_min * min(z), r.n_atoms_max * r.volume_per_atom_max * max(z))
        return None

    def supports(self, sim=None) -> str:
        sim = sim or self.simulation_config()
        vols = self.trained_volumes(sim)
        cells = (
            f"cells of {vols[0]:.0f} to {vols[1]:.0f} A^3"
            if vols and vols[0] != vols[1]
            else (f"cubic cells of {sim.peptides.cell_edge:.1f} A" if vols else "the cells of its structure files")
        )
        return (
            f"The model was trained on {cells} ({sim.source}), |F|^2 on the hkl cube -{self.h_max}..{self.h_max} "
            f"({sim.form_factor} form factors) and {sim.voxel[0]} voxel grids of {sim.voxel[1]}^3."
        )

    def cube_d_min(self, unit_cell) -> float:
        """The finest d spacing of the model's hkl cube in this cell: the data must reach it."""
        h = self.h_max
        return min(unit_cell.d((i * h, j * h, h)) for i in (-1, 1) for j in (-1, 1))

    def check_supported(self, f_obs) -> tuple:
        """(the cube's finest d in the data's cell, the simulate configuration) for these data,
        or a Sorry that says what the model supports."""
        sim = self.simulation_config()
        frame, n, edge = sim.voxel[0], sim.voxel[1], sim.voxel[4]
        if frame == "cartesian" and edge:  # a cube of fixed edge: the cell must fit
            from ml_phasing.examples.observables import cartesian_box_fits

            cell = f_obs.unit_cell()
            if not cartesian_box_fits(cell, edge):
                raise Sorry(
                    f"The cell {tuple(round(x, 2) for x in cell.parameters())} does not fit in this model's "
                    f"Cartesian cube of edge {edge:.1f} A (cartesian voxels). {self.supports(sim)}"
                )
        if (
            list(self.config["output_shape"]) != [n, n, n]
            or list(self.config["input_shape"]) != [2 * self.h_max + 1] * 3
        ):
            raise Sorry("The model file's grid shapes disagree with its dataset_parameters; retrain it.")
        cell = f_obs.unit_cell()
        vols = self.trained_volumes(sim)
        if vols is not None and not vols[0] / 1.05 <= cell.volume() <= vols[1] * 1.05:
            raise Sorry(
                f"The cell {tuple(round(x, 2) for x in cell.parameters())} ({cell.volume():.0f} A^3) is outside "
                f"what this model was trained on. {self.supports(sim)}"
            )
        d_cube = self.cube_d_min(cell)
        if f_obs.d_min() > d_cube * 1.01:
            raise Sorry(
                f"The data stop at {f_obs.d_min():.2f} A but the model's hkl cube needs {d_cube:.2f} A in this "
                f"cell. {self.supports(sim)}"
            )
        return d_cube, sim

    def network_input(self, f_abs, f000: float) -> np.ndarray:
        """The network's input for amplitudes on the absolute scale of ``f000``: the |F|^2 grid
        of training (:func:`ml_phasing.examples.observables.intensity_grid_from_amplitudes`),
        scaled as :meth:`example` scales it (max 1)."""
        from ml_phasing.examples import observables

        grid = observables.intensity_grid_from_amplitudes(f_abs, self.h_max, f000)
        return scale_max_abs(np.asarray(grid, np.float32))

    def predict_maps(self, model, grids: np.ndarray, device: str = "cpu") -> np.ndarray:
        """The network's voxel maps (n, nx, ny, nz) for a stack of input grids (as :meth:`forward`)."""
        x = torch.from_numpy(np.ascontiguousarray(grids, dtype=np.float32))[:, None].to(device)
        out = self.config["output_shape"]
        with torch.no_grad():
            y = self.apply(model, x)
        return y[:, 0, : out[0], : out[1], : out[2]].float().cpu().numpy()
