"""Throughput of ml_phasing.simulate against the bare cctbx work it wraps.

Workload (issue 2): 20-atom P21 random structures, amplitudes and a Patterson map
at 1.0 Angstrom (density off). Prints:

* bare cctbx: random_structure + structure factors + Patterson map for the same
  structures (same seeds), one process: the library limit;
* ml_phasing.simulate, nproc=1, in-process (no interpreter start-up), with the
  HDF5 shards, masks, |E| and absences it adds: ratio to the bare work (goal <= 1.5);
* ml_phasing.simulate, nproc=2: examples/s (goal >= 150);
* peak memory of the whole program for two dataset sizes (goal: independent of size).

Run: python benchmarks/simulate_throughput.py [n_examples]
"""

import boost_adaptbx.boost.python  # noqa: F401
import torch  # noqa: F401

import os
import resource
import subprocess
import sys
import tempfile
import time

from cctbx import sgtbx
from cctbx.development import random_structure
from iotbx.cli_parser import run_program
from libtbx.utils import null_out

from ml_phasing.programs.simulate import Program
from ml_phasing.examples.seeding import example_seed, seed_everything

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
D_MIN = 1.0
COMMON = [
    "random_atoms.space_groups=P21",
    "random_atoms.n_atoms_min=20",
    "random_atoms.n_atoms_max=20",
    f"d_min_low={D_MIN}",
    f"d_min_high={D_MIN}",
    "outputs.density=False",
    "random_atoms.elements=C",
    "random_atoms.element_weights=1",
]


def bare_cctbx(n):
    """The physics alone: what any generator has to pay for."""
    sgi = sgtbx.space_group_info("P21")
    t0 = time.perf_counter()
    for i in range(n):
        rng = seed_everything(example_seed(0, i))
        xs = random_structure.xray_structure(
            space_group_info=sgi, elements=["C"] * 20, volume_per_atom=float(rng.uniform(14, 22)), min_distance=1.2
        )
        f = xs.structure_factors(d_min=D_MIN, algorithm="direct").f_calc()
        f.as_amplitude_array().patterson_map(resolution_factor=1 / 3.0).real_map_unpadded()
    return time.perf_counter() - t0


def simulate(n, nproc, directory):
    args = COMMON + [f"n_examples={n}", f"nproc={nproc}", f"output.directory={directory}", "examples_per_shard=1000"]
    t0 = time.perf_counter()
    run_program(program_class=Program, args=args, logger=null_out())
    return time.perf_counter() - t0


def peak_rss_mb(n, directory):
    """Peak resident memory (MB) of a whole simulate run in a child process."""
    script = os.path.join(os.path.dirname(sys.executable), "ml_phasing.simulate")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(
        [script, *COMMON, f"n_examples={n}", f"output.directory={directory}", "examples_per_shard=500"],
        check=True,
        capture_output=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(after, before) / 1024.0


def main():
    with tempfile.TemporaryDirectory() as tmp:
        simulate(50, 1, os.path.join(tmp, "warm"))  # imports, caches
        t_bare = bare_cctbx(N)
        t_one = simulate(N, 1, os.path.join(tmp, "one"))
        t_two = simulate(N, 2, os.path.join(tmp, "two"))
        print(f"workload: {N} random P21 structures, 20 atoms, amplitudes + Patterson at {D_MIN} A")
        print(f"bare cctbx (structure + F + Patterson), 1 process: {t_bare:.2f} s ({N / t_bare:.0f} examples/s)")
        print(
            f"ml_phasing.simulate nproc=1: {t_one:.2f} s ({N / t_one:.0f} examples/s); "
            f"ratio to bare cctbx = {t_one / t_bare:.2f} (goal <= 1.5)"
        )
        print(
            f"ml_phasing.simulate nproc=2: {t_two:.2f} s ({N / t_two:.0f} examples/s, goal >= 150); "
            f"ratio to bare cctbx on 2 cores = {t_two / (t_bare / 2):.2f}"
        )
        small, large = N // 4, N
        rss_small = peak_rss_mb(small, os.path.join(tmp, "m1"))
        rss_large = peak_rss_mb(large, os.path.join(tmp, "m2"))
        print(f"peak memory: {rss_small:.0f} MB for {small} examples, {rss_large:.0f} MB for {large} examples")


if __name__ == "__main__":
    main()
