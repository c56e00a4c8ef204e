"""Intensity-to-density models (Scripps, Cumby and Seth 2021) on held-out examples of their recipe.

For each model file (task intensity_to_density), N examples of the model's
own simulate recipe (the ``dataset_parameters`` stored in the model file) are made with
random_seed 1000003 (training used 0), and for each the network's voxel map (input: |F|^2 on
the integer hkl cube divided by its maximum, F000^2, as in training) is judged against the
true voxel map (Gaussian atoms, sigma and weight of the recipe) and the true atoms:

(a) Table 1 of the paper, interatomic vectors. K = number of atoms in the cell. The K highest
    maxima of the map (cctbx peak search, P1, interpolated, peaks at least 1 A apart) are
    taken as atoms; the vectors between them (all ordered pairs, both signs, minimum image,
    Cartesian A: metrics.atoms.interatomic_vector_match) are compared with the true ones.
      vec recall     share of the K(K-1) true vectors that have a predicted vector within
                     0.5 A (the paper's "nearest corresponding vector", thresholded)
      vec precision  share of the predicted vectors within 0.5 A of a true vector
      vec err        mean distance (A) from each matched true vector to its nearest
                     predicted vector (the matched ones only)
      atoms          share of the true atoms matched within 0.5 A by the K peaks after the
                     best origin shift and hand (cctbx euclidean model matching, emma)
    A model on Cartesian voxels (a cube from the cell's origin) is judged on the unit cell: its
    cube is put back on the cell's n^3 grid as ml_phasing.patterson_to_density does
    (observables.cartesian_cube_to_cell), and the true map is the atoms' fractional voxels; the
    row "true cube" is the true Cartesian cube put back the same way (what resampling loses).
(b) Map CC of the predicted against the true voxel map, plain and after the best origin
    shift and hand, and the mean phase error (unweighted and |F_true|-weighted, degrees) of
    the map's Fourier coefficients on the voxel grid (every h with |h_i| < n/2 where both
    maps have amplitude) after that alignment (metrics.maps.compare_maps, the functions
    ml_phasing.evaluate uses).
(c) The same for maps that need no network, side by side:
      true map         the target itself (a check of the peak search: (a) should read ~1)
      random phases    true amplitudes with random phases (F000 kept): (b) only
      zero phases      true amplitudes with all phases 0 (the paper's baseline, a peak at the
                       origin): (a) and (b)
      Patterson        the origin plus the K-1 highest non-origin Patterson peaks (|F|^2 of
                       the cube on the voxel grid; every true vector from one atom is then a
                       Patterson vector): (a) only
      random sites     K uniformly random sites: (a) only
(d) With --engine N (N > 0): the phasing engine on the first --engine-examples (10)
    examples' amplitudes (real X-ray form factors and the atoms' B, to the recipe's d_min or
    the finer d the model's hkl cube needs in the cell), the composition known, at most N
    starts:
      network+engine  the program's own path (ml_phasing.patterson_to_density model=...
                      composition=...): the network's phases on the cube, random elsewhere,
                      and the other hand (starts.prediction_starts), random starts in turn
      engine random   random starts only (the classical baseline)
    solved: the refined model matches every true atom within 0.5 A (emma); flags: the engine's
    own "solved" flag, and how many of those were right; starts: the median number of starts
    until the engine stopped (it stops at the first start it flags solved).
Each figure is the mean over the examples (median for the phase errors in brackets).
Read (b) against the baselines: these cells are 3-6 A across and atoms of sigma 0.5 A leave
few strong coefficients, and in P1 the origin search has three free parameters to fit them,
so even random phases read an aligned CC near 0.5 and an |F|-weighted error near 60 degrees.

Run: python benchmarks/scripps.py scripps_mlp scripps_unet --n 30 --engine 6
(shipped model names or model files)
"""

import boost_adaptbx.boost.python  # noqa: F401
import torch

import argparse
import dataclasses
import time

import numpy as np
from cctbx import crystal, xray
from cctbx.array_family import flex

from ml_phasing.examples import observables, simulation
from ml_phasing.metrics.atoms import _vectors, atom_recovery, interatomic_vector_match, peak_sites
from ml_phasing.metrics.maps import compare_maps
from ml_phasing.models import model_file

