"""Speed of the origin-and-hand-aware metrics (issue 3 goal: 1000 pairs of 24^3 maps < 20 s).

Each pair: a true density (random P1 structure, 12 A cubic cell, 24^3 grid) and a
"prediction" that is the same density shifted by a random vector, inverted
half of the time, plus noise. ``compare_maps`` computes the plain and aligned
map CC and the |F|-weighted phase errors per shell after the best origin shift
and hand. The time is compared with the floor set by the FFTs alone (two
rfftn of the maps plus one search FFT per hand), measured in the same run.

Run: python benchmarks/metrics_speed.py [n_pairs]
"""

import boost_adaptbx.boost.python  # noqa: F401
import torch  # noqa: F401

import sys
import time

import numpy as np
from cctbx import crystal, sgtbx, xray
from cctbx.array_family import flex

from ml_phasing.examples import observables
from ml_phasing.metrics import compare_maps
from ml_phasing.metrics.maps import shift_map

N_PAIRS = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
N_STRUCTURES = 20


def make_maps(rng):
    cs = crystal.symmetry((12, 12, 12, 90, 90, 90), "P1")
    out = []
    for _ in range(N_STRUCTURES):
        sc = flex.xray_scatterer([xray.scatterer(f"C{i}", tuple(rng.uniform(size=3)), u=0.1) for i in range(15)])
        xs = xray.structure(crystal_symmetry=cs, scatterers=sc)
        f = observables.structure_factors(xs, 1.5)
        from cctbx import maptbx

        grid = maptbx.crystal_gridding(
            xs.unit_cell(), space_group_info=xs.space_group_info(), pre_determined_n_real=(24, 24, 24)
        )
        out.append((xs, observables.density_map(f, grid)))
    return out


def main():
    rng = np.random.default_rng(0)
    maps = make_maps(rng)
    pairs = []
    for i in range(N_PAIRS):
        xs, ref = maps[i % N_STRUCTURES]
        pred = shift_map(ref, rng.uniform(size=3), inverted=bool(i % 2), hand_translation=(0, 0, 0))
        pred = pred + rng.normal(0, 0.3 * ref.std(), ref.shape)
        pairs.append((xs, ref, pred))
    sgi = sgtbx.space_group_info("P1")
    compare_maps(pairs[0][1], pairs[0][2], sgi, pairs[0][0].unit_cell(), d_min=1.5)  # warm caches
    t0 = time.perf_counter()
    ccs, errors = [], []
    for xs, ref, pred in pairs:
        r = compare_maps(ref, pred, sgi, xs.unit_cell(), d_min=1.5)
        ccs.append(r["map_cc_aligned"])
        errors.append(r["phases"]["overall"]["mean_phase_error"])
    elapsed = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _xs, ref, pred in pairs:  # the FFT floor: 2 map FFTs + 2 search FFTs (36^3)
        np.fft.rfftn(ref), np.fft.rfftn(pred)
        np.fft.ifftn(np.zeros((36, 36, 36), complex)), np.fft.ifftn(np.zeros((36, 36, 36), complex))
    floor = time.perf_counter() - t0
    print(f"{N_PAIRS} pairs of 24^3 maps (P1, origin + hand search, CC + phase errors in 10 shells)")
    print(f"compare_maps: {elapsed:.2f} s ({1e3 * elapsed / N_PAIRS:.2f} ms per pair; goal < 20 s per 1000)")
    print(f"FFT floor: {floor:.2f} s; ratio {elapsed / floor:.1f}")
    print(
        f"median aligned CC {np.median(ccs):.3f}, median phase error {np.median(errors):.1f} deg "
        f"(noise-limited, not 0: the prediction has noise added)"
    )


if __name__ == "__main__":
    main()
