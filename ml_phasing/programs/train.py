"""ml_phasing.train: train the seed papers' networks on ml_phasing.simulate datasets."""

from __future__ import annotations

import os

from libtbx.program_template import ProgramTemplate
from libtbx.utils import Sorry

from ml_phasing.phil.train import phil_str
from ml_phasing.program_support import ResultsMixin, LogFile, log_header, progress, resolve_device
from ml_phasing.citations import scope as citation_scope
from ml_phasing.version import __version__


class Program(ResultsMixin, ProgramTemplate):
    program_name = "ml_phasing.train"
    version = __version__
    citations = citation_scope("scripps2021", "pan2023", "khaibrakhmanov2025")
    known_article_ids = ["cctbx"]
    description = """
Train a network on a dataset made by ml_phasing.simulate, on CPU or GPU.

Tasks: patterson_to_density (Pan et al.: Patterson map -> density; default
network patterson_unet), intensity_to_density (Scripps: |F|^2 grid -> voxel
atoms; unet3d or mlp) and extend_resolution (Khaibrakhmanov: amplitudes to
d_min_low -> amplitudes to d_min_high; fft_unet, unet3d or xrd_transformer).
Losses: MSE, MSE + w(1 - CC), masked MSE on unmeasured reflections, optionally
invariant to the hand and the origin. Validation every epoch with the evaluate
metrics (map CC, origin/hand-aligned CC and phase error, or R on predicted
reflections), written to history.csv and history.png.

A checkpoint (model, optimiser, scheduler, scaler, RNG states) is written
atomically after every epoch; resume=True continues a killed run and, on CPU,
ends with the same weights as an uninterrupted run. The result is one model
file (output.directory/model.pt) that carries the architecture, the task and
its data layout, the training parameters, package versions and the final
validation metrics, and loads with torch.load(weights_only=True).

Several GPUs or nodes: launch with torchrun (DistributedDataParallel), e.g.
  torchrun --nproc_per_node=4 -m ml_phasing.command_line.train recipe.eff

Examples:

  ml_phasing.train train.data.train=diala output.directory=diala_model epochs=20
  ml_phasing.train task=patterson_to_density train.data.train=diala \\
      loss.invariance=hand schedule.kind=exponential batch_size=32
  ml_phasing.train task=extend_resolution train.data.train=random_set \\
      model.architecture=fft_unet epochs=5
  ml_phasing.train train.data.train=diala output.directory=diala_model resume=True
  ml_phasing.train train.data.train=real_set init_model=diala_model/model.pt \\
      freeze=encoder optimizer.learning_rate=1e-4 output.directory=finetuned
"""
    datatypes = ["phil"]
    master_phil_str = phil_str

    def validate(self):
        t = self.params.train
        if t.data.train is None and t.data.simulate is None:
            raise Sorry(
                "train.data.train (a dataset directory from ml_phasing.simulate) or train.data.simulate "
                "(a simulate recipe, for examples made on the fly) is required."
            )
        if t.data.train is not None and t.data.simulate is not None:
            raise Sorry("Give train.data.train or train.data.simulate, not both.")
        for path in (t.data.train, t.data.validation, t.init_model, t.data.simulate):
            if path is not None and not os.path.exists(path):
                raise Sorry(f"Not found: {path}")
        from ml_phasing.tasks import task_class

        if t.data.train is not None:
            from ml_phasing.dataset import read_manifest

            task_class(t.task).check_dataset(read_manifest(t.data.train), t.data.train)
        self.device = resolve_device(self.params.device)
        from ml_phasing.training import CHECKPOINT

        for name in (self.params.output.model_file, CHECKPOINT):
            path = os.path.join(self.params.output.directory, name)
            if os.path.exists(path) and not (self.params.output.overwrite or t.resume):
                raise Sorry(
                    f"{path} exists (an earlier run); add resume=True to continue it, --overwrite to "
                    "replace it, or choose output.directory."
                )

    def run(self):
        import torch

        os.makedirs(self.params.output.directory, exist_ok=True)
        main = int(os.environ.get("RANK", "0")) == 0
        log = (
            LogFile(
                self, os.path.join(self.params.output.directory, "train.log"), append=bool(self.params.train.resume)
            )
            if main
            else None
        )
        try:
            if self.params.train.threads:
                torch.set_num_threads(self.params.train.threads)
            log_header(self, self.params.random_seed, self.device)
            print(f"torch threads: {torch.get_num_threads()}", file=self.logger)
            from ml_phasing.training import Trainer

            phil = self.get_program_phil_str(diff=True)
            trainer = Trainer(self.params, self.device, self.logger, training_phil=phil)
            trainer.log(
                f"task {self.params.train.task}, model {trainer.arch} ({trainer.n_parameters()} parameters) "
                f"{trainer.kwargs}"
            )
            trainer.log(
                f"{len(trainer.train_data)} training and {len(trainer.val_data)} validation examples; "
                f"world size {trainer.dist.world}"
            )
            bases = [trainer.train_base] + ([trainer.val_base] if trainer.val_base is not trainer.train_base else [])
            for base in bases:
                warning = base.completeness_warning()
                if warning:
                    trainer.log(warning)

            def bar(total, desc):
                return progress(total=total, desc=desc, unit="ex") if trainer.dist.is_main else None

            path = trainer.run(bar)
            kept_epoch = trainer.kept()[2]
            how = "last epoch" if trainer.t.keep == "last" else "lowest validation loss"
            trainer.log(f"Model file: {path} (epoch {kept_epoch}, {how})")
            self.result = {
                "model_file": os.path.abspath(path),
                "best_epoch": kept_epoch,
                "history": trainer.history,
                "architecture": trainer.arch,
                "n_parameters": trainer.n_parameters(),
                "device": self.device,
                "world_size": trainer.dist.world,
            }
        finally:
            if log is not None:
                log.close(self)
