"""PHIL parameters of ml_phasing.train."""

phil_str = """
include scope ml_phasing.phil.common.phil_scope
train {
  threads = None
    .type = int(value_min=1)
    .help = "torch CPU threads (default: torch's own choice, every core). 1 where other \
             jobs share the cores: several threads on a busy machine train many times slower."
  recycling_passes = 1
    .type = int(value_min=1, value_max=6)
    .help = "Patterson to density with recycling (PhAI, RecCrysFormer) when above 1: the \
             network also sees its previous output with the observed amplitudes imposed \
             (zero on the first pass); training runs 1 to this many passes at random with \
             gradients through the last, inference runs all of them. A model trained \
             without recycling can be fine-tuned with it (the new input starts at zero)."
  task = *patterson_to_density intensity_to_density extend_resolution
    .type = choice
    .help = "What to learn: Patterson -> density (Pan et al.), |F|^2 grid -> voxel atoms \\
             (Scripps), or low -> high resolution amplitudes (Khaibrakhmanov)."
  data {
    train = None
      .type = path
      .help = "Training dataset directory from ml_phasing.simulate."
    validation = None
      .type = path
      .help = "Validation dataset directory (default: the last validation_fraction of train)."
    validation_fraction = 0.05
      .type = float(value_min=0, value_max=0.9)
      .help = "Share of the training set held out when no validation set is given."
    num_workers = 0
      .type = int(value_min=0)
      .help = "DataLoader worker processes reading the shards (or making the examples on the fly)."
    simulate = None
      .type = path
      .help = "A simulate recipe (.eff, e.g. phil/dialanine_10A_v2_simulate.eff) to make fresh \
               examples on the fly instead of reading a dataset: example i of the stream is \
               seeded from (random_seed, i), every epoch sees examples_per_epoch new ones, and \
               the validation set is made from the same recipe with random_seed + 7000001 \
               (unless validation= is given). Map tasks with source=peptides, and the \
               intensity_to_density task from any source (one hkl cube and voxel grid)."
    examples_per_epoch = 10000
      .type = int(value_min=1)
      .help = "With simulate=: fresh examples per epoch."
    validation_examples = 500
      .type = int(value_min=1)
      .help = "With simulate= and no validation=: held-out examples made from the recipe."
    norm_calibration_examples = 512
      .type = int(value_min=0)
      .help = "Recycling models with batch normalisation keep statistics per pass. Before each \
               validation and in the model file they are re-estimated on this many training \
               examples (fresh ones from random_seed + 9000001 with simulate=), pass by pass as \
               inference runs: no moving-average lag. 0: keep the moving averages."
  }
  model {
    include scope ml_phasing.phil.model.phil_scope
  }
  loss {
    kind = *auto mse mse_cc masked_mse
      .type = choice
      .help = "auto: mse_cc for maps (Pan et al.), masked_mse for extension."
    cc_weight = 0.001
      .type = float(value_min=0)
      .help = "Weight w of (1 - Pearson CC) in mse_cc (Pan et al. 1e-3)."
    invariance = *none hand origin_and_hand
      .type = choice
      .help = "Take the minimum of the loss over the inverted target (hand), and also over \\
               all grid translations (origin_and_hand), as PhAI does for P21/c origins."
  }
  optimizer {
    kind = adam *adamw
      .type = choice
      .help = "Optimiser."
    learning_rate = 1e-3
      .type = float(value_min=0)
      .help = "Initial learning rate."
    weight_decay = 1e-4
      .type = float(value_min=0)
      .help = "Weight decay."
  }
  schedule {
    kind = *none exponential one_cycle plateau
      .type = choice
      .help = "Learning-rate schedule: two-stage exponential (Pan et al.), one-cycle, or \\
               reduce-on-plateau of the validation loss."
    gamma = 0.873
      .type = float(value_min=0, value_max=1)
      .help = "Exponential: factor per epoch in the first stage (Pan et al. 0.873)."
    stage_epochs = 10
      .type = int(value_min=0)
      .help = "Exponential: epochs of the first stage."
    gamma_late = 0.9991
      .type = float(value_min=0, value_max=1)
      .help = "Exponential: factor per epoch after the first stage (Pan et al. 0.9991)."
    patience = 2
      .type = int(value_min=0)
      .help = "Plateau: epochs without improvement before the rate is cut."
    factor = 0.5
      .type = float(value_min=0, value_max=1)
      .help = "Plateau: factor of each cut."
  }
  batch_size = 16
    .type = int(value_min=1)
    .help = "Examples per optimiser step (per process)."
  epochs = 10
    .type = int(value_min=1)
    .help = "Passes over the training set."
  max_time = None
    .type = float(value_min=0)
    .help = "Stop after this many minutes (checked after every step)."
  accumulate = 1
    .type = int(value_min=1)
    .help = "Batches whose gradients are summed per optimiser step."
  clip_grad_norm = 1.0
    .type = float(value_min=0)
    .help = "Clip the gradient norm to this (0: no clipping)."
  mixed_precision = False
    .type = bool
    .help = "Automatic mixed precision (CUDA only; ignored on CPU)."
  early_stopping_patience = None
    .type = int(value_min=1)
    .help = "Stop when the validation loss has not improved for this many epochs."
  keep = *lowest_loss last
    .type = choice
    .help = "What the model file keeps: the epoch with the lowest validation loss, or the \
             last epoch run (fine-tuning with an annealed learning rate, where the validation \
             loss and the phase error can disagree: phil/dipeptide_12A_v3_train.eff)."
  resume = False
    .type = bool
    .help = "Continue from <directory>/checkpoint.pt (a killed run resumes where it stopped)."
  init_model = None
    .type = path
    .help = "Fine-tune: start from this model file (its architecture is used)."
  freeze = None
    .type = strings
    .help = "Fine-tune: parameter-name prefixes to freeze, e.g. encoder trunk."
}
output {
  directory = training
    .type = path
    .help = "Directory for the model file, checkpoint, history and log."
  model_file = model.pt
    .type = str
    .help = "Name of the model file inside output.directory."
}
"""
