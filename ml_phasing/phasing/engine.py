"""Multi-start phasing: run dual-space trajectories from many starts, pick the best, say if solved.

Starts are run in order (serially, or ``nproc`` at a time in worker processes),
each with its own deterministic random generator derived from ``(seed, start
number)``, so a run's result does not depend on ``nproc``. Trajectories are
ranked by CC(Eo^2, Ec^2) (SHELXD's CC), then R1; the run stops early once a
start meets the solved criterion (``stop_when_solved``).

``solved`` uses only figures of merit that need no truth: CC >= ``min_cc`` and
R1 <= ``max_r1``. The thresholds are calibrated by ``benchmarks/solve.py``
against the truth on held-out data (docs/solve.md gives the precision).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ml_phasing import worker_pool
from ml_phasing.phasing import dual_space, figures_of_merit

# Calibrated on held-out data (benchmarks/solve.py; docs/solve.md).
SOLVED_MIN_CC = 97.0
SOLVED_MAX_R1 = 0.15
SOLVED_MIN_HEAVY_RATIO = 3.0  # figures_of_merit.heavy_atom_ratio, where the model has heavy atoms
SOLVED_MIN_ATOM_FRACTION = 0.9  # atoms in the model / atoms of the composition


@dataclass
class Settings:
    cycles: int = 40
    completion_cycles: int = 8
    omit_fraction: float = 0.3
    refine_every: int = 5
    min_distance: float = 1.0
    d_min_extend: float | None = None
    min_cc: float = SOLVED_MIN_CC
    max_r1: float = SOLVED_MAX_R1
    min_heavy_ratio: float = SOLVED_MIN_HEAVY_RATIO
    min_atom_fraction: float = SOLVED_MIN_ATOM_FRACTION
    connected: bool = False  # a molecule: every atom bonded (repair isolated atoms)
    restraints_weight: float = 0.0  # geometry restraints in completion refinements; 0 = none
    polish_rounds: int = 12  # single-atom difference-map moves after completion; 0 = none
    mirror_rounds: int = 4  # light atoms moved onto their images through heavy atoms; 0 = none
    stop_when_solved: bool = True
    max_seconds: float | None = None


@dataclass
class Result:
    best: object  # dual_space.Trajectory
    best_start: object  # starts.Start
    solved: bool
    attempts: list = field(default_factory=list)  # one dict per start
    seconds: float = 0.0


def is_solved(figures: dict, settings: Settings) -> bool:
    """CC >= min_cc and R1 <= max_r1; where the model has heavy atoms, the light atoms must
    explain the data well beyond the heavy atoms alone (heavy_ratio >= min_heavy_ratio); and the
    model holds most of the composition's atoms (atom_fraction >= min_atom_fraction)."""
    ratio = figures.get("heavy_ratio")
    heavy_ok = ratio is None or ratio >= settings.min_heavy_ratio
    complete = figures.get("atom_fraction", 1.0) >= settings.min_atom_fraction
    return figures.get("cc", 0.0) >= settings.min_cc and figures["r1"] <= settings.max_r1 and heavy_ok and complete


def _score(figures: dict):
    return (figures.get("cc", 0.0), -figures["r1"])


def _one(f_obs, e_obs, gridding, start, composition, settings: Settings, seed: int, index: int):
    rng = np.random.default_rng([seed, index])
    t0 = time.time()
    tr = dual_space.run(
        f_obs,
        start.phases,
        composition,
        rng=rng,
        cycles=settings.cycles,
        omit_fraction=settings.omit_fraction,
        refine_every=settings.refine_every,
        min_distance=settings.min_distance,
        d_min_extend=settings.d_min_extend,
        e_obs=e_obs,
        gridding=gridding,
        completion_cycles=settings.completion_cycles,
        connected=settings.connected,
        restraints_weight=settings.restraints_weight,
        polish_rounds=settings.polish_rounds,
        mirror_rounds=settings.mirror_rounds,
    )
    return tr, time.time() - t0


# Worker state for nproc > 1 (fork start method: the data are inherited, not pickled per task).
_WORKER = {}


def _worker_run(args):
    index, start = args
    w = _WORKER
    tr, seconds = _one(w["f_obs"], w["e_obs"], w["gridding"], start, w["composition"], w["settings"], w["seed"], index)
    xs = tr.structure
    return (
        index,
        start,
        {
            "sites": [sc.site for sc in xs.scatterers()],
            "labels": [sc.label for sc in xs.scatterers()],
            "elements": [sc.scattering_type for sc in xs.scatterers()],
            "u_iso": list(xs.scatterers().extract_u_iso()),
        },
        tr.figures,
        tr.history,
        seconds,
    )


