"""Training, split by concern: the loop (:mod:`.loop`), checkpoints and RNG state
(:mod:`.checkpoints`), several processes (:mod:`.distributed`) and the learning curve
(:mod:`.history`)."""

from ml_phasing.training.checkpoints import CHECKPOINT
from ml_phasing.training.distributed import batches_for_epoch
from ml_phasing.training.history import HISTORY
from ml_phasing.training.loop import TaskDataset, Trainer

__all__ = ["CHECKPOINT", "HISTORY", "TaskDataset", "Trainer", "batches_for_epoch"]
