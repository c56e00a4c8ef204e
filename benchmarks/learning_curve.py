"""Learning curves of runs trained in pieces (issue 11): phase error on both held-out sets
against CPU-hours and examples seen.

For each training directory (output.directory of a run made with training/run_pieces.sh):
* history.csv: the validation stream's median phase error per epoch (examples made from
  the run's own recipe with random_seed + 7000001), with the run's cumulative CPU-hours and
  examples (columns cpu_hours_total, examples_total, written since these columns exist);
* snapshots/model_<examples>.pt (the best model after each piece) and, with --start, the
  model the runs were fine-tuned from (at 0 new examples): each is run, network only, on the
  held-out sets of benchmarks/patterson_to_density.py (real PDB fragments and the generator's
  held-out set).

Prints one table per run and writes a PNG of phase error against CPU-hours.

Run: python benchmarks/learning_curve.py training/dialanine_10A_v2 [more runs] [--start dialanine_10A]
         [--n 50] [--png F]
"""

import boost_adaptbx.boost.python  # noqa: F401
import torch

import argparse
import csv
import glob
import os
import sys
import tempfile

import numpy as np
from iotbx.cli_parser import run_program
from libtbx.utils import null_out

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import patterson_to_density as p2d_bench  # noqa: E402  (the held-out sets and the judging)

from ml_phasing.programs.patterson_to_density import Program as P2D  # noqa: E402


def network_only(model, truths, tmp):
    errors = []
    for i, truth in enumerate(truths):
        prefix = os.path.join(tmp, f"lc_{i:05d}")
        run_program(
            program_class=P2D,
            args=[truth, f"model={model}", f"output.prefix={prefix}", "refinement.cycles=0", "ensemble.rotations=1",
                  "output.write_map=False", "solve=False", "--overwrite"],
            logger=null_out(),
        )  # fmt: skip
        errors.append(p2d_bench.judge(truth, prefix + ".mtz")["phases"]["overall"]["mean_phase_error"])
    return float(np.median(errors))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--n", type=int, default=50, help="examples per held-out set")
    ap.add_argument("--recipe", default=os.path.join(p2d_bench.HERE, "..", "phil", "dialanine_10A_simulate.eff"))
    ap.add_argument("--png", default=None)
    ap.add_argument("--start", default=None, help="the model the runs started from (shipped name or file)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    curves = {}
    with tempfile.TemporaryDirectory() as tmp:
        sets = {"generator": p2d_bench.generator_set(args.recipe, args.n, os.path.join(tmp, "gen"))}
        if os.path.isdir(p2d_bench.REALDATA):
            sets["real"] = p2d_bench.real_set(args.n, os.path.join(tmp, "real"))
        for run in args.runs:
            rows = list(csv.DictReader(open(os.path.join(run, "history.csv"))))
            print(f"\n{run}: validation stream (its own recipe), per epoch")
            print("  epoch  CPU-hours  examples  median phase error")
            for r in rows:
                if r.get("cpu_hours_total"):
                    print(f"  {r['epoch']:>5}  {float(r['cpu_hours_total']):9.3f}  {r['examples_total']:>8}  "
                          f"{float(r['median_phase_error']):8.1f}")  # fmt: skip
            snapshots = sorted(
                glob.glob(os.path.join(run, "snapshots", "model_*.pt")),
                key=lambda p: int(os.path.basename(p)[6:-3]),
            )
            if args.start:
                from ml_phasing.models.model_file import resolve

                snapshots.insert(0, resolve(args.start, "patterson_to_density"))
            points = []
            for snap in snapshots:
                blob = torch.load(snap, weights_only=True)
                compute = blob.get("compute", {})
                errors = {name: network_only(snap, truths, tmp) for name, truths in sets.items()}
                points.append((compute.get("cpu_hours", 0.0), compute.get("examples_seen", 0), errors))
            print(f"{run}: snapshots, network only, median phase error on {args.n} held-out examples per set")
            print("  CPU-hours  examples  " + "  ".join(f"{s:>10}" for s in sets))
            for cpu, seen, errors in points:
                print(f"  {cpu:9.3f}  {seen:8d}  " + "  ".join(f"{errors[s]:10.1f}" for s in sets))
            curves[run] = points
    if args.png and curves:
        from ml_phasing import plots

        plt = plots._pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        for run, points in curves.items():
            for name in points[0][2] if points else []:
                ax.plot([p[0] for p in points], [p[2][name] for p in points], marker="o",
                        label=f"{os.path.basename(run)}: {name}")  # fmt: skip
        ax.set_xlabel("CPU-hours (this run's training)")
        ax.set_ylabel("median phase error (deg), network only")
        ax.legend(fontsize=7)
        plots._save(fig, args.png)


if __name__ == "__main__":
    main()
