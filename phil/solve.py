"""PHIL parameters of ml_phasing.solve (and the engine scope the other programs include)."""

import libtbx.phil

engine_phil_str = """
cycles = 40
  .type = int(value_min=1)
  .help = "Dual-space cycles per start (peaks -> atoms with random omission -> phases; \\
           least squares every refine_every cycles)."
completion_cycles = 8
  .type = int(value_min=0)
  .help = "Cycles after the main ones with no omission and refinement each cycle; the \\
           model with the best CC is kept."
omit_fraction = 0.3
  .type = float(value_min=0, value_max=0.9)
  .help = "Fraction of the atoms left out at random when new phases are computed."
refine_every = 5
  .type = int(value_min=1)
  .help = "Least-squares refinement of sites and B against |Fobs| every this many cycles."
min_distance = 1.0
  .type = float(value_min=0.5)
  .help = "Closest distance (A) between two atoms taken from map peaks."
max_starts = 30
  .type = int(value_min=1)
  .help = "Most starts to try; the run stops at the first solved start (stop_when_solved)."
molecule = True
  .type = bool
  .help = "The structure is made of molecules (every non-H atom bonded to another): in the \
           completion cycles atoms with no neighbour within 1.85 A are dropped and the \
           highest Fo-Fc peaks at bonding distance are added. Turn off for ionic \
           structures, isolated ions or waters, and random-atom test data."
polish_rounds = 12
  .type = int(value_min=0)
  .help = "After completion, up to this many single-atom moves from the deepest Fo-Fc hole \
           (or the highest-B atom) to the highest Fo-Fc peak, each kept only where R1 falls \
           (0 = off). Run on starts whose CC reaches 85."
mirror_rounds = 4
  .type = int(value_min=0)
  .help = "Where the model has heavy atoms (Na and beyond), up to this many moves of a light \
           atom onto its image through a heavy atom (or the midpoint of two), each kept only \
           where R1 falls: heavy atoms make a light atom and that image agree with the \
           amplitudes to first order, so a model with one on the wrong side reads CC 99.5 \
           (docs/solve.md). Run on starts whose CC reaches 85, before the polish; 0 = off."
restraints_weight = 0
  .type = float(value_min=0)
  .help = "Geometry restraints in the completion and polish refinements, from the model's \
           own connectivity (flat-bottomed bonds 1.15-1.65 A for C/N/O, angles 100-125 \
           degrees as 1-3 distances, non-bonded repulsion below 2.5 A, planes at sp2 and \
           chirality at sp3 centres typed from the bond angles): this factor times the \
           ratio of the X-ray and restraint gradient norms. 0 = unrestrained; on the \
           benchmark's 1.5 A dipeptides weights 0.1 and 1 solved no more (measured before \
           planes and chirality were added; docs/solve.md)."
stop_when_solved = True
  .type = bool
  .help = "Stop at the first start whose figures of merit meet the solved criterion."
max_seconds = None
  .type = float(value_min=1)
  .help = "Stop starting new trajectories after this many seconds."
d_min_extend = None
  .type = float(value_min=0.3)
  .help = "Free lunch: unmeasured reflections to this resolution take amplitudes and \\
           phases from the current model each cycle (as SHELXE/SHELXT)."
solved {
  min_cc = 97.0
    .type = float(value_min=0, value_max=100)
    .help = "A start counts as solved when CC(Eo^2,Ec^2) in % reaches this ..."
  max_r1 = 0.15
    .type = float(value_min=0, value_max=1)
    .help = "... and R1 is at most this. Calibrated in benchmarks/solve.py (docs/solve.md)."
  min_heavy_ratio = 3.0
    .type = float(value_min=0)
    .help = "... and, where the model has atoms from Na on (Cl, Br, S, ...), R1 of those atoms \
             alone is at least this many times the full model's R1: the light atoms must \
             explain the data well beyond the heavy ones (right models read 7-17, half-right \
             ones 2-2.5; docs/solve.md). 0 switches the check off."
  min_atom_fraction = 0.9
    .type = float(value_min=0, value_max=1)
    .help = "... and the model holds at least this fraction of the composition's atoms \
             (a model that misses atoms is not flagged solved: in 3-6 atom cells at 0.3 A a \
             model lacking one atom read CC 98.7 and R1 0.07; docs/models.md)."
}
"""

engine_phil_scope = libtbx.phil.parse(engine_phil_str)

solve_phil_str = """
solve = Auto
  .type = bool
  .help = "Run the phasing engine (ml_phasing.solve) from this program's own prediction and \\
           write <prefix>_solve.res/.cif/.pdb/.mtz/_map.ccp4 and a 'solution' entry in the JSON. \\
           Auto: where the engine knows the cell's contents, from composition= or from a model \\
           trained on one molecule only (the shipped dialanine model: C6 N2 O2 per cell); on \\
           real dialanine fragments the engine takes the median phase error from 16 to 7 deg \\
           and solves 95% (docs/solve.md). False: the network's phases only."
composition = None
  .type = str
  .help = "Asymmetric-unit contents for the engine (and SHELX files), e.g. 'C6 N2 O2' \\
           (default: all carbon at 18 A^3 per atom)."
engine {
  include scope ml_phasing.phil.solve.engine_phil_scope
}
"""

phil_str = """
include scope ml_phasing.phil.common.phil_scope
input {
  include scope ml_phasing.phil.common.reflection_input_phil_scope
}
symmetry {
  include scope ml_phasing.phil.common.symmetry_phil_scope
}
composition = None
  .type = str
  .help = "Contents of the asymmetric unit, e.g. 'C10 N2 O2' (non-H atoms are placed). \\
           Default: all carbon at 18 A^3 per atom."
d_min = None
  .type = float(value_min=0.3)
  .help = "Cut the data at this resolution first (A), e.g. to test what extension buys."
seed = *auto patterson_to_density extend_resolution charge_flipping patterson p1_dual_space random phases
  .type = choice
  .help = "Where the starts come from. auto: a shipped Patterson-to-density model's \\
           predictions (each grid rotation and both hands) where one serves the cell, \\
           else ab initio: charge flipping, then Patterson-seeded (SHELXD-style seeds on \\
           strong Patterson vectors, their superposition map), P1 dual-space (random phases \\
           recycled in P1, then the origin consistent with the space group) and random \\
           starts in turn. patterson: the Patterson-seeded starts alone. \\
           patterson_to_density: \\
           model=; extend_resolution: charge flipping on amplitudes extended by an \\
           extension model, with the free lunch to its resolution; phases: phases.file."
model = None
  .type = path
  .help = "Model file or shipped model name for seed=patterson_to_density or extend_resolution."
phases {
  file = None
    .type = path
    .help = "MTZ with the user's phases (map coefficients, or a PHIB-like phase column) for seed=phases."
  labels = None
    .type = str
    .help = "Columns of phases.file, e.g. FWT,PHWT or PHIB."
}
engine {
  include scope ml_phasing.phil.solve.engine_phil_scope
}
"""

phil_scope = None  # parsed by the program (the included scopes need iotbx types)
