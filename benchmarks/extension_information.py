"""Where the information for resolution extension is (issue 11): R on the predicted reflections.

The shipped extension models read R ~ 0.45 on the unmeasured reflections, equal to the
shell-mean fill. This benchmark puts that number beside what other predictors of the same
reflections achieve, on held-out crystals of each model's recipe (phil/extend_<low>_to_<high>A_
simulate.eff, seed HELD_OUT_SEED as benchmarks/extend_resolution.py):

  (a) fill      the shell-mean fill: sqrt(<|F|^2>) of the true amplitudes in each shell (an oracle
                Wilson curve, resolution_extension.shell_mean_fill);
  (b) model     the shipped extension model (resolution_extension.extend);
  (c) engine    |Fc| of the phasing engine's best refined model from the measured (low) data alone
                (engine.solve with the ab initio mix of starts.ab_initio_starts, as ml_phasing.solve
                by default and row (a) of benchmarks/extend_resolution.py --engine), scaled to the
                measured data; reported on all crystals and on those it solves (every atom within
                0.5 A of the truth);
  (d) true+err  |Fc| of the true structure with every site moved by a random error of the given
                3-D rms (0.1, 0.2, 0.3, 0.5, 1.0 A), scaled to the measured data; and |Fc| of a random
                structure of the same composition (a model with no information);
  (e) Wilson    the R that Wilson statistics predict for the fill (each reflection acentric or
                centric by its indices, <|F|^2> = fill^2), and the lowest R any predictor that knows
                only the shell mean can expect (the median of the Wilson distribution, not its rms);
                and, measured on the data, an oracle that fills each shell with the median of its true
                |F| (the best constant per shell for this R, whatever the distribution).

R = sum |F_pred - F_true| / sum F_true over the unmeasured, not absent reflections
(benchmarks/extend_resolution.r_predicted), per crystal (median over crystals) and pooled.

Run (one process; 6-8 s per crystal on average, the engine dominating; 40 + 40 crystals took 9 minutes):
  nice -n 10 python benchmarks/extension_information.py --n 40 --settings 1.2_to_1.0A 1.5_to_0.8A \
      --json extension_information.json
"""

import boost_adaptbx.boost.python  # noqa: F401
import torch

import argparse
import json
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from extend_resolution import HELD_OUT_SEED, r_predicted  # noqa: E402

from ml_phasing.examples import simulation  # noqa: E402
from ml_phasing.metrics.atoms import atom_recovery  # noqa: E402
from ml_phasing.models import model_file  # noqa: E402
from ml_phasing.prediction import resolution_extension  # noqa: E402

ERRORS = (0.1, 0.2, 0.3, 0.5, 1.0)  # 3-D rms coordinate error of the true structure, A


# ---------------------------------------------------------------- Wilson statistics (Sigma = 1)
def wilson_abs_dev(c: float, centric: bool) -> tuple[float, float]:
    """(E|F - c|, E F) for |F| Wilson-distributed with <|F|^2> = 1."""
    if centric:  # F = |z|, z ~ N(0, 1)
        mean = math.sqrt(2 / math.pi)
        phi_c = math.exp(-c * c / 2) / math.sqrt(2 * math.pi)
        big_phi = 0.5 * (1 + math.erf(c / math.sqrt(2)))
        below = c * (2 * big_phi - 1) - 2 * (1 / math.sqrt(2 * math.pi) - phi_c)  # int_0^c (c-x) p(x) dx
        return mean - c + 2 * below, mean
    mean = math.sqrt(math.pi) / 2  # Rayleigh, p(x) = 2x exp(-x^2)
    return mean + c - math.sqrt(math.pi) * math.erf(c), mean


MEDIAN = {False: math.sqrt(math.log(2)), True: 0.6744897501960817}  # of |F|/sqrt(<|F|^2>)


