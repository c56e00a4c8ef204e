"""PHIL scope shared by every ml_phasing program.

Included in a program's master PHIL with::

    include scope ml_phasing.phil.common.phil_scope
"""

import iotbx.phil
import libtbx.phil

phil_str = """
random_seed = 0
  .type = int(value_min=0)
  .help = "Seed for every random choice. Example i of a dataset uses a seed \
           derived from (random_seed, i), so results do not depend on nproc \
           or sharding."
nproc = 1
  .type = int(value_min=1)
  .help = "Number of worker processes."
device = *auto cpu cuda
  .type = choice
  .help = "Torch device. auto picks cuda when a GPU is visible, else cpu."
"""

phil_scope = libtbx.phil.parse(phil_str)


symmetry_phil_str = """
unit_cell = None
  .type = unit_cell
  .help = "Unit cell, for files without one (SHELX .hkl, maps) or to override."
space_group = None
  .type = space_group
  .help = "Space group, for files without one or to override."
"""

symmetry_phil_scope = iotbx.phil.parse(symmetry_phil_str)  # iotbx knows the unit_cell/space_group types


reflection_input_phil_str = """
file = None
  .type = path
  .help = "Amplitudes or intensities: MTZ, SHELX HKLF 4 .hkl (with symmetry.*) or mmCIF \\
           reflections. May also be given as the first argument."
labels = None
  .type = str
  .help = "Columns to use, e.g. F,SIGF or I,SIGI (default: the obvious ones)."
"""

# The input { } scope that ml_phasing.program_support.input_file reads.
reflection_input_phil_scope = iotbx.phil.parse(reflection_input_phil_str)
