"""PHIL scope shared by every ml_phasing program.

Included in a program's master PHIL with::

    include scope ml_phasing.phil.common.phil_scope
"""
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