def wilson_expected(fill, f_true, d_min_low):
    """Expected (numerator, denominator) of R for the rms fill and for the median fill."""
    sel = f_true.d_spacings().data() < d_min_low * (1 - 1e-9)
    t = f_true.select(sel)
    s = fill.common_set(t).data().as_numpy_array()
    centric = t.centric_flags().data().as_numpy_array()
    num_rms = num_med = den = 0.0
    for c in (False, True):
        m = centric == c
        if not m.any():
            continue
        dev_rms, mean = wilson_abs_dev(1.0, c)
        dev_med, _ = wilson_abs_dev(MEDIAN[c], c)
        num_rms += dev_rms * s[m].sum()
        num_med += dev_med * s[m].sum()
        den += mean * s[m].sum()
    return (num_rms, den), (num_med, den), float(centric.mean())


def cc_normalised(f_pred, fill, f_true, d_min_low):
    """Pearson CC of F_pred/fill with F_true/fill on the predicted reflections: the information beyond
    the Wilson curve (0 for the fill itself, 1 for the truth)."""
    sel = f_true.d_spacings().data() < d_min_low * (1 - 1e-9)
    t = f_true.select(sel)
    t = t.common_set(f_pred).common_set(fill)
    p = f_pred.common_set(t).data().as_numpy_array()
    w = fill.common_set(t).data().as_numpy_array()
    x, y = p / np.maximum(w, 1e-12), t.data().as_numpy_array() / np.maximum(w, 1e-12)
    if x.std() < 1e-12 or y.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def shell_median_fill(fill, f_true, d_min_low):
    """The oracle best constant per shell: the fill's shells, each set to the median of its true |F|."""
    from cctbx.array_family import flex

    data = fill.data().as_numpy_array().copy()
    truth = f_true.common_set(fill).data().as_numpy_array()
    outer = fill.d_spacings().data().as_numpy_array() < d_min_low * (1 - 1e-9)
    for value in np.unique(data[outer]):
        m = outer & (data == value)
        data[m] = np.median(truth[m])
    return fill.customized_copy(data=flex.double(data))


# ---------------------------------------------------------------- predictors
def scaled_fc(xs, f_true, d_min_low):
    """|Fc| of ``xs`` on f_true's indices, on the scale of the measured (low) amplitudes."""
    fc = f_true.structure_factors_from_scatterers(xs, algorithm="direct").f_calc().as_amplitude_array()
    low = f_true.d_spacings().data() >= d_min_low * (1 - 1e-9)
    a, b = fc.data().select(low).as_numpy_array(), f_true.data().select(low).as_numpy_array()
    k = float((a * b).sum() / max((a * a).sum(), 1e-12))
    return fc.customized_copy(data=fc.data() * k)


def perturbed(xs, rms: float, rng):
    from cctbx.array_family import flex

    out = xs.deep_copy_scatterers()
    if rms > 0:
        sites = np.asarray(out.sites_cart())
        sites = sites + rng.normal(0.0, rms / math.sqrt(3), sites.shape)
        out.set_sites_cart(flex.vec3_double([tuple(v) for v in sites]))
    return out


def randomised(xs, rng):
    from cctbx.array_family import flex

    out = xs.deep_copy_scatterers()
    out.set_sites_frac(flex.vec3_double([tuple(v) for v in rng.random((out.scatterers().size(), 3))]))
    return out


def engine_model(low, reference, seed, max_starts):
    """The engine's ab initio run on the measured data (benchmarks/extend_resolution.engine_and_match (a))."""
    from ml_phasing.phasing import engine, starts

    comp = {}
    for sc in reference.scatterers():
        comp[sc.scattering_type] = comp.get(sc.scattering_type, 0) + 1
    rng = np.random.default_rng([seed, 7])
    t0 = time.perf_counter()
    res = engine.solve(
        low,
        comp,
        starts.ab_initio_starts(low, comp, max_starts, seed, rng),
        engine.Settings(connected=False),
        seed=seed,
        max_starts=max_starts,
    )
    xs = res.best.structure
    rec = atom_recovery(reference, [sc.site for sc in xs.scatterers()], tolerance=0.5)
    return xs, {
        "seconds": time.perf_counter() - t0,
        "solved": rec["fraction_matched"] == 1.0,
        "fraction_matched": rec["fraction_matched"],
        "flagged": bool(res.solved),
        "starts": len(res.attempts),
    }