HELD_OUT_SEED = 1_000_003  # training used random_seed 0 (validation: 5% of its shards)
TOLERANCE = 0.5  # Angstrom, for vectors and atoms
PEAK_MIN_DISTANCE = 1.0  # Angstrom between peaks (random atoms are >= 1.2 A apart)
ELEMENTS = {6: "C", 7: "N", 8: "O", 9: "F", 17: "Cl", 35: "Br"}


def structure(fields, meta):
    """The example's P1 structure from its stored atoms."""
    cs = crystal.symmetry(tuple(meta["unit_cell"]), "P1")
    scatterers = flex.xray_scatterer()
    for i, (site, z) in enumerate(zip(fields["atoms/sites_frac"], fields["atoms/atomic_number"])):
        el = ELEMENTS[int(z)]
        scatterers.append(xray.scatterer(label=f"{el}{i}", site=tuple(map(float, site)), scattering_type=el))
    return xray.structure(crystal_symmetry=cs, scatterers=scatterers)


def held_out(sim, n):
    """n examples of the model's recipe with the held-out seed."""
    config = dataclasses.replace(sim, random_seed=HELD_OUT_SEED)
    source = simulation.StructureSource(config)
    return [simulation.make_example(config, i, source) for i in range(n)]


def patterson_on_grid(cube, n):
    """The Patterson function of the |F|^2 cube (-h..h) on an n^3 grid (n > 2h)."""
    h = (cube.shape[0] - 1) // 2
    coeffs = np.zeros((n, n, n))
    r = np.arange(-h, h + 1) % n
    coeffs[np.ix_(r, r, r)] = cube
    return np.real(np.fft.ifftn(coeffs)) * n**3


def phased(true_map, phases):
    """A map with the true map's amplitudes and the given phases (F000 kept)."""
    f = np.fft.fftn(true_map)
    g = np.abs(f) * np.exp(1j * phases)
    g[0, 0, 0] = f[0, 0, 0]
    return np.real(np.fft.ifftn(g))


def random_phases(shape, rng):
    """Random phases with Friedel symmetry: the phases of a white-noise map."""
    return np.angle(np.fft.fftn(rng.standard_normal(shape)))


def vector_scores(xs, sites):
    sites = np.asarray(sites, float).reshape(-1, 3)
    v = interatomic_vector_match(xs, sites, tolerance=TOLERANCE)
    true_v = _vectors(np.array(xs.sites_frac()), xs.unit_cell(), xs.space_group())
    pred_v = _vectors(sites, xs.unit_cell(), xs.space_group())
    if len(pred_v) and len(true_v):
        d = np.linalg.norm(true_v[:, None, :] - pred_v[None, :, :], axis=-1).min(axis=1)
        err = float(np.mean(d[d <= TOLERANCE])) if np.any(d <= TOLERANCE) else np.nan
    else:
        err = np.nan
    atoms = atom_recovery(xs, sites, tolerance=TOLERANCE)["fraction_matched"] if len(sites) else 0.0
    return {"recall": v["recall"], "precision": v["precision"], "vec_err": err, "atoms": atoms}


def map_scores(true_map, m, unit_cell):
    r = compare_maps(true_map, m, None, unit_cell)
    ph = r["phases"]["overall"]
    return {
        "cc": r["map_cc"],
        "cc_aligned": r["map_cc_aligned"],
        "phase": ph["mean_phase_error"] if ph["mean_phase_error"] is not None else 90.0,
        "phase_f": ph["f_weighted_phase_error"] if ph["f_weighted_phase_error"] is not None else 90.0,
    }


def peaks(m, xs, k):
    sites, _ = peak_sites(m, xs.crystal_symmetry(), k, min_distance=PEAK_MIN_DISTANCE)
    return sites[:k]


def patterson_sites(pat, xs, k):
    """The origin and the K-1 highest Patterson peaks away from the origin."""
    found, _ = peak_sites(pat, xs.crystal_symmetry(), 4 * k + 4, min_distance=PEAK_MIN_DISTANCE)
    uc = xs.unit_cell()
    keep = [s for s in found if uc.length(tuple(float(x) for x in (np.asarray(s) - np.round(s)))) > PEAK_MIN_DISTANCE]
    return np.array([[0.0, 0.0, 0.0]] + [list(s) for s in keep[: k - 1]])