def _rebuild(f_obs, e_obs, plain, figures, history):
    from cctbx import xray
    from cctbx.array_family import flex

    from ml_phasing.phasing import figures_of_merit

    scatterers = flex.xray_scatterer()
    for site, label, element, u in zip(plain["sites"], plain["labels"], plain["elements"], plain["u_iso"]):
        scatterers.append(xray.scatterer(label=label, site=site, u=u, scattering_type=element))
    xs = xray.structure(
        special_position_settings=f_obs.crystal_symmetry().special_position_settings(min_distance_sym_equiv=0.5),
        scatterers=scatterers,
    )
    fc = dual_space.f_calc_of(xs, f_obs)
    return dual_space.Trajectory(
        structure=xs,
        f_calc=fc,
        fom=figures_of_merit.calibrated_fom(f_obs, fc, figures.get("cc", 0.0)),
        figures=figures,
        history=history,
    )


def solve(
    f_obs,
    composition: dict,
    starts,
    settings: Settings | None = None,
    *,
    seed: int = 0,
    nproc: int = 1,
    max_starts: int = 20,
    log=None,
    progress=None,
) -> Result:
    """Run the engine from ``starts`` (an iterable of :class:`Start`) and return the best trajectory."""
    settings = settings or Settings()
    t0 = time.time()
    e_obs = dual_space.e_values(f_obs)
    gridding = dual_space.gridding_for(f_obs)
    attempts, best, best_start = [], None, None
    solved = False

    n_expected = max(1e-9, float(sum(composition.values())))

    def record(index, start, tr, seconds):
        nonlocal best, best_start, solved
        tr.figures["atom_fraction"] = tr.structure.scatterers().size() / n_expected
        if is_solved(tr.figures, settings):  # by CC and R1: the heavy-atom ratio decides the rest
            ratio = figures_of_merit.heavy_atom_ratio(f_obs, tr.structure, tr.figures["r1"])
            if ratio is not None:
                tr.figures["heavy_ratio"] = ratio
        ok = is_solved(tr.figures, settings)
        attempts.append(
            {
                "start": index + 1,
                "kind": start.kind,
                "label": start.label,
                "seconds": round(seconds, 2),
                "solved": ok,
                **{k: round(v, 4) for k, v in tr.figures.items()},
            }
        )
        if log is not None:
            print(
                f"  start {index + 1:3d} ({start.label}): CC {tr.figures.get('cc', 0):5.1f}  "
                f"R1 {tr.figures['r1']:.3f}  {seconds:5.1f} s{'  solved' if ok else ''}",
                file=log,
            )
            if hasattr(log, "flush"):
                log.flush()
        if progress is not None:
            progress.update(1)
        if best is None or _score(tr.figures) > _score(best.figures):
            best, best_start = tr, start
        solved = solved or ok
        return ok

    def out_of_time():
        return settings.max_seconds is not None and time.time() - t0 > settings.max_seconds

    limited = (s for i, s in zip(range(max_starts), starts))
    if nproc <= 1:
        for index, start in enumerate(limited):
            tr, seconds = _one(f_obs, e_obs, gridding, start, composition, settings, seed, index)
            if (record(index, start, tr, seconds) and settings.stop_when_solved) or out_of_time():
                break
    else:
        _WORKER.update(
            f_obs=f_obs, e_obs=e_obs, gridding=gridding, composition=composition, settings=settings, seed=seed
        )
        pool = worker_pool.fork_pool(nproc)
        try:
            # Starts are made here, in the main thread (some, like P1 dual-space starts, take
            # seconds), nproc + 1 in flight; results are taken in start order, so the run
            # (and where it stops) is the serial one.
            for index, start, plain, figures, history, seconds in worker_pool.ordered(
                pool, _worker_run, enumerate(limited), in_flight=nproc + 1
            ):
                tr = _rebuild(f_obs, e_obs, plain, figures, history)
                if (record(index, start, tr, seconds) and settings.stop_when_solved) or out_of_time():
                    break
        finally:
            worker_pool.close(pool)
            _WORKER.clear()
    if best is None:
        from libtbx.utils import Sorry

        raise Sorry("No start could be made from these data (no phases to start from).")
    return Result(
        best=best,
        best_start=best_start,
        solved=is_solved(best.figures, settings),
        attempts=attempts,
        seconds=time.time() - t0,
    )