def one_crystal(config, source, bundle, index, max_starts):
    ex = simulation.make_example(config, index, source, keep_objects=True)
    xs = ex["objects"]["xray_structure"]
    f_true = ex["objects"]["f_calc_high"].as_amplitude_array()
    d_low = config.d_min_low
    low = f_true.resolution_filter(d_min=d_low)
    rng = np.random.default_rng([index, 11])
    row = {"index": index, "space_group": str(f_true.space_group_info()), "n_atoms": xs.scatterers().size()}
    fill = resolution_extension.shell_mean_fill(f_true, d_low)
    row["fill"] = r_predicted(fill, f_true, d_low)
    t0 = time.perf_counter()
    ext = resolution_extension.extend(bundle, low, f_true.d_min())["extended"].common_set(f_true)
    row["model_seconds"] = time.perf_counter() - t0
    row["model"] = r_predicted(ext, f_true, d_low)
    row["cc"] = {"fill": 0.0, "model": cc_normalised(ext, fill, f_true, d_low)}
    for rms in ERRORS:
        fc = scaled_fc(perturbed(xs, rms, rng), f_true, d_low)
        row[f"true+{rms}"] = r_predicted(fc, f_true, d_low)
        row["cc"][f"true+{rms}"] = cc_normalised(fc, fill, f_true, d_low)
    fc = scaled_fc(randomised(xs, rng), f_true, d_low)
    row["random"] = r_predicted(fc, f_true, d_low)
    row["cc"]["random"] = cc_normalised(fc, fill, f_true, d_low)
    row["wilson_rms"], row["wilson_median"], row["centric_fraction"] = wilson_expected(fill, f_true, d_low)
    row["shell_median"] = r_predicted(shell_median_fill(fill, f_true, d_low), f_true, d_low)
    if max_starts:
        model_xs, row["engine_run"] = engine_model(low, xs, index, max_starts)
        fc = scaled_fc(model_xs, f_true, d_low)
        row["engine"] = r_predicted(fc, f_true, d_low)
        row["cc"]["engine"] = cc_normalised(fc, fill, f_true, d_low)
        # what a pipeline could do without the truth: the engine's |Fc| where it flags a solution, else the fill
        row["engine_or_fill"] = row["engine"] if row["engine_run"]["flagged"] else row["fill"]
    return row


# ---------------------------------------------------------------- table
ROWS = [
    ("fill", "(a) shell-mean fill (oracle Wilson curve)"),
    ("model", "(b) shipped extension model"),
    ("engine", "(c) engine model from the measured data, |Fc|"),
    ("engine_or_fill", "(c) engine |Fc| where flagged solved, else the fill"),
]
ROWS += [(f"true+{r}", f"(d) true structure, {r:.1f} A rms error, |Fc|") for r in ERRORS]
ROWS += [
    ("random", "(d) random structure, same composition, |Fc|"),
    ("wilson_rms", "(e) Wilson expectation for the fill"),
    ("wilson_median", "(e) Wilson bound: best shell-mean-only predictor"),
    ("shell_median", "(e) oracle shell median of the true |F| (measured)"),
]


def stats(rows, key):
    rows = [r for r in rows if key in r]
    if not rows:
        return None
    per = [a / b for a, b in (r[key] for r in rows) if b > 0]
    pooled = sum(r[key][0] for r in rows) / max(sum(r[key][1] for r in rows), 1e-12)
    return float(np.median(per)), float(pooled)


