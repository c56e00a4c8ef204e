"""The training loop: a task's examples, the model, optimiser and schedule, validation.

Reproducibility: the order of examples in epoch e depends only on (random_seed, e);
checkpoints (:mod:`ml_phasing.training.checkpoints`) hold every state a resumed run
needs. Several processes train with DDP (:mod:`ml_phasing.training.distributed`).
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
import torch
from libtbx.utils import Sorry

from ml_phasing import tasks
from ml_phasing.models import model_file
from ml_phasing.models import ARCHITECTURES, pad_multiple
from ml_phasing.training.checkpoints import checkpoint_path, load_checkpoint, save_checkpoint, set_determinism
from ml_phasing.training.distributed import batches_for_epoch, init_distributed
from ml_phasing.training.history import write_history

COMPUTE_ZERO = {"cpu_hours": 0.0, "wall_hours": 0.0, "gpu_hours": 0.0, "examples_seen": 0}
# the validation stream of an on-the-fly run: random_seed + this (the benchmarks' held-out sets use 1_000_003)
VALIDATION_SEED_OFFSET = 7_000_001
# the stream that re-estimates per-pass batch-norm statistics (PassBatchNorm3d)
NORM_CALIBRATION_SEED_OFFSET = 9_000_001


class TaskDataset(torch.utils.data.Dataset):
    """A simulated dataset seen through a task (normalised tensors per example)."""

    def __init__(self, base, task, indices):
        self.base = base
        self.task = task
        self.indices = list(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        j = self.indices[i]
        item = self.base[j]
        meta = item.pop("_meta", None)  # examples made on the fly carry their own
        if self.task.needs_meta and meta is None:
            meta = self.base.meta(j)
        out = self.task.example(item, meta)
        out["index"] = j
        return out


def model_kwargs(params, task_name: str, task_config: dict) -> tuple[str, dict]:
    """Architecture name and constructor arguments from the PHIL model scope."""
    m = params.train.model
    task = tasks.task_class(task_name)  # its default architecture and output layer
    arch = task.default_architecture if m.architecture == "auto" else m.architecture
    cin, cout = task_config["in_channels"], task_config["out_channels"]
    map_task = task_name != "extend_resolution"
    if arch == "patterson_unet":
        if task_name != "patterson_to_density":
            raise Sorry("patterson_unet is for task=patterson_to_density.")
        s = m.patterson_unet
        kw = dict(
            in_channels=cin,
            out_channels=cout,
            stem_channels=s.stem_channels,
            channels=s.channels,
            n_blocks=s.n_blocks,
            kernel_size=s.kernel_size,
            decoder_kernel_size=s.decoder_kernel_size,
            se_reduction=s.se_reduction,
            norm=_none(s.norm),
            out_activation=_none(s.out_activation),
        )
    elif arch == "unet3d":
        s = m.unet3d
        padding = s.padding_mode if s.padding_mode != "auto" else task.unet3d_padding
        act = _none(s.out_activation)
        if act == "auto":
            act = task.out_activation
        kw = dict(
            in_channels=cin,
            out_channels=cout,
            depth=s.depth,
            base_channels=s.base_channels,
            norm=_none(s.norm),
            padding_mode=padding,
            out_activation=act,
            out_shape=task_config.get("output_shape") if task_name == "intensity_to_density" else None,
        )
    elif arch == "fft_unet":
        s = m.fft_unet
        kw = dict(
            in_channels=cin,
            out_channels=cout,
            depth=s.depth,
            base_channels=s.base_channels,
            fft_layers=s.fft_layers,
            norm=_none(s.norm),
            out_activation="softplus" if not map_task else "none",
        )
    elif arch == "mlp":
        if task_name == "extend_resolution":
            raise Sorry("mlp is for the map tasks; use fft_unet, unet3d or xrd_transformer.")
        s = m.mlp
        in_shape = [cin] + list(task_config.get("input_shape") or task_config["grid"])
        out_shape = [cout] + list(task_config.get("output_shape") or task_config["grid"])
        kw = dict(in_shape=in_shape, out_shape=out_shape, hidden=list(s.hidden), dropout=s.dropout)
    else:
        if task_name != "extend_resolution":
            raise Sorry("xrd_transformer is for task=extend_resolution.")
        s = m.xrd_transformer
        kw = dict(
            dim=s.dim,
            depth=s.depth,
            heads=s.heads,
            mlp_ratio=s.mlp_ratio,
            dropout=s.dropout,
            max_index=task_config["max_index"],
        )
    return arch, kw


def fine_tuning_config(task_cls, config: dict, model_config: dict) -> dict:
    """The task config of a run fine-tuning a model (``model_config``) on a dataset (``config``):
    the task's own rules (the extension task keeps the model's hkl box), and the space groups the
    model serves are those of the model and of the new data together (the network has no
    space-group input; the list only says which data it has been trained on). A model that
    recorded none served every space group, and so does the fine-tuned one."""
    config = task_cls.fine_tuning_config(config, model_config)
    if "space_group_numbers" in config:
        seen = model_config.get("space_group_numbers")
        config = dict(config)
        config["space_group_numbers"] = (
            sorted({int(x) for x in seen} | set(config["space_group_numbers"])) if seen else []
        )
    return config


def _none(choice):
    """PHIL turns the choice 'none' into None; the networks spell it 'none'."""
    return "none" if choice is None else choice


def build_scheduler(params, optimizer, steps_per_epoch: int):
    s = params.train.schedule
    if s.kind == "exponential":

        def factor(epoch):
            if epoch < s.stage_epochs:
                return s.gamma**epoch
            return s.gamma**s.stage_epochs * s.gamma_late ** (epoch - s.stage_epochs)

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), "epoch"
    if s.kind == "one_cycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=params.train.optimizer.learning_rate,
            total_steps=max(1, steps_per_epoch * params.train.epochs),
        ), "step"
    if s.kind == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=s.factor, patience=s.patience), "plateau"
    return None, None


class Trainer:
    def __init__(self, params, device: str, logger, training_phil: str = ""):
        self.params = params
        self.t = params.train
        self.device = device
        self.logger = logger
        self.training_phil = training_phil
        self.dist = init_distributed(device)
        if self.dist.world > 1 and device.startswith("cuda"):
            self.device = device = f"cuda:{self.dist.local_rank}"
            torch.cuda.set_device(self.dist.local_rank)
        self.directory = params.output.directory
        self.seed = params.random_seed
        set_determinism(self.seed)

        # Data and task
        init_blob = model_file.read_model_file(self.t.init_model) if self.t.init_model else None
        arch_hint = init_blob["architecture"] if init_blob else self.t.model.architecture
        tokens = self.t.task == "extend_resolution" and arch_hint == "xrd_transformer"
        task_cls = tasks.task_class(self.t.task)
        if self.t.data.simulate:
            from ml_phasing.dataset import GeneratedDataset

            fields = task_cls.dataset_fields(tokens)
            self.train_base = GeneratedDataset(self.t.data.simulate, self.t.data.examples_per_epoch, fields, self.seed)
        else:
            self.train_base = task_cls.open_dataset(self.t.data.train, tokens)
        config = task_cls.config_from_dataset(self.train_base, tokens=tokens)
        if self.t.recycling_passes > 1:
            if self.t.task != "patterson_to_density":
                raise Sorry("recycling_passes > 1 is for task=patterson_to_density.")
            config["recycling_passes"] = self.t.recycling_passes
            config["in_channels"] = 2  # the Patterson and the current density estimate
        if init_blob is not None:
            if init_blob["task"] != self.t.task:
                raise Sorry(f"{self.t.init_model} is a model for {init_blob['task']}, not {self.t.task}.")
            self.arch, self.kwargs = init_blob["architecture"], dict(init_blob["model_kwargs"])
            if "in_channels" in self.kwargs:  # e.g. a model without recycling fine-tuned with it
                self.kwargs["in_channels"] = config["in_channels"]
            config = fine_tuning_config(task_cls, config, init_blob["task_config"])
            for key in ("grid", "hkl_box_min", "hkl_box_max", "input_shape", "output_shape"):
                if key in init_blob["task_config"] and key in config and init_blob["task_config"][key] != config[key]:
                    raise Sorry(
                        f"The dataset's {key} {config[key]} differs from the model's "
                        f"{init_blob['task_config'][key]}; fine-tuning needs the same layout."
                    )
        else:
            self.arch, self.kwargs = model_kwargs(params, self.t.task, config)
        passes = config.get("recycling_passes", 1)
        if passes > 1 and self.arch == "patterson_unet" and self.kwargs.get("norm") == "batch":
            self.kwargs["norm_passes"] = passes  # statistics per pass (PassBatchNorm3d)
        config["pad_multiple"] = pad_multiple(self.arch, self.kwargs)
        self.task_config = config
        self.task = tasks.make_task(self.t.task, config)
        if init_blob is not None:
            self._lay_out(self.train_base)
        n = len(self.train_base)
        if self.t.data.validation:
            self.val_base = task_cls.open_dataset(self.t.data.validation, tokens)
            if init_blob is not None:
                self._lay_out(self.val_base)
            train_idx, val_idx = list(range(n)), list(range(len(self.val_base)))
        elif self.t.data.simulate:
            from ml_phasing.dataset import GeneratedDataset

            # a held-out stream of the same recipe: another seed, made once and kept
            self.val_base = GeneratedDataset(
                self.t.data.simulate,
                self.t.data.validation_examples,
                task_cls.dataset_fields(tokens),
                self.seed + VALIDATION_SEED_OFFSET,
                materialise=True,
            )
            train_idx, val_idx = list(range(n)), list(range(len(self.val_base)))
        else:
            n_val = max(1, int(round(n * self.t.data.validation_fraction))) if self.t.data.validation_fraction else 0
            if n - n_val < 1:
                raise Sorry(f"The dataset has {n} examples: too few to hold out a validation set.")
            self.val_base = self.train_base
            train_idx, val_idx = list(range(n - n_val)), list(range(n - n_val, n))
        self.calibration = self._calibration_set(task_cls, tokens, train_idx)
        self._calibration_inputs = None  # its input batches, collated once
        self.train_data = TaskDataset(self.train_base, self.task, train_idx)
        self.val_data = TaskDataset(self.val_base, self.task, val_idx)
        self.train_keys = [self.task.shape_key(self.train_base.meta(j), self.train_base, j) for j in train_idx]
        self.val_keys = [self.task.shape_key(self.val_base.meta(j), self.val_base, j) for j in val_idx]

        # Model
        try:
            self.model = ARCHITECTURES[self.arch](**self.kwargs)
        except (TypeError, ValueError) as e:
            raise Sorry(f"Cannot build {self.arch} with {self.kwargs}: {e}") from None
        if init_blob is not None:
            load_widened(self.model, init_blob["state_dict"])
        if self.t.freeze:
            names = [name for name, _ in self.model.named_parameters()]
            for prefix in self.t.freeze:
                hits = [nm for nm in names if nm.startswith(prefix)]
                if not hits:
                    raise Sorry(
                        f"freeze={prefix}: no parameter starts with it; names start with "
                        f"{sorted({nm.split('.')[0] for nm in names})}."
                    )
            for name, p in self.model.named_parameters():
                if any(name.startswith(prefix) for prefix in self.t.freeze):
                    p.requires_grad_(False)
        self.model.to(self.device)
        if str(self.device).startswith("cuda"):
            torch.backends.cudnn.benchmark = True  # one grid shape: cuDNN picks its fastest kernels once
        self.net = self.model
        if self.dist.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.dist.local_rank] if self.device.startswith("cuda") else None
            )
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        o = self.t.optimizer
        opt_cls = torch.optim.AdamW if o.kind == "adamw" else torch.optim.Adam
        self.optimizer = opt_cls(trainable, lr=o.learning_rate, weight_decay=o.weight_decay)
        steps = math.ceil(
            len(
                batches_for_epoch(
                    self.train_keys, self.t.batch_size, self.seed, 0, True, self.dist.rank, self.dist.world
                )
            )
            / self.t.accumulate
        )
        self.scheduler, self.schedule_unit = build_scheduler(params, self.optimizer, steps)
        self.amp = bool(self.t.mixed_precision and self.device.startswith("cuda"))
        self.scaler = torch.amp.GradScaler("cuda") if self.amp else None
        self.history = []
        # compute spent on this model, continued from the model it was fine-tuned from
        self.compute = dict(COMPUTE_ZERO, **((init_blob or {}).get("compute") or {}))
        if init_blob is not None:
            self.compute["fine_tuned_from"] = os.path.abspath(self.t.init_model)
        self.start_epoch = 0
        self.best = {"val_loss": math.inf, "epoch": -1, "state_dict": None, "metrics": {}}
        self.step = 0

    # ------------------------------------------------------------------ helpers
    def _lay_out(self, dataset):
        """Fine-tuning: a dataset of dense hkl boxes laid out over the model's box (a Sorry where
        its reflections do not fit), so that every example lies where the model reads it."""
        if getattr(dataset, "dense_amplitudes", False) and "hkl_box_min" in self.task_config:
            dataset.lay_out_in_hkl_box(self.task_config["hkl_box_min"], self.task_config["hkl_box_max"], "the model's")

    def _calibration_set(self, task_cls, tokens, train_idx):
        """Examples that re-estimate per-pass batch-norm statistics (None where unused); collated
        into input batches on the device the first time :meth:`calibrate_norms` needs them."""
        n = self.t.data.norm_calibration_examples
        if not n or self.kwargs.get("norm_passes", 1) <= 1:
            return None
        if self.t.data.simulate:
            from ml_phasing.dataset import GeneratedDataset

            base = GeneratedDataset(
                self.t.data.simulate,
                n,
                task_cls.dataset_fields(tokens),
                self.seed + NORM_CALIBRATION_SEED_OFFSET,
                materialise=True,
            )
            return TaskDataset(base, self.task, range(n))
        return TaskDataset(self.train_base, self.task, train_idx[:n])

    def calibrate_norms(self):
        """Re-estimate the per-pass batch-norm statistics on the calibration set."""
        if self.calibration is None:
            return
        if self._calibration_inputs is None:
            n = len(self.calibration)
            self._calibration_inputs = [
                self._to_device(self.task.collate([self.calibration[i] for i in range(s, min(s + 64, n))]))["x"]
                for s in range(0, n, 64)
            ]
        calibrate_pass_statistics(self.model, self.task, self._calibration_inputs)

    def n_parameters(self):
        return sum(p.numel() for p in self.model.parameters())

    def _loader(self, data, keys, epoch, shuffle):
        batches = batches_for_epoch(
            keys,
            self.t.batch_size,
            self.seed,
            epoch,
            shuffle,
            self.dist.rank if shuffle else 0,
            self.dist.world if shuffle else 1,
        )
        return torch.utils.data.DataLoader(
            data,
            batch_sampler=batches,
            collate_fn=self.task.collate,
            num_workers=self.t.data.num_workers,
            persistent_workers=False,
        ), len(batches)

    def _to_device(self, batch):
        return {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_path(self):
        return checkpoint_path(self.directory)

    def save_checkpoint(self, epoch: int, complete: bool = True):
        save_checkpoint(self, epoch, complete)

    def load_checkpoint(self):
        return load_checkpoint(self)

    # ------------------------------------------------------------------ loops
    def train_epoch(self, epoch, deadline, bar=None):
        self.net.train()
        if hasattr(self.train_base, "offset"):  # on the fly: fresh examples every epoch
            self.train_base.offset = epoch * len(self.train_base)
        loader, n_batches = self._loader(self.train_data, self.train_keys, epoch, shuffle=True)
        total, count = 0.0, 0
        self.optimizer.zero_grad(set_to_none=True)
        stopped = False
        for i, batch in enumerate(loader):
            batch = self._to_device(batch)
            with torch.autocast("cuda", enabled=self.amp):
                pred = self.task.forward(self.net, batch)
                loss = self.task.loss(pred.float(), batch, self.t.loss)
            if not torch.isfinite(loss):
                raise Sorry(
                    f"The loss became non-finite ({loss.item()}) at epoch {epoch + 1}, step {self.step + 1}. "
                    "Lower optimizer.learning_rate or enable clip_grad_norm."
                )
            scaled = loss / self.t.accumulate
            if self.scaler is not None:
                self.scaler.scale(scaled).backward()
            else:
                scaled.backward()
            if (i + 1) % self.t.accumulate == 0 or i + 1 == n_batches:
                if self.scaler is not None:
                    self.scaler.unscale_(self.optimizer)
                if self.t.clip_grad_norm:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.t.clip_grad_norm)
                if self.scaler is not None:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                if self.schedule_unit == "step":
                    self.scheduler.step()
            total += float(loss.detach()) * len(batch["index"])
            count += len(batch["index"])
            if bar is not None:
                bar.update(len(batch["index"]))
            if deadline is not None and time.time() > deadline:
                stopped = True
                break
        if self.dist.world > 1:
            import torch.distributed as dist

            t = torch.tensor([total, count], dtype=torch.float64, device=self.device)
            dist.all_reduce(t)
            total, count = float(t[0]), float(t[1])
        return total / max(count, 1), stopped, int(count)

    @torch.no_grad()
    def validate(self):
        self.calibrate_norms()
        self.net.eval()
        loader, _ = self._loader(self.val_data, self.val_keys, 0, shuffle=False)
        total, count, rows = 0.0, 0, []
        for batch in loader:
            batch = self._to_device(batch)
            pred = self.task.forward(self.model, batch)
            loss = self.task.loss(pred.float(), batch, self.t.loss)
            total += float(loss) * len(batch["index"])
            count += len(batch["index"])
            metas = [self.val_base.meta(int(j)) for j in batch["index"]]
            rows += self.task.metrics(pred.float(), batch, metas)
        summary = {"val_loss": total / max(count, 1)}
        for key in rows[0] if rows else {}:
            vals = [r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])]
            if vals and key == "inverted_hand":
                summary["fraction_inverted_hand"] = float(np.mean(vals))
            elif vals:
                summary[f"median_{key}"] = float(np.median(vals))
        return summary

    def run(self, bar_factory=None):
        t = self.t
        start = time.time()
        deadline = start + 60.0 * t.max_time if t.max_time else None
        if t.resume:
            last = self.load_checkpoint()
            self.log(f"Resumed from {self.checkpoint_path()} after epoch {last + 1}")
        stale = 0
        clock = (cpu_seconds(), time.time())
        for epoch in range(self.start_epoch, t.epochs):
            t0 = time.time()
            bar = (
                bar_factory(len(self.train_data) // self.dist.world, f"epoch {epoch + 1}/{t.epochs}")
                if bar_factory
                else None
            )
            train_loss, stopped, seen = self.train_epoch(epoch, deadline, bar)
            if bar is not None:
                bar.close()
            train_seconds = time.time() - t0
            val = self.validate() if len(self.val_data) else {"val_loss": train_loss}
            if self.schedule_unit == "epoch":
                self.scheduler.step()
            elif self.schedule_unit == "plateau":
                self.scheduler.step(val["val_loss"])
            clock = self._add_compute(clock, seen)
            row = {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                **val,
                "learning_rate": self.optimizer.param_groups[0]["lr"],
                "train_seconds": round(train_seconds, 3),
                "examples_seen": seen,
                "examples_per_second": round(seen / train_seconds, 2) if train_seconds > 0 else None,
                # the model's whole compute so far (earlier pieces and the model it was tuned from)
                "cpu_hours_total": round(self.compute["cpu_hours"], 4),
                "gpu_hours_total": round(self.compute["gpu_hours"], 4),
                "examples_total": self.compute["examples_seen"],
            }
            self.history.append(row)
            self.log("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
            if val["val_loss"] < self.best["val_loss"]:
                self.best = {
                    "val_loss": val["val_loss"],
                    "epoch": epoch + 1,
                    "state_dict": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
                    "metrics": row,
                }
                stale = 0
            else:
                stale += 1
            self.save_checkpoint(epoch, complete=not stopped)
            self.write_history()
            if stopped:
                self.log(f"Stopped: max_time={t.max_time} min reached during epoch {epoch + 1}.")
                break
            if t.early_stopping_patience and stale >= t.early_stopping_patience:
                self.log(f"Early stopping: no improvement in validation loss for {stale} epochs.")
                break
        return self.finish()

    def kept(self) -> tuple:
        """(state dict, metrics row, epoch) that the model file keeps (``train.keep``): the epoch
        with the lowest validation loss, or the last epoch run."""
        if self.t.keep == "last" and self.history:
            row = self.history[-1]
            return self.model.state_dict(), row, row["epoch"]
        return self.best["state_dict"] or self.model.state_dict(), self.best["metrics"], self.best["epoch"]

    def finish(self):
        path = os.path.join(self.directory, self.params.output.model_file)
        if self.dist.is_main:
            state, metrics, epoch = self.kept()
            model = ARCHITECTURES[self.arch](**self.kwargs)
            model.load_state_dict(state)
            model_file.save_model(
                path,
                model,
                self.arch,
                self.kwargs,
                self.task_config,
                self.training_phil,
                metrics=metrics,
                extra={
                    "compute": self.compute,
                    "n_parameters": self.n_parameters(),
                    "best_epoch": epoch,
                    "kept": self.t.keep,
                    "epochs_run": len(self.history),
                },
            )
        if self.dist.world > 1:
            import torch.distributed as dist

            dist.barrier()
        return path

    def _add_compute(self, clock, examples: int):
        """Add the CPU time (this process and its finished workers; times the number of processes
        under DDP), the wall time, the GPU time (wall time times the number of GPUs, where the
        device is one) and the examples seen (all processes: ``train_epoch`` sums them) since
        ``clock``; returns the new clock."""
        cpu, wall = cpu_seconds(), time.time()
        self.compute["cpu_hours"] += (cpu - clock[0]) * self.dist.world / 3600.0
        self.compute["wall_hours"] += (wall - clock[1]) / 3600.0
        if str(self.device).startswith("cuda"):
            self.compute["gpu_hours"] += (wall - clock[1]) * self.dist.world / 3600.0
        self.compute["examples_seen"] += int(examples)
        return cpu, wall

    def write_history(self):
        if self.dist.is_main:
            write_history(self.directory, self.history)

    def log(self, text):
        if self.dist.is_main:
            print(text, file=self.logger)


def cpu_seconds() -> float:
    """CPU seconds of this process (all threads) and of its children that have ended (DataLoader
    workers end with each epoch)."""
    import resource

    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


@torch.no_grad()
def calibrate_pass_statistics(model, task, inputs) -> None:
    """Set every pass's batch-norm statistics (PassBatchNorm3d) to their exact averages over
    ``inputs`` (network input batches), pass by pass: pass i's statistics come from the
    estimates that passes 0..i-1, already calibrated, make in evaluation mode, as inference
    runs them. Leaves the model in evaluation mode."""
    from ml_phasing.models.blocks import PassBatchNorm3d, set_recycling_pass

    norms = [m for m in model.modules() if isinstance(m, PassBatchNorm3d)]
    estimates = [torch.zeros_like(x) for x in inputs]
    for p in range(task.passes):
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.pass_running_mean[p].zero_()
            m.pass_running_var[p].zero_()
        # cumulative average: batch b enters with weight 1/(b+1)
        model.train()
        set_recycling_pass(model, p)
        for b, (x, estimate) in enumerate(zip(inputs, estimates)):
            for m in norms:
                m.momentum = 1.0 / (b + 1)
            task.apply(model, torch.cat([x, estimate], 1))
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()
        if p + 1 < task.passes:  # the next pass's estimates, as inference makes them
            estimates = [task.next_estimate(model, x, e) for x, e in zip(inputs, estimates)]


def load_widened(model, state: dict) -> None:
    """Load ``state`` into ``model``; a weight with fewer input channels than the model's (a model
    trained without recycling, fine-tuned with it) fills the first ones and leaves the new
    channels at zero, so the widened network starts as the old one. Per-pass batch-norm
    statistics for another number of passes are left to :class:`PassBatchNorm3d`."""
    own = model.state_dict()
    widened = {}
    for key, value in state.items():
        target = own.get(key)
        if key.endswith(("pass_running_mean", "pass_running_var")):
            widened[key] = value
            continue
        if target is not None and value.dim() >= 2 and target.dim() == value.dim() and target.shape != value.shape:
            same_but_inputs = target.shape[0] == value.shape[0] and target.shape[2:] == value.shape[2:]
            if not same_but_inputs or target.shape[1] < value.shape[1]:
                raise Sorry(f"init_model's {key} {tuple(value.shape)} does not fit {tuple(target.shape)}.")
            grown = torch.zeros_like(target)
            grown[:, : value.shape[1]] = value
            value = grown
        widened[key] = value
    model.load_state_dict(widened)