def run_model(path, n, rng):
    bundle = model_file.load_bundle(path, task="intensity_to_density")
    task = bundle.task
    sim = task.simulation_config()
    frame, n_grid, sigma, weight, edge = sim.voxel
    cartesian = frame == "cartesian"
    examples = held_out(sim, n)
    names = ["network", "true map", "random phases", "zero phases", "Patterson", "random sites"]
    if cartesian:
        names.insert(2, "true cube")
    rows = {k: [] for k in names}
    seconds = 0.0
    for ex in examples:
        fields, meta = ex["fields"], ex["meta"]
        xs = structure(fields, meta)
        k = xs.scatterers().size()
        uc = xs.unit_cell()
        true_map = np.asarray(fields["voxel_atoms"], float)
        cube = np.asarray(fields["intensity_grid"], np.float32)
        t0 = time.perf_counter()
        x = cube / np.abs(cube).max()
        pred = task.predict_maps(bundle.network, x[None])[0].astype(np.float64)
        if cartesian:  # the cube back on the cell's grid, as the program does; judged on the cell
            pred = observables.cartesian_cube_to_cell(pred, uc, edge).astype(np.float64)
        seconds += time.perf_counter() - t0
        if cartesian:
            resampled = observables.cartesian_cube_to_cell(true_map, uc, edge).astype(np.float64)
            true_map = observables.voxel_atoms(xs, n_grid, sigma, "fractional", weight).astype(np.float64)
            rows["true cube"].append(
                {**vector_scores(xs, peaks(resampled, xs, k)), **map_scores(true_map, resampled, uc)}
            )
        true_map = true_map / np.abs(true_map).max()
        zero = phased(true_map, np.zeros(true_map.shape))
        rand = phased(true_map, random_phases(true_map.shape, rng))
        pat = patterson_on_grid(cube.astype(np.float64), true_map.shape[0])
        rows["network"].append({**vector_scores(xs, peaks(pred, xs, k)), **map_scores(true_map, pred, uc)})
        rows["true map"].append({**vector_scores(xs, peaks(true_map, xs, k)), **map_scores(true_map, true_map, uc)})
        rows["random phases"].append(map_scores(true_map, rand, uc))
        rows["zero phases"].append({**vector_scores(xs, peaks(zero, xs, k)), **map_scores(true_map, zero, uc)})
        rows["Patterson"].append(vector_scores(xs, patterson_sites(pat, xs, k)))
        rows["random sites"].append(vector_scores(xs, rng.random((k, 3))))
    return bundle, sim, examples, rows, seconds


def engine_rows(bundle, sim, examples, max_starts):
    """(d): the engine from the network's starts and from random starts on each example."""
    from ml_phasing.phasing import engine, starts
    from ml_phasing.prediction import intensity_prediction

    rows = {"network+engine": [], "engine random": []}
    for i, ex in enumerate(examples):
        xs = structure(ex["fields"], ex["meta"])
        u = np.asarray(ex["fields"]["atoms/b_iso"], float) if "atoms/b_iso" in ex["fields"] else None
        if u is not None:
            xs.set_b_iso(values=flex.double(u))
        d_min = min(sim.d_min_high, bundle.task.cube_d_min(xs.unit_cell()) * 0.999)
        f_obs = xs.structure_factors(d_min=d_min, algorithm="direct").f_calc().amplitudes()
        f_obs = f_obs.set_observation_type_xray_amplitude()
        comp = {}
        for sc in xs.scatterers():
            comp[sc.scattering_type] = comp.get(sc.scattering_type, 0) + 1
        pred = intensity_prediction.predict(bundle, f_obs, comp)
        network = starts.prediction_starts(
            pred["phases"], f_obs, np.random.default_rng([i, 7]), "intensity_to_density", "network"
        )
        chains = {
            "network+engine": starts.interleaved(
                network, starts.random_starts(f_obs, max_starts, np.random.default_rng([i, 8]))
            ),
            "engine random": starts.random_starts(f_obs, max_starts, np.random.default_rng([i, 8])),
        }
        for name, chain in chains.items():
            t0 = time.perf_counter()
            res = engine.solve(f_obs, comp, chain, engine.Settings(), seed=i, max_starts=max_starts)
            sites = [sc.site for sc in res.best.structure.scatterers()]
            solved = atom_recovery(xs, sites, tolerance=TOLERANCE)["fraction_matched"] == 1.0
            first = next((a["start"] for a in res.attempts if a["solved"]), None)
            rows[name].append(
                {
                    "solved": solved,
                    "flag": bool(res.solved),
                    "starts": len(res.attempts),
                    "network_start_won": res.best_start.kind == "intensity_to_density",
                    "first_flag": first,
                    "seconds": time.perf_counter() - t0,
                }
            )
        print(
            f"  engine, example {i + 1}: "
            + "  ".join(
                f"{k} {'S' if v[-1]['solved'] else '-'}{'*' if v[-1]['flag'] else ''} "
                f"{v[-1]['starts']} starts {v[-1]['seconds']:.0f} s"
                for k, v in rows.items()
            ),
            flush=True,
        )
    return rows


