"""Many recycling chains per example, chosen by R: how much does selection add to the ensemble?

A tuning experiment for issue 11 (the dipeptide network-only goal), not the program's
inference. For each held-out example the network runs one recycling chain per proper grid
rotation (24 for a cubic grid), as ``ml_phasing.patterson_to_density`` does with
``ensemble.every_pass=False``. Extra chains: ``--hands 2`` also starts every rotation from
the inverse (through the grid origin) of its first pass; ``--shifts 000,111`` also runs every
chain with its estimate translated by one grid step along the axes named by 1 before each
later pass and the output translated back (the network has one 2x max-pool, so odd
translations see a different pooling grid). Each chain's final map has
R = sum | |Fobs| - k|F(map)| | / sum |Fobs| (``phases_from_density``, no truth used).

Printed, per combination, the median phase error over the examples (ml_phasing.evaluate's
origin- and hand-aware metric against the true FC/PHIC, as in patterson_to_density.py):
  default   the hand-aligned mean of the plain chains (the program's inference)
  all       the hand-aligned mean of every chain
  best1     the chain with the lowest R
  top<k>    the hand-aligned mean of the k chains with the lowest R

Sets: the recipe's examples with --seed (tune on 2000001; the benchmark's is 1000003).

Run: python benchmarks/recycling_chains.py --model dipeptide_12A \
         --recipe phil/dipeptide_12A_simulate.eff --n 30 --seed 2000001 --hands 2 --shifts 000
"""

import boost_adaptbx.boost.python  # noqa: F401
import torch

import argparse
import glob
import os
import sys
import tempfile
import time

import numpy as np
from iotbx import mtz

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import patterson_to_density as bench  # noqa: E402

from ml_phasing.io import map_io  # noqa: E402
from ml_phasing.models import model_file  # noqa: E402
from ml_phasing.prediction import density_prediction as dp  # noqa: E402
from ml_phasing.tasks.maps import impose_amplitudes, invert_map  # noqa: E402


def chains(bundle, patt, passes, hands, shifts):
    """Final maps (back-rotated) of every chain, with their (hand, shift) labels."""
    task, net = bundle.task, bundle.network
    rots = dp.grid_rotations(patt.shape)
    x = torch.from_numpy(np.stack([dp.rotate_grid(patt, r) for r in rots])[:, None].astype(np.float32))
    first = task.pass_output(net, x, torch.zeros_like(x), 0)
    starts = [first] + ([invert_map(first)] if hands == 2 else [])
    maps, labels = [], []
    for h, y in enumerate(starts):
        for s in shifts:
            e = impose_amplitudes(y, x)
            for p in range(1, passes):
                y = task.pass_output(net, x, torch.roll(e, s, (2, 3, 4)), p)
                y = torch.roll(y, tuple(-v for v in s), (2, 3, 4))
                e = impose_amplitudes(y, x)
            maps += [dp.unrotate_grid(m, r).astype(np.float64) for m, r in zip(y[:, 0].numpy(), rots)]
            labels += [(h, s)] * len(rots)
            y = starts[h]
    return maps, labels


def combinations(maps, r, labels):
    plain = [m for m, (h, s) in zip(maps, labels) if h == 0 and not any(s)]
    order = np.argsort(r)
    out = {"default": dp._hand_aligned_mean(plain), "all": dp._hand_aligned_mean(maps), "best1": maps[order[0]]}
    for k in (6, 12, 24, 48):
        if k < len(maps):
            out[f"top{k}"] = dp._hand_aligned_mean([maps[j] for j in order[:k]], maps[order[0]])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="dipeptide_12A")
    ap.add_argument("--recipe", default=os.path.join(bench.HERE, "..", "phil", "dipeptide_12A_simulate.eff"))
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--seed", type=int, default=2_000_001)
    ap.add_argument("--passes", type=int, default=6)
    ap.add_argument("--hands", type=int, choices=(1, 2), default=2)
    ap.add_argument("--shifts", default="000", help="comma list of 0/1 triples, e.g. 000,111")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shifts = [tuple(int(c) for c in s) for s in args.shifts.split(",")]
    bench.HELD_OUT_SEED = args.seed
    bundle = model_file.load_bundle(model_file.resolve(args.model, "patterson_to_density"), "patterson_to_density")
    bundle.network.eval()
    with tempfile.TemporaryDirectory() as tmp:
        bench.generator_set(args.recipe, args.n, tmp)
        truths = sorted(glob.glob(os.path.join(tmp, "examples", "example_*.mtz")))
        results = {}
        for i, truth in enumerate(truths):
            t0 = time.time()
            f_obs = [ma for ma in mtz.object(truth).as_miller_arrays() if ma.info().labels[0] == "F"][0]
            patt, f_cut, f_p1 = bundle.task.network_input(f_obs)
            maps, labels = chains(bundle, patt, args.passes, args.hands, shifts)
            fits = [dp.phases_from_density(bundle, f_cut, f_p1, m, 0, calibrate=False) for m in maps]
            r = np.array([f["r_factor_network"] for f in fits])
            row = {}
            for name, density in combinations(maps, r, labels).items():
                fit = dp.phases_from_density(bundle, f_cut, f_p1, density, 0, calibrate=False)
                fwt = fit["f_obs"].customized_copy(sigmas=None).phase_transfer(fit["phases"])
                out = os.path.join(tmp, f"pred_{name}_{i}.mtz")
                map_io.write_mtz(out, [(fwt, "FWT")], rename={"PHIFWT": "PHWT"}, title=name)
                row[name] = bench.judge(truth, out)["phases"]["overall"]["mean_phase_error"]
                results.setdefault(name, []).append(row[name])
            print(f"{i:3d} {time.time() - t0:5.1f} s  " + " ".join(f"{k} {v:.0f}" for k, v in row.items()), flush=True)
    print(f"{args.model}, {len(truths)} examples (seed {args.seed}), {len(maps)} chains of {args.passes} passes:")
    for name, pe in results.items():
        print(f"  {name:8s} median phase error {np.median(pe):5.1f} deg (mean {np.mean(pe):5.1f})")


if __name__ == "__main__":
    main()
