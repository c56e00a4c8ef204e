"""PHIL parameters of ml_phasing.extend_resolution."""

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
  .help = "Model file from ml_phasing.train (task extend_resolution), or a shipped model's \\
           name: extend_1.2_to_1.0A or extend_1.5_to_0.8A. Default: the shipped model \\
           that fits the data (1.2 -> 1.0 A for data to 1.2 A, 1.5 -> 0.8 A for data \\
           to 1.5 A or a target finer than 1.0 A)."
d_min = None
  .type = float(value_min=0.3)
  .help = "Cut the measured data at this resolution first (Angstrom), e.g. to test what \
           extension buys on data that reach further (compare with the true amplitudes)."
d_min_target = None
  .type = float(value_min=0.3)
  .help = "Extend to this resolution (Angstrom); default the model's target."
wavelength = 0.71073
  .type = float(value_min=0.1)
  .help = "Wavelength (Angstrom) written on the CELL card."
%s
solve_data = *extended measured
  .type = choice
  .help = "With solve=True: start from charge flipping on the extended data, with the free \\
           lunch to the target resolution (extended), or phase the measured data alone \\
           (measured: the ab initio baseline, charge flipping then P1 dual-space and \\
           random starts)."
"""
    % solve_phil_str
)
