"""PHIL parameters of ml_phasing.patterson_to_density."""

from ml_phasing.phil.solve import solve_phil_str

phil_str = (
    """
include scope ml_phasing.phil.common.phil_scope
input {
  include scope ml_phasing.phil.common.reflection_input_phil_scope
}
symmetry {
  include scope ml_phasing.phil.common.symmetry_phil_scope
}
model = None
  .type = path
  .help = "Model file from ml_phasing.train, or a shipped model's name: dialanine_10A \\
           (the default; 10 A cells at 1.5 A), dipeptide_12A (12 A cells), or one of \\
           Scripps' setting (|F|^2 on the hkl cube of a small P1 cell of 3-6 atoms; give \\
           composition=): scripps_mlp, scripps_unet, scripps_mlp_xray_cartesian, \\
           scripps_unet_xray_cartesian (docs/models.md)."
refinement {
  cycles = Auto
    .type = int(value_min=0)
    .help = "Charge-flipping cycles (smtbx) started from the network's phases, imposing \\
             the observed amplitudes; 0 turns them off. Auto: what the model's benchmark \\
             chose, 0 after the shipped dialanine model (20 cycles after it raised the \\
             median phase error on real fragments from 16 to 25 deg) and 20 after the \\
             dipeptide model (61 to 47 deg); 20 after any other model \\
             (benchmarks/patterson_to_density.py, docs/models.md)."
}
ensemble {
  rotations = 24
    .type = int(value_min=1, value_max=24)
    .help = "Test-time averaging: predict from the Patterson rotated by this many proper \\
             rotations of the grid (up to 24 on a cubic grid, 4 when the edges differ; \\
             the identity first) and average the back-rotated densities, each on the \\
             hand of the first. 1 turns it off. On by default: on real dialanine fragments \\
             it lowers the median phase error of the dialanine model from 28.6 to 22.3 deg \\
             (benchmarks/patterson_to_density.py, docs/models.md)."
  every_pass = Auto
    .type = bool
    .help = "For a model with recycling: average the rotations after every recycling \\
             pass, so that each pass starts from one averaged estimate (with the observed \\
             amplitudes imposed), or (False) let every rotation run its own passes and \\
             average at the end. Auto: the shipped model's benchmarked choice, True for \\
             dialanine_10A (real fragments 16.3 deg against 16.6), False for dipeptide_12A \\
             (with its 20 charge-flipping cycles 47.4 deg against 50.5; the network alone \\
             60.8 against 60.9); True for any other model (docs/models.md)."
}
recycling {
  passes = Auto
    .type = int(value_min=1, value_max=50)
    .help = "Recycling passes at inference, each followed by imposing the observed \\
             amplitudes (models trained with recycling; others make one pass). Auto: the \\
             shipped model's choice on a tuning set (dialanine_10A 8, dipeptide_12A 6; both \\
             were trained with 3), as many as in training for any other model. With 24 \\
             rotations, more passes than in training took the median phase error of real \\
             dialanine fragments from 22.3 to 16.6 deg and of held-out dipeptides from 64.5 \\
             to 60.8 deg (docs/models.md)."
}
%s
output {
  write_map = True
    .type = bool
    .help = "Write <prefix>_density.ccp4."
}
"""
    % solve_phil_str
)