def print_engine(rows):
    header = f"{'engine':<15}{'solved':>8}{'flags':>7}{'right':>7}{'starts (median)':>17}{'s/example':>11}"
    print(header + f"{'by network':>12}")
    for name, rs in rows.items():
        flags = [r for r in rs if r["flag"]]
        won = sum(r["network_start_won"] for r in rs if r["flag"])
        print(
            f"{name:<15}{np.mean([r['solved'] for r in rs]):>8.2f}{len(flags):>7}"
            f"{sum(r['solved'] for r in flags):>7}{np.median([r['starts'] for r in rs]):>17.1f}"
            f"{np.mean([r['seconds'] for r in rs]):>11.2f}{(str(won) if name == 'network+engine' else '-'):>12}"
        )


def fmt(values, f="{:.2f}", median=False):
    vals = [v for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return "-"
    out = f.format(np.mean(vals))
    if median:
        out += " (" + f.format(np.median(vals)) + ")"
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="intensity_to_density model files")
    parser.add_argument("--n", type=int, default=30, help="held-out examples per model")
    parser.add_argument("--engine", type=int, default=0, help="(d): the engine with at most this many starts")
    parser.add_argument("--engine-examples", type=int, default=10, help="(d) on the first this many examples")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"held-out seed {HELD_OUT_SEED}; tolerance {TOLERANCE} A; means over examples (medians in brackets)")
    for path in args.models:
        rng = np.random.default_rng(HELD_OUT_SEED)
        path = model_file.resolve(path, "intensity_to_density")
        bundle, sim, examples, rows, seconds = run_model(path, args.n, rng)
        blob = model_file.read_model_file(path)
        n_atoms = [e["meta"]["n_atoms_asu"] for e in examples]
        print(
            f"\n{path}: {blob['architecture']} ({blob['n_parameters']} parameters), |F|^2 cube "
            f"-{bundle.task.h_max}..{bundle.task.h_max}, {sim.voxel[1]}^3 {sim.voxel[0]} voxels, "
            f"{sim.form_factor} form factors; {len(examples)} "
            f"examples of {min(n_atoms)}-{max(n_atoms)} atoms; network {1000 * seconds / len(examples):.1f} ms/example"
        )
        header = (
            f"{'map':<15}{'vec recall':>11}{'vec prec':>10}{'vec err A':>10}{'atoms':>7}"
            f"{'map CC':>8}{'CC align':>9}{'phase err':>15}{'|F|-w phase':>15}"
        )
        print(header)
        print("-" * len(header))
        for name, rs in rows.items():

            def col(key, f="{:.2f}", median=False, rs=rs):
                return fmt([r[key] for r in rs], f, median) if rs and key in rs[0] else "-"

            print(
                f"{name:<15}{col('recall'):>11}{col('precision'):>10}{col('vec_err'):>10}{col('atoms'):>7}"
                f"{col('cc', '{:.3f}'):>8}{col('cc_aligned', '{:.3f}'):>9}"
                f"{col('phase', '{:.1f}', True):>15}{col('phase_f', '{:.1f}', True):>15}"
            )
        if args.engine:
            print_engine(engine_rows(bundle, sim, examples[: args.engine_examples], args.engine))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