def table(rows, label):
    solved = [r for r in rows if r.get("engine_run", {}).get("solved")]
    unsolved = [r for r in rows if "engine_run" in r and not r["engine_run"]["solved"]]
    lines = [
        f"### {label}: {len(rows)} held-out crystals (seed {HELD_OUT_SEED})",
        "",
        f"R on the predicted reflections, median per crystal / pooled; columns: all {len(rows)} crystals, "
        f"the {len(solved)} the engine solves from the measured data, the {len(unsolved)} it does not.",
        "",
        "Last column: median CC of F_pred/fill with F_true/fill on the predicted reflections (all crystals),"
        " the information beyond the Wilson curve.",
        "",
        "| predictor | all | engine solved | engine unsolved | CC(F/fill) |",
        "|---|---|---|---|---|",
    ]
    out = {}
    for key, name in ROWS:
        cells = []
        for subset in (rows, solved, unsolved):
            s = stats(subset, key)
            cells.append("–" if s is None else f"{s[0]:.3f} / {s[1]:.3f}")
        ccs = [r["cc"][key] for r in rows if key in r.get("cc", {})]
        cells.append(f"{np.median(ccs):.3f}" if ccs else "–")
        out[key] = stats(rows, key)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    runs = [r["engine_run"] for r in rows if "engine_run" in r]
    if runs:
        n = len(runs)
        lines += [
            "",
            f"Engine on the measured data: solved {len(solved)}/{n} = {len(solved) / n:.0%} (every atom within "
            f"0.5 A), flagged solved {sum(x['flagged'] for x in runs)}/{n}; seconds per crystal median "
            f"{np.median([x['seconds'] for x in runs]):.1f}, mean {np.mean([x['seconds'] for x in runs]):.1f}; "
            f"starts median {np.median([x['starts'] for x in runs]):.0f}.",
        ]
    lines.append(
        f"Extension model: {np.median([r['model_seconds'] for r in rows]):.2f} s per crystal (median); "
        f"centric fraction of the predicted reflections: median {np.median([r['centric_fraction'] for r in rows]):.2f}."
    )
    print("\n".join(lines), flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40, help="held-out crystals per setting")
    ap.add_argument(
        "--settings", nargs="+", default=["1.2_to_1.0A", "1.5_to_0.8A"], help="shipped models extend_<setting>"
    )
    ap.add_argument("--max-starts", type=int, default=8, help="engine starts per crystal (0: no engine)")
    ap.add_argument("--json", default=None, help="write per-crystal rows here (rewritten after each crystal)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    mc = np.random.default_rng(0)
    ac = [np.abs(mc.normal(size=10**6) + 1j * mc.normal(size=10**6)) for _ in range(2)]
    ce = [np.abs(mc.normal(size=10**6)) for _ in range(2)]
    print(
        "Wilson, <|F|^2> = 1: R of the rms fill acentric {:.3f} centric {:.3f}; of the median fill {:.3f} / {:.3f};"
        " of an independent Wilson amplitude (Monte Carlo) {:.3f} / {:.3f}".format(
            *(wilson_abs_dev(1.0, c)[0] / wilson_abs_dev(1.0, c)[1] for c in (False, True)),
            *(wilson_abs_dev(MEDIAN[c], c)[0] / wilson_abs_dev(1.0, c)[1] for c in (False, True)),
            *(float(np.abs(a - b).mean() / a.mean()) for a, b in (ac, ce)),
        )
    )
    dump = {}
    for setting in args.settings:
        name = f"extend_{setting}"
        path = model_file.resolve(name, "extend_resolution")
        bundle = model_file.load_bundle(path, task="extend_resolution", device="cpu")
        recipe = os.path.join(HERE, "..", "phil", f"{name}_simulate.eff")
        config = simulation.SimulationConfig.from_recipe(recipe, HELD_OUT_SEED, amplitudes_only=True)
        source = simulation.StructureSource(config)
        rows = []
        t0 = time.perf_counter()
        for index in range(args.n):
            rows.append(one_crystal(config, source, bundle, index, args.max_starts))
            r = rows[-1]
            print(
                f"{setting} #{index} {r['space_group']} {r['n_atoms']} atoms: "
                + " ".join(f"{k} {r[k][0] / r[k][1]:.3f}" for k in ("fill", "model", "engine", "true+0.3") if k in r)
                + (
                    f" solved {r['engine_run']['solved']} {r['engine_run']['seconds']:.0f} s"
                    if "engine_run" in r
                    else ""
                ),
                flush=True,
            )
            dump[setting] = rows
            if args.json:
                with open(args.json, "w") as fh:
                    json.dump(dump, fh, indent=1)
        print(f"({time.perf_counter() - t0:.0f} s for {setting})")
        table(rows, f"{setting.replace('_to_', ' -> ').replace('A', ' A')}")


if __name__ == "__main__":
    main()
